import { z } from 'zod';

/**
 * SAML federation login (src/federation/saml). Owned by the SAML bridge;
 * every option documented here.
 *
 * fedgate is a SAML 2.0 service provider (Web Browser SSO profile, SAML
 * profiles §4.1): AuthnRequests go out signed over HTTP-Redirect, responses
 * come back over HTTP-POST to `/saml/acs`. Identity providers are read from
 * metadata (single entities or signed aggregates, SAML metadata §2.3).
 */

/** Well-known attribute names (SAML attribute profile "uri" names). */
export const SAML_ATTRIBUTES = {
  /** SAML V2.0 Subject Identifier Attributes Profile §3.3. */
  subjectId: 'urn:oasis:names:tc:SAML:attribute:subject-id',
  /** SAML V2.0 Subject Identifier Attributes Profile §3.4. */
  pairwiseId: 'urn:oasis:names:tc:SAML:attribute:pairwise-id',
  eduPersonUniqueId: 'urn:oid:1.3.6.1.4.1.5923.1.1.1.13',
  eduPersonTargetedID: 'urn:oid:1.3.6.1.4.1.5923.1.1.1.10',
  eduPersonPrincipalName: 'urn:oid:1.3.6.1.4.1.5923.1.1.1.6',
  eduPersonEntitlement: 'urn:oid:1.3.6.1.4.1.5923.1.1.1.7',
  displayName: 'urn:oid:2.16.840.1.113730.3.1.241',
  givenName: 'urn:oid:2.5.4.42',
  sn: 'urn:oid:2.5.4.4',
  mail: 'urn:oid:0.9.2342.19200300.100.1.3',
} as const;

/** SAML core §8.3.7: the persistent NameID format. */
export const NAMEID_PERSISTENT = 'urn:oasis:names:tc:SAML:2.0:nameid-format:persistent';

const seconds = z.number().int().positive();
const absoluteUri = z.string().refine((v) => URL.canParse(v), 'must be an absolute URI');
const httpUrl = z.string().refine((v) => {
  const url = URL.parse(v);
  return !!url && (url.protocol === 'http:' || url.protocol === 'https:') && !url.hash;
}, 'must be an http(s) URL without fragment');

/**
 * How often a metadata source is fetched again. The metadata's own
 * `cacheDuration` (SAML metadata §1.3) picks the interval when present,
 * `default` otherwise; either is kept within `min`..`max`. A refresh is never
 * scheduled after the metadata's `validUntil`.
 */
const refreshSchema = z.object({
  /** Seconds between refreshes when the metadata names no cacheDuration. */
  default: seconds.default(3600),
  /** Lower bound: a cacheDuration shorter than this is raised to it. */
  min: seconds.default(300),
  /** Upper bound: a cacheDuration longer than this is cut to it. */
  max: seconds.default(24 * 3600),
}).strict().refine((r) => r.min <= r.default && r.default <= r.max, 'must satisfy min <= default <= max');

/** One place identity providers are read from. */
export const samlMetadataSourceSchema = z.object({
  /** Where to fetch the metadata (http/https). Exactly one of url and file. */
  url: httpUrl.optional(),
  /** A local metadata file. Exactly one of url and file. */
  file: z.string().min(1).optional(),
  /** A short name for logs and alerts (default: the url or file). */
  name: z.string().min(1).max(100).optional(),
  /**
   * PEM file of the certificate whose key must have signed the metadata
   * (the federation's metadata signer). Required for a url; required for a
   * file unless trustUnsigned is set.
   */
  signingCertificate: z.string().min(1).optional(),
  /**
   * Accept a local file without a signature check (an IdP's own metadata an
   * operator placed there). Not allowed for a url: anything fetched is verified.
   */
  trustUnsigned: z.boolean().default(false),
  refreshSeconds: refreshSchema.prefault({}),
}).strict().superRefine((source, ctx) => {
  if ((source.url === undefined) === (source.file === undefined)) {
    ctx.addIssue({ code: 'custom', message: 'give exactly one of url and file' });
  }
  if (source.url !== undefined && source.trustUnsigned) {
    ctx.addIssue({ code: 'custom', path: ['trustUnsigned'], message: 'metadata fetched from a url is always verified; give signingCertificate' });
  }
  if (source.url !== undefined && source.signingCertificate === undefined) {
    ctx.addIssue({ code: 'custom', path: ['signingCertificate'], message: 'required for a url source' });
  }
  if (source.file !== undefined && source.signingCertificate === undefined && !source.trustUnsigned) {
    ctx.addIssue({ code: 'custom', path: ['signingCertificate'], message: 'required for a file source unless trustUnsigned is true' });
  }
});

const GROUP_TEMPLATE = /^\/[A-Za-z0-9._\-/$<>]+$/;

/**
 * Maps eduPersonEntitlement values to fedgate groups. `pattern` is a
 * regular expression (JavaScript syntax, Unicode mode) tried on each value;
 * on a match, `group` is the group path with `$1`..`$9` and `$<name>`
 * replaced by the captures. In captures `:` (the AARC-G002 subgroup
 * separator) becomes `/`; a capture that did not take part in the match is
 * empty, and empty path segments are dropped, so
 * `{ pattern: '^urn:geant:example.org:group:cms(?::(.+))?#', group: '/cms/$1' }`
 * maps `...:group:cms#authority` to `/cms` and
 * `...:group:cms:production#authority` to `/cms/production`. Only groups
 * that exist in the group registry are assigned.
 */
export const entitlementRuleSchema = z.object({
  pattern: z.string().min(1).refine((p) => {
    try {
      new RegExp(p, 'u');
      return true;
    } catch {
      return false;
    }
  }, 'must be a valid regular expression'),
  group: z.string().regex(GROUP_TEMPLATE, 'must be a group path such as /cms or /cms/$1'),
}).strict();

export const samlSchema = z.object({
  /** Offer SAML login (needs at least one metadata source). */
  enabled: z.boolean().default(false),
  /** The SP's entityID (default `<issuer>/saml/metadata`, where its metadata is served). */
  entityId: absoluteUri.optional(),
  /**
   * PEM files of the SP's signing key and certificate. Default: created at
   * first start in the keys directory (`saml-sp-key.pem`, `saml-sp-cert.pem`),
   * shared by every replica like the other keys. Give both or neither.
   */
  spKeyFile: z.string().min(1).optional(),
  spCertFile: z.string().min(1).optional(),
  /** Allowed clock difference with identity providers for NotBefore/NotOnOrAfter checks. */
  clockSkewSeconds: z.number().int().min(0).max(3600).default(180),
  /** How long a sent AuthnRequest may be answered (the user's time at the identity provider). */
  requestTtlSeconds: seconds.max(24 * 3600).default(900),
  /**
   * Require every assertion to carry its own signature. Off by default: a
   * signature over the whole Response covers the assertion as well (SAML
   * profiles §4.1.3.5), and some identity providers sign only the response.
   * The SP metadata always asks for signed assertions (WantAssertionsSigned).
   */
  requireSignedAssertions: z.boolean().default(false),
  /** Accept RSA-SHA1 signatures and SHA-1 digests (deprecated, RFC 9231 §2.2.1 context); off by default. */
  allowSha1Signatures: z.boolean().default(false),
  /** Where identity providers come from; the first source naming an entityID wins. */
  metadata: z.array(samlMetadataSourceSchema).default([]),
  /**
   * Which entity IDs of the metadata are offered: with `allow`, only those;
   * entity IDs in `deny` never. Both lists are exact entityIDs.
   */
  entityIds: z.object({
    allow: z.array(z.string().min(1)).optional(),
    deny: z.array(z.string().min(1)).default([]),
  }).strict().prefault({}),
  /**
   * Just-in-time accounts: a first login through an identity provider
   * creates an account for the identity. `default` applies to every
   * identity provider, `idps` overrides it per entityID. Without it, the
   * identity must first be linked to an existing account.
   */
  jit: z.object({
    default: z.boolean().default(true),
    idps: z.record(z.string().min(1), z.boolean()).default({}),
  }).strict().prefault({}),
  /**
   * What a login does to the groups of an existing account: `add` adds the
   * groups mapped from this login's entitlements (never removes any), `none`
   * leaves the account alone. A just-in-time account always starts with the
   * mapped groups.
   */
  groupsAtLogin: z.enum(['add', 'none']).default('add'),
  /** Attribute names (SAML `Name`) read from assertions, each list in order of preference. */
  attributes: z.object({
    /**
     * The stable subject identifier an identity is linked by. Defaults:
     * subject-id, pairwise-id, eduPersonUniqueId, eduPersonTargetedID (also
     * its NameID-valued form), eduPersonPrincipalName.
     */
    subject: z.array(z.string().min(1)).min(1).default([
      SAML_ATTRIBUTES.subjectId,
      SAML_ATTRIBUTES.pairwiseId,
      SAML_ATTRIBUTES.eduPersonUniqueId,
      SAML_ATTRIBUTES.eduPersonTargetedID,
      SAML_ATTRIBUTES.eduPersonPrincipalName,
    ]),
    /**
     * NameID formats accepted as the subject when none of the subject
     * attributes is present (default: persistent; empty list: never).
     */
    subjectNameIdFormats: z.array(z.string().min(1)).default([NAMEID_PERSISTENT]),
    displayName: z.array(z.string().min(1)).default([SAML_ATTRIBUTES.displayName]),
    givenName: z.array(z.string().min(1)).default([SAML_ATTRIBUTES.givenName]),
    surname: z.array(z.string().min(1)).default([SAML_ATTRIBUTES.sn]),
    email: z.array(z.string().min(1)).default([SAML_ATTRIBUTES.mail]),
    entitlement: z.array(z.string().min(1)).default([SAML_ATTRIBUTES.eduPersonEntitlement]),
  }).strict().prefault({}),
  entitlementRules: z.array(entitlementRuleSchema).default([]),
  /** Days the discovery page remembers the last identity provider chosen (cookie). */
  rememberChoiceDays: z.number().int().min(0).max(3650).default(180),
}).strict().superRefine((saml, ctx) => {
  if ((saml.spKeyFile === undefined) !== (saml.spCertFile === undefined)) {
    ctx.addIssue({ code: 'custom', path: [saml.spKeyFile === undefined ? 'spKeyFile' : 'spCertFile'], message: 'give both spKeyFile and spCertFile, or neither' });
  }
  if (saml.enabled && saml.metadata.length === 0) {
    ctx.addIssue({ code: 'custom', path: ['metadata'], message: 'SAML is enabled but no metadata source is configured' });
  }
});

export type SamlConfig = z.infer<typeof samlSchema>;
export type SamlMetadataSource = z.infer<typeof samlMetadataSourceSchema>;
export type EntitlementRule = z.infer<typeof entitlementRuleSchema>;
