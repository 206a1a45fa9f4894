import { z } from 'zod';
import { SIGNING_ALGORITHMS } from './algorithms.ts';
import { AUTHZ_HEADER_FORMS, dataSourcesSchema } from './datasource-schema.ts';
import { tokenExchangeSchema } from './exchange-schema.ts';
import { samlSchema } from './saml-schema.ts';
import { x509Schema } from './x509-schema.ts';

/** Token profiles a client or resource server can ask for. */
export const TOKEN_PROFILES = ['wlcg', 'aarc', 'groups'] as const;
export type TokenProfile = (typeof TOKEN_PROFILES)[number];

/** Grant types a client may be allowed, in fedgate's short names. */
export const GRANT_TYPES = ['authorization_code', 'refresh_token', 'device_code', 'client_credentials', 'token_exchange'] as const;
export type GrantTypeName = (typeof GRANT_TYPES)[number];

export const RESOURCE_KINDS = ['storage', 'compute', 'ml', 'sync', 'other'] as const;

const seconds = z.number().int().positive();
const absoluteUri = z.string().refine((v) => URL.canParse(v), 'must be an absolute URI');
const groupPath = z.string().regex(/^(\/(?!\.\.?(?:\/|$))[A-Za-z0-9._-]+)+$/, 'must be a group path such as /cms/production');

/** The risk assessment that allows a token lifetime above the AARC-G081 maximum (src/config/lifetimes.ts). */
const lifetimeException = z.string().trim().min(10, 'name the risk assessment or agreement (at least 10 characters)').max(500);

/**
 * Token lifetimes in seconds. Defaults follow AARC-G081 as the WLCG common
 * JWT profile §4.3.1 tabulates it (1 h access and ID tokens, 30 days refresh);
 * the maximums (6 h, 400 days) hold unless `exception` documents why not.
 */
export const lifetimesSchema = z.object({
  accessToken: seconds.default(3600),
  idToken: seconds.default(3600),
  refreshToken: seconds.default(30 * 24 * 3600),
  clientCredentials: seconds.default(3600),
  authorizationCode: seconds.default(60),
  deviceCode: seconds.default(600),
  interaction: seconds.default(3600),
  session: seconds.default(14 * 24 * 3600),
  grant: seconds.default(30 * 24 * 3600),
  /** Allows accessToken, clientCredentials, idToken and refreshToken above their maximums: the risk assessment. */
  exception: lifetimeException.optional(),
}).strict();

export const clientSchema = z.object({
  /** OAuth client_id. */
  clientId: z.string().min(1).max(200).regex(/^[\x21-\x7e]+$/, 'must be printable ASCII without spaces'),
  /** Shared secret of a confidential client; absent for public clients. */
  clientSecret: z.string().min(16, 'must be at least 16 characters').optional(),
  /** Display name on the login and consent pages. */
  name: z.string().max(200).optional(),
  /** `native` for CLI/desktop apps (loopback redirects on any port, RFC 8252), `web` otherwise. */
  applicationType: z.enum(['web', 'native']).default('web'),
  grantTypes: z.array(z.enum(GRANT_TYPES)).min(1),
  redirectUris: z.array(z.string()).default([]),
  postLogoutRedirectUris: z.array(z.string()).default([]),
  /** Space-free list of scopes this client may ask for; absent = any known scope. */
  scopes: z.array(z.string()).optional(),
  /** Token profile for this client's ID tokens and audience-less access tokens. */
  profile: z.enum(TOKEN_PROFILES).optional(),
  /** Access token lifetime of this client (at most 6 h without `lifetimeException`). */
  accessTokenTtl: seconds.optional(),
  /** Refresh token lifetime of this client (at most 400 days without `lifetimeException`). */
  refreshTokenTtl: seconds.optional(),
  /** Allows this client's lifetimes above the AARC-G081 maximums: the risk assessment that does. */
  lifetimeException: lifetimeException.optional(),
  /** Ask the user for consent before issuing tokens (default true). */
  consentRequired: z.boolean().default(true),
  /** Audience used when the client asks for none (RFC 8707 default resource). */
  defaultAudience: z.string().optional(),
  /**
   * How the client authenticates at the token endpoint. Default: client_secret_basic
   * with a secret, none without. client_secret_jwt (RFC 7523, HMAC with the
   * secret) needs `clientSecret`; private_key_jwt (RFC 7523) needs `jwks` or
   * `jwksUri`. tls_client_auth / self_signed_tls_client_auth (RFC 8705) need
   * `x509.enabled`.
   */
  tokenEndpointAuthMethod: z.enum(['client_secret_basic', 'client_secret_post', 'client_secret_jwt', 'private_key_jwt', 'tls_client_auth', 'self_signed_tls_client_auth', 'none']).optional(),
  /** tls_client_auth: the certificate subject DN the client must present (RFC 4514 or OpenSSL form). */
  tlsClientAuthSubjectDn: z.string().min(3).optional(),
  /**
   * The client's public keys as a JWK Set: for private_key_jwt, the keys its
   * assertions are signed with; for self_signed_tls_client_auth, its
   * certificate(s) with `x5c` (RFC 8705 §2.2).
   */
  jwks: z.object({ keys: z.array(z.record(z.string(), z.unknown())).min(1) }).optional(),
  /** private_key_jwt: where the client publishes its JWK Set instead (fetched and cached by oidc-provider). */
  jwksUri: z.url({ protocol: /^https?$/ }).optional(),
  /** Bind this client's access tokens to its TLS client certificate (`cnf.x5t#S256`, RFC 8705 §3). */
  certificateBoundAccessTokens: z.boolean().optional(),
}).strict();

export const resourceServerSchema = z.object({
  /** The audience (RFC 8707 resource indicator), an absolute URI. */
  audience: absoluteUri,
  name: z.string().max(200).optional(),
  kind: z.enum(RESOURCE_KINDS).default('other'),
  /**
   * Scopes this resource server accepts. WLCG storage scopes are written with
   * a path (`storage.read:/store`): a request for `storage.read:/store/cms`
   * is accepted because it lies under it.
   */
  scopes: z.array(z.string().min(1)).default([]),
  profile: z.enum(TOKEN_PROFILES).default('wlcg'),
  /** Access token lifetime for this audience (at most 6 h without `lifetimeException`). */
  accessTokenTtl: seconds.optional(),
  /** Allows this audience's access token lifetime above the AARC-G081 maximum: the risk assessment that does. */
  lifetimeException: lifetimeException.optional(),
  /** `jwt` (RFC 9068, default) or `opaque` (introspection only). */
  accessTokenFormat: z.enum(['jwt', 'opaque']).default('jwt'),
  /** Signing algorithm of this audience's JWT access tokens. */
  signingAlg: z.enum(SIGNING_ALGORITHMS).default('ES256'),
  /**
   * The storage's area for this VO (XRootD/dCache `base_path`): storage paths
   * in its JWT access tokens are relative to it (WLCG profile §2.2.3), while
   * requests, grants and policies keep fedgate's absolute paths.
   */
  storageBasePath: z.string().regex(/^(\/[^/\s]+)+$/, 'must be an absolute path without a trailing slash, such as /store').optional(),
}).strict();

const httpUrl = z.string().refine((v) => {
  const url = URL.parse(v);
  return !!url && (url.protocol === 'http:' || url.protocol === 'https:') && !url.search && !url.hash;
}, 'must be an http(s) URL without query or fragment');

/**
 * A platform service behind the gateway: reachable at `/api/<name>/*` when it
 * has an upstream, and decided for at `/authz?service=<name>` in any case.
 */
export const serviceSchema = z.object({
  /** The path segment in `/api/<name>/*` and the `service` of `/authz`. */
  name: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'lower-case letters, digits and - only'),
  /** The policy domain its requests are decided in (default: the name). */
  domain: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'lower-case letters, digits and - only').optional(),
  /** The audience a token must carry to be accepted here: a configured resource server. */
  audience: absoluteUri,
  /** Upstream base URL requests are proxied to; absent = decision endpoint only. */
  upstream: httpUrl.optional(),
  /** Hosts whose `/authz` requests are for this service (by Host; by X-Forwarded-Host for `authzHeaders: traefik`). */
  hosts: z.array(z.string().min(1)).default([]),
  /**
   * The one form in which its reverse proxy describes the original request to
   * `/authz`: `nginx` (X-Original-Method / -URI), `traefik` (X-Forwarded-Method
   * / -Uri / -Host) or `envoy` (path prefix); the other forms' headers are ignored.
   */
  authzHeaders: z.enum(AUTHZ_HEADER_FORMS).default('nginx'),
  /** Seconds to wait for the upstream's response headers, and between body chunks. */
  timeoutSeconds: z.number().positive().max(3600).default(30),
  /** Pass the client's Authorization (and DPoP) header on to the upstream. */
  forwardToken: z.boolean().default(true),
}).strict();

export const userSchema = z.object({
  username: z.string().min(1).max(100).regex(/^[A-Za-z0-9._@-]+$/, 'letters, digits and . _ @ - only'),
  /** An argon2id PHC string (`$argon2id$...`). */
  passwordHash: z.string().startsWith('$argon2id$', 'must be an argon2id hash (npm run fedgate -- hash-password)').optional(),
  name: z.string().max(200).optional(),
  email: z.email().optional(),
  groups: z.array(groupPath).default([]),
  disabled: z.boolean().default(false),
}).strict();

export const fileConfigSchema = z.object({
  issuer: absoluteUri.optional(),
  port: z.number().int().min(0).max(65535).optional(),
  redisUrl: z.string().optional(),
  /** Trust X-Forwarded-* headers (behind a TLS-terminating proxy). */
  trustProxy: z.boolean().default(false),
  keysDir: z.string().default('keys'),
  /** Signing-key rollover (WLCG common JWT profile §4.3.1, "Issuer Public Key" rows). */
  keys: z.object({
    /**
     * A new signing key is published this long before it signs (at least
     * the resource servers' JWKS cache expiration: 2 days by default).
     */
    prepublishSeconds: z.number().int().min(0).default(2 * 24 * 3600),
    /** Replicas rotate the signing keys on their own at this key age (about 6 months); 0 = only `keys rotate`. */
    rotationIntervalSeconds: z.number().int().min(0).default(182 * 24 * 3600),
    /** `Cache-Control: max-age` of the JWKS: the profile's public key cache refresh, 1 to 6 hours. */
    jwksMaxAgeSeconds: z.number().int().min(3600).max(6 * 3600).default(6 * 3600),
  }).strict().prefault({}),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** Default token profile when neither client nor resource server names one. */
  defaultProfile: z.enum(TOKEN_PROFILES).default('wlcg'),
  lifetimes: lifetimesSchema.prefault({}),
  aarc: z.object({
    /** Namespace of eduperson_entitlement values (AARC-G069), a URN (RFC 8141) such as urn:geant:example.org. */
    entitlementNamespace: z.string().regex(/^urn:[A-Za-z0-9][A-Za-z0-9-]{0,30}[A-Za-z0-9]:[A-Za-z0-9()+,\-.:=@;$_!*'%/~]+$/, 'must be a URN (RFC 8141) such as urn:geant:example.org (AARC-G069)').default('urn:geant:fedgate.local'),
    /** Group authority after `#` (AARC-G069), a domain name; also the scope of voperson_id (AARC-G026). */
    groupAuthority: z.string().regex(/^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/, 'must be a domain name such as aai.example.org').default('fedgate.local'),
  }).strict().prefault({}),
  login: z.object({
    /** Failed logins per username (and per client address) before a lockout window. */
    maxFailures: z.number().int().positive().default(5),
    lockoutSeconds: seconds.default(300),
  }).strict().prefault({}),
  shutdown: z.object({
    /** Hard deadline of a graceful stop (SIGTERM): connections still open then are cut. */
    timeoutSeconds: z.number().positive().max(600).default(10),
    /** While draining, keep-alive connections idle this long are closed (busy ones close after their response). */
    idleCloseMs: z.number().int().min(10).max(60_000).default(250),
  }).strict().prefault({}),
  store: z.object({
    /**
     * Deadline of every store (Redis) call in milliseconds. A call Redis has
     * not answered by then fails, and the request answers 503; while Redis
     * stays unavailable, later calls fail at once.
     */
    deadlineMs: z.number().int().min(50).max(60_000).default(2000),
    /** Seconds clients are asked to wait (`Retry-After`) before retrying a request the unavailable store failed. */
    retryAfterSeconds: z.number().int().min(1).max(3600).default(5),
  }).strict().prefault({}),
  audit: z.object({
    /** Approximate number of audit events kept in the Redis stream. */
    maxEvents: z.number().int().positive().default(100_000),
    /**
     * Bytes of audit events kept in memory while the store is unavailable,
     * written once it is back; events past this bound are dropped, counted
     * (fedgate_audit_events_dropped_total) and logged.
     */
    bufferBytes: z.number().int().min(0).default(4 * 1024 * 1024),
  }).strict().prefault({}),
  registration: z.object({
    /** Dynamic client registration (RFC 7591), only with an initial access token. */
    enabled: z.boolean().default(true),
    initialAccessTokenTtl: seconds.default(24 * 3600),
    /**
     * Self-registration of people (not clients): someone without an account,
     * or a first SAML or certificate sign-in while just-in-time accounts are
     * off, asks for an account at `/account/register`; an administrator
     * approves it (`/admin/api/registrations`). Off by default.
     */
    accounts: z.object({ enabled: z.boolean().default(false) }).strict().prefault({}),
  }).strict().prefault({}),
  /**
   * The Acceptable Use Policy: accepted at first sign-in and again whenever
   * `version` changes; a user who has not accepted the current version gets
   * no tokens. Absent: no policy to accept.
   */
  aup: z.object({
    /** Raising it asks every user again. */
    version: z.string().trim().min(1).max(50),
    /** The policy's text, shown on the acceptance page. */
    text: z.string().trim().min(1).max(20_000).optional(),
    /** Where the policy is published, linked from the acceptance page. */
    url: z.url({ protocol: /^https?$/ }).optional(),
  }).strict().refine((a) => a.text !== undefined || a.url !== undefined, 'give the policy\'s text or its url').optional(),
  /**
   * Addresses (IPs or CIDR ranges) of proxies trusted to pass a client
   * certificate in a header (RFC 9440 Client-Cert). Such headers from any
   * other address are ignored.
   */
  trustedProxies: z.array(z.string().min(1)).default([]),
  /** Address to listen on (IP address or host name); default: every interface. The HOST variable overrides it. */
  host: z.string().min(1).optional(),
  policies: z.object({
    /** Directory of policy CSV files that seed the store on first start. */
    dir: z.string().default('policies'),
    /** Seconds between checks of the policy version in the store (a safety net under pub/sub). */
    pollSeconds: z.number().positive().max(3600).default(5),
  }).strict().prefault({}),
  gateway: z.object({
    services: z.array(serviceSchema).default([]),
    /** Verified tokens kept in memory per replica, by hash, for their remaining lifetime. */
    tokenCacheSize: z.number().int().min(0).default(100_000),
    /** Largest request body proxied to an upstream, in bytes (0 = unlimited). */
    maxBodyBytes: z.number().int().min(0).default(0),
  }).strict().prefault({}),
  /** Token exchange (RFC 8693): trusted external issuers and limits. */
  tokenExchange: tokenExchangeSchema.prefault({}),
  saml: samlSchema.prefault({}),
  x509: x509Schema.prefault({}),
  groups: z.array(z.object({
    path: groupPath,
    description: z.string().optional(),
    /** Usernames of the group's managers (they approve membership requests of it and its subgroups), seeded once. */
    managers: z.array(z.string().min(1).max(100)).max(100).optional(),
  }).strict()).default([]),
  clients: z.array(clientSchema).default([]),
  resourceServers: z.array(resourceServerSchema).default([]),
  /** Data sources (resource server + gateway service + default policies), seeded into the store once each (docs/datasources.md). */
  dataSources: dataSourcesSchema,
  users: z.array(userSchema).default([]),
}).strict();

export type FileConfig = z.infer<typeof fileConfigSchema>;
export type ClientConfig = z.infer<typeof clientSchema>;
export type ServiceConfig = z.infer<typeof serviceSchema>;
export type ResourceServerConfig = z.infer<typeof resourceServerSchema>;
export type UserSeed = z.infer<typeof userSchema> & { password?: string };
export type Lifetimes = z.infer<typeof lifetimesSchema>;

/** The validated configuration every part of fedgate receives. */
export interface Config extends Omit<FileConfig, 'users'> {
  issuer: string;
  port: number;
  /**
   * Address the HTTP (and mTLS) listeners bind to; undefined = every
   * interface. HOST overrides `host`; the demo realm defaults to 127.0.0.1
   * (its credentials are public), a configuration file to every interface.
   */
  host?: string | undefined;
  redisUrl: string | undefined;
  production: boolean;
  /** True when running the built-in demo realm. */
  demo: boolean;
  /** Where the configuration came from, for the start-up banner. */
  source: string;
  users: UserSeed[];
}
