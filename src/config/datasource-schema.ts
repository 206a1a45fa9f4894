/**
 * A data source: one record that makes a storage endpoint, compute entry
 * point, ML or sync&share service part of the platform — the resource server
 * fedgate issues tokens for, the gateway service that fronts it, its default
 * policies and (optionally) an introspection client. The same record is read
 * from the configuration file (`dataSources`, a seed), the admin API
 * (`/admin/api/resource-servers`) and the command line (`datasource add`).
 */
import { z } from 'zod';
import { SIGNING_ALGORITHMS } from './algorithms.ts';
import { LIFETIME_MAXIMUMS } from './lifetimes.ts';
import { isNormalStoragePath, storageScopeProblem } from '../scopes/wlcg.ts';

/** Kinds of data source (the `kind` of a resource server). */
export const DATA_SOURCE_KINDS = ['storage', 'compute', 'ml', 'sync', 'other'] as const;
export type DataSourceKind = (typeof DATA_SOURCE_KINDS)[number];

/** A data source name: the `/api/<name>` segment, `/authz?service=<name>` and the default policy domain. */
export const DATA_SOURCE_NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;
/** Policy domains that belong to fedgate itself, never to a data source. */
export const RESERVED_DOMAINS: ReadonlySet<string> = new Set(['scopes', 'exchange', 'exchange-by']);
/**
 * The one form in which a service's reverse proxy describes the original
 * request to `/authz`; headers of the other forms are ignored:
 * - `nginx`: `X-Original-Method` and `X-Original-URI` (`proxy_set_header`);
 * - `traefik`: `X-Forwarded-Method`, `X-Forwarded-Uri` and `X-Forwarded-Host`, which ForwardAuth sets itself;
 * - `envoy`: ext_authz's path-prefix form, `/authz<original path>` with the original method and Host.
 */
export const AUTHZ_HEADER_FORMS = ['nginx', 'traefik', 'envoy'] as const;
export type AuthzHeaderForm = (typeof AUTHZ_HEADER_FORMS)[number];

/** HTTP methods a named operation may stand for. */
export const OPERATION_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;

const NAME_MESSAGE = 'lower-case letters, digits and - only, starting with a letter or digit (at most 63)';
const name = z.string().regex(DATA_SOURCE_NAME, NAME_MESSAGE);
/** RFC 6749 §3.3 scope-token: printable ASCII except space, `"` and `\`. */
const scopeToken = z.string().regex(/^[\x21\x23-\x5B\x5D-\x7E]{1,300}$/, 'must be a scope (printable ASCII, no spaces, quotes or backslashes)');
const groupPath = z.string().regex(/^(\/(?!\.\.?(?:\/|$))[A-Za-z0-9._-]+)+$/, 'must be a group path such as /cms/production');
/** A storage path in normal form (src/scopes), a trailing slash allowed (`/`, `/data`, `/store/cms/`). */
const absolutePath = z.string().max(1000).refine(
  (v) => isNormalStoragePath(v.length > 1 && v.endsWith('/') ? v.slice(0, -1) : v),
  'must be an absolute path such as /data (no . or .. segments, no //, no percent-encoding or spaces)',
);

/**
 * RFC 8707 §2: a resource indicator is an absolute URI without a fragment.
 * White space is refused too: it cannot travel in a token request.
 */
export const audienceUri = z.string().max(2000).refine((v) => {
  if (/\s/.test(v) || v.includes('#')) return false;
  const url = URL.parse(v);
  return !!url && /^[a-z][a-z0-9+.-]*:$/i.test(url.protocol);
}, 'must be an absolute URI without a fragment (such as https://storage.example.org)');

/** An upstream: http(s), no credentials, query or fragment. */
export const upstreamUrl = z.string().max(2000).refine((v) => {
  const url = URL.parse(v);
  return !!url && (url.protocol === 'http:' || url.protocol === 'https:') && !url.search && !url.hash && !url.username && !url.password;
}, 'must be an http:// or https:// URL without credentials, query or fragment');

/** One default access rule of a data source, in its own policy domain. */
export const defaultPolicySchema = z.object({
  /** The group the rule is for (its subgroups included). */
  group: groupPath,
  /** A path pattern: `/data/cms/**`, `/jobs/*`, or `*`. */
  path: z.string().min(1).max(2000),
  /** An HTTP method, a named operation of the data source (`read`, `write`, ...), or `*`. */
  action: z.string().min(1).max(100),
  /** A scope the token must also hold (`storage.read` covers the request path; `compute.create`). */
  scope: scopeToken.optional(),
  effect: z.enum(['allow', 'deny']).default('allow'),
}).strict();

/** One scope grant: members of `group` may get `scope` in tokens for this data source's audience. */
export const scopeGrantSchema = z.object({
  group: groupPath,
  scope: scopeToken,
}).strict();

/** Named operations: operation name → the HTTP methods it stands for (`g2` lines). */
export const operationsSchema = z.record(
  z.string().regex(/^[a-z][a-z0-9_.-]{0,62}$/, 'operation names are lower-case letters, digits, _ . - starting with a letter'),
  z.array(z.enum(OPERATION_METHODS)).min(1).max(OPERATION_METHODS.length),
);

/** The data source record, as the configuration file, the admin API and the command line write it. */
export const dataSourceSchema = z.object({
  /** `/api/<name>/*`, `/authz?service=<name>`, and the policy domain unless `domain` says otherwise. */
  name,
  /** The audience (RFC 8707 resource indicator) its tokens carry; unique. */
  audience: audienceUri,
  /** Shown to people (consent page, metadata `resource_name`). */
  displayName: z.string().min(1).max(200).optional(),
  kind: z.enum(DATA_SOURCE_KINDS).default('other'),
  /** Scopes it accepts, besides the ones `storage.basePath` and the compute kind generate. */
  scopes: z.array(scopeToken).max(200).optional(),
  /** Storage kind: WLCG storage scopes rooted at this path (`storage.read:<basePath>`, create, modify, stage). */
  storage: z.object({ basePath: absolutePath }).strict().optional(),
  profile: z.enum(['wlcg', 'aarc', 'groups']).default('wlcg'),
  /** Access token lifetime in seconds (default: `lifetimes.accessToken`); above 6 h only with `lifetimeException`. */
  accessTokenTtl: z.number().int().positive().max(7 * 24 * 3600).optional(),
  /** The risk assessment that allows `accessTokenTtl` above the AARC-G081 maximum of 6 h (WLCG profile §4.3.1). */
  lifetimeException: z.string().trim().min(10).max(500).optional(),
  /** `jwt` (RFC 9068) or `opaque`; default `opaque` with `introspection`, else `jwt`. */
  accessTokenFormat: z.enum(['jwt', 'opaque']).optional(),
  signingAlg: z.enum(SIGNING_ALGORITHMS).default('ES256'),
  /** The policy domain its requests are decided in (default: the name). */
  domain: name.optional(),
  /** Where `/api/<name>/*` is proxied to; without it the data source is decided for at `/authz` only. */
  upstream: upstreamUrl.optional(),
  /** Host / X-Forwarded-Host values whose `/authz` requests are for this data source (Traefik, Envoy). */
  /** How its reverse proxy asks `/authz` (see AUTHZ_HEADER_FORMS; default nginx). */
  authzHeaders: z.enum(AUTHZ_HEADER_FORMS).default('nginx'),
  hosts: z.array(z.string().min(1).max(300).regex(/^[A-Za-z0-9.-]+(?::\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](?::\d{1,5})?$/, 'must be a host name with an optional port')).max(50).default([]),
  /** Seconds to wait for the upstream's response headers, and between body chunks. */
  timeoutSeconds: z.number().positive().max(3600).default(30),
  /** Pass the client's Authorization (and DPoP) header on to the upstream. */
  forwardToken: z.boolean().default(true),
  /** Access rules added to its policy domain, and removed with it. */
  defaultPolicies: z.array(defaultPolicySchema).max(500).default([]),
  /** Scope policy rules for its audience (which groups' tokens may carry which of its scopes). */
  scopeGrants: z.array(scopeGrantSchema).max(500).default([]),
  /** Named operations of its policy domain; default by kind (read/write, read/deploy/undeploy, read/inference/training). */
  operations: operationsSchema.optional(),
  /** Give it its own OAuth client for the introspection endpoint (RFC 7662), for opaque tokens. */
  introspection: z.boolean().default(false),
}).strict().superRefine((ds, ctx) => {
  if (ds.storage && ds.kind !== 'storage') {
    ctx.addIssue({ code: 'custom', path: ['storage'], message: 'only a data source of kind storage has a storage base path' });
  }
  if (ds.kind === 'storage' && !ds.storage && !ds.scopes?.length) {
    ctx.addIssue({ code: 'custom', path: ['storage', 'basePath'], message: 'a storage data source needs storage.basePath (or an explicit scopes list)' });
  }
  if (ds.accessTokenTtl !== undefined && ds.accessTokenTtl > LIFETIME_MAXIMUMS.accessToken && !ds.lifetimeException) {
    ctx.addIssue({ code: 'custom', path: ['accessTokenTtl'], message: `above the maximum of ${LIFETIME_MAXIMUMS.accessToken} s (6 h, AARC-G081, WLCG profile §4.3.1); shorten it, or document the risk assessment that allows it in lifetimeException` });
  }
  ds.scopes?.forEach((scope, i) => {
    const problem = storageScopeProblem(scope);
    if (problem) ctx.addIssue({ code: 'custom', path: ['scopes', i], message: `a storage scope path must be absolute and in normal form (storage.read:/data): ${problem}` });
  });
  if (RESERVED_DOMAINS.has(ds.domain ?? ds.name)) {
    ctx.addIssue({ code: 'custom', path: [ds.domain ? 'domain' : 'name'], message: `${ds.domain ?? ds.name} is one of fedgate's own policy domains` });
  }
});

/** The `dataSources` section of the configuration file: seeds, unique by name and audience. */
export const dataSourcesSchema = z.array(dataSourceSchema).default([]).superRefine((list, ctx) => {
  const names = new Set<string>();
  const audiences = new Set<string>();
  list.forEach((ds, i) => {
    if (names.has(ds.name)) ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `duplicate data source ${ds.name}` });
    if (audiences.has(ds.audience)) ctx.addIssue({ code: 'custom', path: [i, 'audience'], message: `duplicate audience ${ds.audience}` });
    names.add(ds.name);
    audiences.add(ds.audience);
  });
});

/** A validated data source record. */
export type DataSourceSpec = z.infer<typeof dataSourceSchema>;
/** A data source record as written (defaults not yet applied). */
export type DataSourceInput = z.input<typeof dataSourceSchema>;
export type DefaultPolicy = z.infer<typeof defaultPolicySchema>;
export type ScopeGrant = z.infer<typeof scopeGrantSchema>;
