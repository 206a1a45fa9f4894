import { z } from 'zod';
import { dataSourcesSchema } from './datasource-schema.ts';
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

/** The WLCG audience used when a WLCG-profile token is asked for no audience (WLCG profile §2.1.3). */
export const WLCG_ANY_AUDIENCE = 'https://wlcg.cern.ch/jwt/v1/any';

const seconds = z.number().int().positive();
const absoluteUri = z.string().refine((v) => URL.canParse(v), 'must be an absolute URI');
const groupPath = z.string().regex(/^(\/(?!\.\.?(?:\/|$))[A-Za-z0-9._-]+)+$/, 'must be a group path such as /cms/production');

/** Token lifetimes in seconds. Defaults follow the WLCG common JWT profile §4.3.1. */
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
  accessTokenTtl: seconds.optional(),
  refreshTokenTtl: seconds.optional(),
  /** Ask the user for consent before issuing tokens (default true). */
  consentRequired: z.boolean().default(true),
  /** Audience used when the client asks for none (RFC 8707 default resource). */
  defaultAudience: z.string().optional(),
  /**
   * How the client authenticates at the token endpoint. Default: client_secret_basic
   * with a secret, none without. tls_client_auth / self_signed_tls_client_auth
   * (RFC 8705) need `x509.enabled`.
   */
  tokenEndpointAuthMethod: z.enum(['client_secret_basic', 'client_secret_post', 'tls_client_auth', 'self_signed_tls_client_auth', 'none']).optional(),
  /** tls_client_auth: the certificate subject DN the client must present (RFC 4514 or OpenSSL form). */
  tlsClientAuthSubjectDn: z.string().min(3).optional(),
  /** self_signed_tls_client_auth: the client's certificate(s) as a JWK Set with `x5c` (RFC 8705 §2.2). */
  jwks: z.object({ keys: z.array(z.record(z.string(), z.unknown())).min(1) }).optional(),
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
  accessTokenTtl: seconds.optional(),
  /** `jwt` (RFC 9068, default) or `opaque` (introspection only). */
  accessTokenFormat: z.enum(['jwt', 'opaque']).default('jwt'),
  /** Signing algorithm of this audience's JWT access tokens. */
  signingAlg: z.enum(['ES256', 'RS256']).default('ES256'),
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
  /** Hosts (Host / X-Forwarded-Host) whose `/authz` requests are for this service. */
  hosts: z.array(z.string().min(1)).default([]),
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
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** Default token profile when neither client nor resource server names one. */
  defaultProfile: z.enum(TOKEN_PROFILES).default('wlcg'),
  lifetimes: lifetimesSchema.prefault({}),
  aarc: z.object({
    /** Namespace of eduperson_entitlement values (AARC-G002), e.g. urn:geant:example.org. */
    entitlementNamespace: z.string().default('urn:geant:fedgate.local'),
    /** Group authority after `#` (AARC-G002). */
    groupAuthority: z.string().default('fedgate.local'),
  }).strict().prefault({}),
  login: z.object({
    /** Failed logins per username (and per client address) before a lockout window. */
    maxFailures: z.number().int().positive().default(5),
    lockoutSeconds: seconds.default(300),
  }).strict().prefault({}),
  audit: z.object({
    /** Approximate number of audit events kept in the Redis stream. */
    maxEvents: z.number().int().positive().default(100_000),
  }).strict().prefault({}),
  registration: z.object({
    /** Dynamic client registration (RFC 7591), only with an initial access token. */
    enabled: z.boolean().default(true),
    initialAccessTokenTtl: seconds.default(24 * 3600),
  }).strict().prefault({}),
  /**
   * Addresses (IPs or CIDR ranges) of proxies trusted to pass a client
   * certificate in a header (RFC 9440 Client-Cert). Such headers from any
   * other address are ignored.
   */
  trustedProxies: z.array(z.string().min(1)).default([]),
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
  groups: z.array(z.object({ path: groupPath, description: z.string().optional() }).strict()).default([]),
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
  redisUrl: string | undefined;
  production: boolean;
  /** True when running the built-in demo realm. */
  demo: boolean;
  /** Where the configuration came from, for the start-up banner. */
  source: string;
  users: UserSeed[];
}
