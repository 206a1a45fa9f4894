/**
 * From a verified assertion to what fedgate keeps of a person: the subject
 * identifier an identity is linked by, a name, an email address, and groups
 * mapped from eduPersonEntitlement values. Which attributes are read is
 * configuration (config `saml.attributes`, `saml.entitlementRules`).
 */
import type { EntitlementRule, SamlConfig } from '../../config/saml-schema.ts';
import type { IdpRecord } from './metadata.ts';
import { attribute, child, children, NS, text } from './xml.ts';

/** A NameID (SAML core §2.2.3), as a subject or as an attribute value (eduPersonTargetedID). */
export interface NameId {
  value: string;
  format?: string | undefined;
  nameQualifier?: string | undefined;
  spNameQualifier?: string | undefined;
}

/** One attribute value: its text, or the NameID it holds. */
export interface AttributeValue {
  text: string;
  nameId?: NameId | undefined;
}

/** What an assertion says about its subject. */
export interface AssertionStatements {
  nameId?: NameId | undefined;
  /** Attribute values by attribute Name. */
  attributes: Map<string, AttributeValue[]>;
}

/** The identity an assertion maps to. */
export interface MappedIdentity {
  subject: string;
  /** The attribute Name (or `NameID`) the subject came from. */
  subjectSource: string;
  name?: string | undefined;
  email?: string | undefined;
  /**
   * A `user@scope` identifier (eduPersonPrincipalName, else subject-id or
   * eduPersonUniqueId) whose scope the identity provider's metadata lists
   * (shibmd:Scope): the only source of a just-in-time username.
   */
  scopedName?: string | undefined;
  /** Group paths the entitlement rules produced (not yet checked against the registry). */
  groups: string[];
  /** Entitlement values a rule matched but this identity provider may not assert for it (audited, mapped to nothing). */
  refusedEntitlements: string[];
  /** eduPersonAssurance values (REFEDS RAF, AARC-G021), passed on as `eduperson_assurance`. */
  assurance: string[];
}

const MAX_VALUES = 1000;
const MAX_VALUE_LENGTH = 2048;
const CONTROL = /[\u0000-\u001f\u007f]/;

function readNameId(element: Element): NameId {
  return {
    value: text(element),
    format: attribute(element, 'Format'),
    nameQualifier: attribute(element, 'NameQualifier'),
    spNameQualifier: attribute(element, 'SPNameQualifier'),
  };
}

/** Reads the Subject NameID and every attribute of `assertion` (a verified saml:Assertion element). */
export function readStatements(assertion: Element): AssertionStatements {
  const subject = child(assertion, NS.assertion, 'Subject');
  const nameIdElement = subject ? child(subject, NS.assertion, 'NameID') : undefined;
  const attributes = new Map<string, AttributeValue[]>();
  let count = 0;
  for (const statement of children(assertion, NS.assertion, 'AttributeStatement')) {
    for (const attr of children(statement, NS.assertion, 'Attribute')) {
      const name = attr.getAttribute('Name') ?? '';
      if (!name) continue;
      const values = attributes.get(name) ?? [];
      for (const v of children(attr, NS.assertion, 'AttributeValue')) {
        if (++count > MAX_VALUES) break;
        const nested = child(v, NS.assertion, 'NameID');
        const value: AttributeValue = nested ? { text: text(nested), nameId: readNameId(nested) } : { text: text(v) };
        if (value.text.length <= MAX_VALUE_LENGTH) values.push(value);
      }
      attributes.set(name, values);
    }
  }
  return { nameId: nameIdElement ? readNameId(nameIdElement) : undefined, attributes };
}

/**
 * Whether the identity provider's metadata vouches for `scope`: it lists
 * shibmd:Scope values and `scope` is one of them. Unlike
 * {@link scopeAllowed}, an identity provider that declares no scope vouches
 * for none.
 */
export function scopeVouched(idp: Pick<IdpRecord, 'scopes'>, scope: string): boolean {
  return idp.scopes.length > 0 && scopeAllowed(idp, scope);
}

/** Whether `scope` is one the identity provider may assert (shibmd:Scope); any scope when it declares none. */
export function scopeAllowed(idp: Pick<IdpRecord, 'scopes'>, scope: string): boolean {
  if (idp.scopes.length === 0) return true;
  const lower = scope.toLowerCase();
  return idp.scopes.some((s) => {
    if (!s.regexp) return s.value.toLowerCase() === lower;
    try {
      return new RegExp(`^(?:${s.value})$`, 'i').test(scope);
    } catch {
      return false;
    }
  });
}

/** SAML V2.0 Subject Identifier Attributes Profile §3.3.1 / §3.4.1: `uniqueID@scope`. */
const SUBJECT_ID_SYNTAX = /^[0-9A-Za-z][-=0-9A-Za-z]{0,126}@[0-9A-Za-z][-.0-9A-Za-z]{0,126}$/;
/** eduPersonPrincipalName / eduPersonUniqueId: `user@scope` (eduPerson 2021-11). */
const SCOPED_SYNTAX = /^[^@\s]{1,256}@[0-9A-Za-z][-.0-9A-Za-z]{0,253}$/;
const SCOPED_SUBJECTS: Record<string, RegExp> = {
  'urn:oasis:names:tc:SAML:attribute:subject-id': SUBJECT_ID_SYNTAX,
  'urn:oasis:names:tc:SAML:attribute:pairwise-id': SUBJECT_ID_SYNTAX,
  'urn:oid:1.3.6.1.4.1.5923.1.1.1.13': SCOPED_SYNTAX,
  'urn:oid:1.3.6.1.4.1.5923.1.1.1.6': SCOPED_SYNTAX,
};
const TARGETED_ID = 'urn:oid:1.3.6.1.4.1.5923.1.1.1.10';
const PRINCIPAL_NAME = 'urn:oid:1.3.6.1.4.1.5923.1.1.1.6';
/** Identifiers a username may come from, best first: meant to be read by people, and scoped (pairwise-id is neither). */
const USERNAME_SOURCES = [PRINCIPAL_NAME, 'urn:oasis:names:tc:SAML:attribute:subject-id', 'urn:oid:1.3.6.1.4.1.5923.1.1.1.13'];
/** eduPersonAssurance (eduPerson 2021-11): assurance URIs such as https://refeds.org/assurance/IAP/medium. */
const ASSURANCE = 'urn:oid:1.3.6.1.4.1.5923.1.1.1.11';
const MAX_ASSURANCE_VALUES = 50;

/** The eduPersonAssurance values worth passing on: absolute URIs, no control characters, bounded. */
function assuranceValues(values: readonly AttributeValue[]): string[] {
  const out = new Set<string>();
  for (const { text: value } of values) {
    if (out.size >= MAX_ASSURANCE_VALUES) break;
    if (value.length <= 256 && !CONTROL.test(value) && !/\s/.test(value) && URL.canParse(value)) out.add(value);
  }
  return [...out];
}

/** Why an assertion could not be mapped. */
export type MappingProblem = 'no_subject';

/**
 * Maps statements to an identity per configuration. Compiled once per
 * bridge: the entitlement rules' regular expressions are built here.
 */
export class AttributeMapper {
  readonly #names: SamlConfig['attributes'];
  readonly #rules: Array<{ pattern: RegExp; group: string; entityIds: ReadonlySet<string>; registrationAuthorities: ReadonlySet<string> }>;

  constructor(names: SamlConfig['attributes'], rules: readonly EntitlementRule[]) {
    this.#names = names;
    this.#rules = rules.map((r) => ({
      pattern: new RegExp(r.pattern, 'u'),
      group: r.group,
      entityIds: new Set(r.assertedBy.entityIds),
      registrationAuthorities: new Set(r.assertedBy.registrationAuthorities),
    }));
  }

  /**
   * The identity for `statements` from `idp` as seen by the SP `spEntityId`,
   * or a problem. Scoped identifiers (subject-id, pairwise-id,
   * eduPersonUniqueId, eduPersonPrincipalName) must have a scope the
   * identity provider's metadata lists (Subject Identifier Attributes
   * Profile §3.3.2); a NameID-valued one must be qualified for this IdP/SP
   * pair when it is qualified at all (SAML core §8.3.7).
   */
  map(statements: AssertionStatements, idp: Pick<IdpRecord, 'entityID' | 'scopes' | 'registrationAuthority'>, spEntityId: string): MappedIdentity | MappingProblem {
    const qualifiedForUs = (id: NameId) =>
      (id.nameQualifier === undefined || id.nameQualifier === idp.entityID) && (id.spNameQualifier === undefined || id.spNameQualifier === spEntityId);
    let subject: string | undefined;
    let subjectSource = '';
    for (const name of this.#names.subject) {
      const values = statements.attributes.get(name) ?? [];
      // Single-valued by definition; several values mean the IdP is confused, so none is taken.
      if (values.length !== 1) continue;
      const value = values[0]!;
      let candidate: string | undefined;
      if (value.nameId) {
        if (qualifiedForUs(value.nameId)) candidate = value.nameId.value;
      } else if (name === TARGETED_ID) {
        // The legacy string form `idp!sp!id` (eduPerson 2021-11, eduPersonTargetedID).
        const parts = value.text.split('!');
        candidate = parts.length === 3 ? (parts[0] === idp.entityID && parts[1] === spEntityId ? parts[2] : undefined) : value.text;
      } else {
        candidate = value.text;
        const syntax = SCOPED_SUBJECTS[name];
        if (syntax && (!syntax.test(candidate) || !scopeAllowed(idp, candidate.slice(candidate.lastIndexOf('@') + 1)))) candidate = undefined;
      }
      if (candidate && !CONTROL.test(candidate) && candidate.length <= 1024) {
        subject = candidate;
        subjectSource = name;
        break;
      }
    }
    const nameId = statements.nameId;
    if (subject === undefined && nameId?.value && nameId.format && this.#names.subjectNameIdFormats.includes(nameId.format)
      && qualifiedForUs(nameId) && !CONTROL.test(nameId.value) && nameId.value.length <= 1024) {
      subject = nameId.value;
      subjectSource = 'NameID';
    }
    if (subject === undefined) return 'no_subject';

    const first = (names: readonly string[]) => {
      for (const name of names) {
        const value = statements.attributes.get(name)?.find((v) => v.text !== '' && !CONTROL.test(v.text));
        if (value) return value.text;
      }
      return undefined;
    };
    const given = first(this.#names.givenName);
    const surname = first(this.#names.surname);
    const name = first(this.#names.displayName) ?? ([given, surname].filter(Boolean).join(' ') || undefined);
    const emailValue = this.#names.email.flatMap((n) => statements.attributes.get(n) ?? []).find((v) => /^[^\s@]{1,64}@[^\s@]{1,189}$/.test(v.text));
    const scopedName = USERNAME_SOURCES.map((n) => statements.attributes.get(n)).map((values) => {
      const value = values?.length === 1 ? values[0]!.text : undefined;
      return value !== undefined && SCOPED_SYNTAX.test(value) && scopeVouched(idp, value.slice(value.lastIndexOf('@') + 1)) ? value : undefined;
    }).find((v) => v !== undefined);
    const entitlements = this.#names.entitlement.flatMap((n) => statements.attributes.get(n) ?? []).map((v) => v.text);
    const { groups, refused } = this.groups(entitlements, idp);
    return {
      subject,
      subjectSource,
      name: name?.slice(0, 200),
      email: emailValue?.text,
      scopedName,
      groups,
      refusedEntitlements: refused,
      assurance: assuranceValues(statements.attributes.get(ASSURANCE) ?? []),
    };
  }

  /**
   * The group paths the entitlement rules map `entitlements` from `idp` to
   * (see the rule schema for the template syntax), and the values a rule
   * matched that `idp` may not assert for it: a rule counts only for the
   * identity providers it names, by entityID or by the registration
   * authority of their metadata (MDRPI §2.1). The one place that decides.
   */
  groups(entitlements: readonly string[], idp: Pick<IdpRecord, 'entityID' | 'registrationAuthority'>): { groups: string[]; refused: string[] } {
    const out = new Set<string>();
    const refused = new Set<string>();
    for (const value of entitlements) {
      for (const rule of this.#rules) {
        const match = rule.pattern.exec(value);
        if (!match) continue;
        const allowed = rule.entityIds.has(idp.entityID)
          || (idp.registrationAuthority !== undefined && rule.registrationAuthorities.has(idp.registrationAuthority));
        if (!allowed) {
          refused.add(value);
          continue;
        }
        const capture = (key: string) => (/^\d$/.test(key) ? match[Number(key)] : match.groups?.[key]) ?? '';
        const expanded = rule.group.replace(/\$(\d|<([A-Za-z_][A-Za-z0-9_]*)>)/g, (_all, digit: string, named: string | undefined) =>
          capture(named ?? digit).replaceAll(':', '/'));
        const path = `/${expanded.split('/').filter(Boolean).join('/')}`;
        if (GROUP_PATH.test(path)) out.add(path);
      }
    }
    return { groups: [...out].sort(), refused: [...refused] };
  }
}

/** src/accounts/groups.ts's group path rule. */
const GROUP_PATH = /^(\/(?!\.\.?(?:\/|$))[A-Za-z0-9._-]+)+$/;

/**
 * Usernames to try for a just-in-time account, best first. The rule: a
 * username comes only from a `user@scope` identifier whose scope the
 * identity provider's metadata vouches for ({@link MappedIdentity.scopedName}),
 * kept with its scope, so every identity provider names accounts only
 * inside its own scopes and none can take a name that looks like another's.
 * An unverified `mail`, an identifier with a foreign scope, or an unscoped
 * (opaque) one never becomes a username; without a vouched identifier the
 * account is named `fallback` (a hash of the identity, no `@`). The local
 * part is reduced to letters, digits and `._-`; a name that would not fit
 * in 64 characters whole is not shortened (that could cut the scope). The
 * caller adds a suffix before the `@` when one is taken.
 */
export function usernameCandidates(identity: Pick<MappedIdentity, 'scopedName'>, fallback: string): string[] {
  const scoped = identity.scopedName;
  const at = scoped?.lastIndexOf('@') ?? -1;
  if (!scoped || at < 1) return [fallback];
  const local = scoped.slice(0, at).normalize('NFKD').replace(/\p{M}+/gu, '').replace(/[^A-Za-z0-9._-]+/g, '-')
    .replace(/-{2,}/g, '-').replace(/^[._-]+|[._-]+$/g, '').toLowerCase();
  const name = `${local}@${scoped.slice(at + 1).toLowerCase()}`;
  return local.length >= 1 && name.length <= 64 ? [name, fallback] : [fallback];
}
