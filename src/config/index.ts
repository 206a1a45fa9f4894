import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import type { z } from 'zod';
import { demoRealm } from './demo-realm.ts';
import { longLifetimeProblem, longLifetimes } from './lifetimes.ts';
import { fileConfigSchema, type Config, type FileConfig } from './schema.ts';
import { storageScopeProblem } from '../scopes/wlcg.ts';
import { ADMIN_API_PATH, ADMIN_SCOPE, isHostClientId, WLCG_ANY_AUDIENCE } from './names.ts';
import { FedgateError } from '../util/errors.ts';

export * from './schema.ts';

/** The configuration could not be loaded; `problems` holds one line per problem (path and reason). */
export class ConfigError extends FedgateError {
  readonly code = 'ERR_FEDGATE_CONFIG';
  readonly problems: string[];

  constructor(source: string, problems: string[]) {
    super('invalid_configuration', `invalid configuration (${source}):\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.problems = problems;
  }
}

/** The environment variables fedgate reads; nothing else in fedgate reads process.env. */
export interface Environment {
  PORT?: string;
  /** Listen address (overrides `host`); the demo realm defaults to 127.0.0.1. */
  HOST?: string;
  ISSUER?: string;
  REDIS_URL?: string;
  FEDGATE_CONFIG?: string;
  NODE_ENV?: string;
  LOG_LEVEL?: string;
  /** Port of the TLS listener for client certificates (overrides x509.mtlsPort). */
  FEDGATE_MTLS_PORT?: string;
  /** Trust X-Forwarded-* headers (`true`/`false`, `1`/`0`; overrides trustProxy). */
  FEDGATE_TRUST_PROXY?: string;
  /** Comma-separated IPs or CIDR ranges of trusted proxies (overrides trustedProxies). */
  FEDGATE_TRUSTED_PROXIES?: string;
  [name: string]: string | undefined;
}

function formatIssues(issues: z.core.$ZodIssue[]): string[] {
  return issues.map((issue) => {
    const path = issue.path.length ? issue.path.map(String).join('.') : '(root)';
    return `${path}: ${issue.message}`;
  });
}

/** Cross-field rules a per-field schema cannot say. */
function crossCheck(config: FileConfig): string[] {
  const problems: string[] = [];
  const seenClients = new Set<string>();
  const audiences = new Set(config.resourceServers.map((rs) => rs.audience));
  config.clients.forEach((client, i) => {
    const at = `clients.${i}`;
    if (seenClients.has(client.clientId)) problems.push(`${at}.clientId: duplicate client id ${client.clientId}`);
    if (client.clientId.startsWith('host:') && !isHostClientId(client.clientId)) {
      problems.push(`${at}.clientId: a host client id is host:<fully qualified domain name>, in lower case (WLCG profile §2.2.4), e.g. host:worker01.example.org`);
    }
    if (client.clientId === 'fedgate-account') problems.push(`${at}.clientId: fedgate-account is the built-in client of the account page`);
    if (client.clientId === 'fedgate-console') problems.push(`${at}.clientId: fedgate-console is the built-in client of the admin console`);
    seenClients.add(client.clientId);
    const confidentialOnly = client.grantTypes.filter((g) => g === 'client_credentials' || g === 'token_exchange');
    const method = client.tokenEndpointAuthMethod;
    const tls = method === 'tls_client_auth' || method === 'self_signed_tls_client_auth';
    if (tls && !config.x509.enabled) problems.push(`${at}.tokenEndpointAuthMethod: ${method} needs x509.enabled`);
    if (method === 'tls_client_auth' && !client.tlsClientAuthSubjectDn) problems.push(`${at}.tlsClientAuthSubjectDn: tls_client_auth needs the certificate subject DN`);
    if (method === 'self_signed_tls_client_auth' && !client.jwks) problems.push(`${at}.jwks: self_signed_tls_client_auth needs the client's certificate as a JWK Set with x5c`);
    if ((method === 'client_secret_basic' || method === 'client_secret_post' || method === 'client_secret_jwt') && !client.clientSecret) problems.push(`${at}.clientSecret: ${method} needs a secret`);
    if (method === 'private_key_jwt' && !client.jwks && !client.jwksUri) problems.push(`${at}.jwks: private_key_jwt needs the client's public keys (jwks or jwksUri)`);
    if (client.jwks && client.jwksUri) problems.push(`${at}.jwksUri: give jwks or jwksUri, not both`);
    if (client.certificateBoundAccessTokens && !config.x509.enabled) problems.push(`${at}.certificateBoundAccessTokens: needs x509.enabled`);
    if (!client.clientSecret && !tls && method !== 'private_key_jwt' && confidentialOnly.length) {
      problems.push(`${at}.grantTypes: ${confidentialOnly.join(', ')} needs a confidential client (set clientSecret, or private_key_jwt with keys)`);
    }
    if (client.grantTypes.includes('authorization_code') && client.redirectUris.length === 0) {
      problems.push(`${at}.redirectUris: authorization_code needs at least one redirect URI`);
    }
    client.scopes?.forEach((scope, j) => {
      const problem = storageScopeProblem(scope);
      if (problem) problems.push(`${at}.scopes.${j}: the storage path must be absolute and in normal form (e.g. storage.read:/store): ${problem}`);
    });
    client.redirectUris.forEach((uri, j) => {
      const parsed = URL.parse(uri);
      if (!parsed) problems.push(`${at}.redirectUris.${j}: must be an absolute URI`);
      else if (parsed.hash) problems.push(`${at}.redirectUris.${j}: must not contain a fragment`);
    });
    client.postLogoutRedirectUris.forEach((uri, j) => {
      if (!URL.canParse(uri)) problems.push(`${at}.postLogoutRedirectUris.${j}: must be an absolute URI`);
    });
    if (client.defaultAudience && client.defaultAudience !== WLCG_ANY_AUDIENCE && !audiences.has(client.defaultAudience)) {
      problems.push(`${at}.defaultAudience: ${client.defaultAudience} is not a configured resource server`);
    }
  });
  const seenAudiences = new Set<string>();
  config.resourceServers.forEach((rs, i) => {
    if (seenAudiences.has(rs.audience)) problems.push(`resourceServers.${i}.audience: duplicate audience ${rs.audience}`);
    seenAudiences.add(rs.audience);
    rs.scopes.forEach((scope, j) => {
      if (scope === ADMIN_SCOPE) problems.push(`resourceServers.${i}.scopes.${j}: ${ADMIN_SCOPE} is the scope of the built-in admin API resource server only`);
      if (/\s/.test(scope)) problems.push(`resourceServers.${i}.scopes.${j}: must not contain white space`);
      const problem = storageScopeProblem(scope);
      if (problem) problems.push(`resourceServers.${i}.scopes.${j}: the storage path must be absolute and in normal form (e.g. storage.read:/store): ${problem}`);
    });
  });
  const declared = new Set(config.groups.map((g) => g.path));
  const seenUsers = new Set<string>();
  config.users.forEach((user, i) => {
    if (seenUsers.has(user.username)) problems.push(`users.${i}.username: duplicate username ${user.username}`);
    seenUsers.add(user.username);
    user.groups.forEach((group, j) => {
      if (!declared.has(group)) problems.push(`users.${i}.groups.${j}: group ${group} is not declared under groups`);
    });
  });
  const seenServices = new Set<string>();
  config.gateway.services.forEach((service, i) => {
    const at = `gateway.services.${i}`;
    if (seenServices.has(service.name)) problems.push(`${at}.name: duplicate service ${service.name}`);
    seenServices.add(service.name);
    if (!audiences.has(service.audience)) problems.push(`${at}.audience: ${service.audience} is not a configured resource server`);
    if ((service.domain ?? service.name) === 'scopes') problems.push(`${at}.domain: scopes is the scope policy's domain, not a service's`);
  });
  for (const long of longLifetimes(config)) if (!long.exception) problems.push(longLifetimeProblem(long));
  const { prepublishSeconds, rotationIntervalSeconds } = config.keys;
  if (rotationIntervalSeconds > 0 && rotationIntervalSeconds <= prepublishSeconds) {
    problems.push(`keys.rotationIntervalSeconds: must be longer than keys.prepublishSeconds (${prepublishSeconds}), or 0 to rotate only with \`keys rotate\``);
  }
  config.trustedProxies.forEach((entry, i) => {
    if (!parseAddressRange(entry)) problems.push(`trustedProxies.${i}: must be an IP address or CIDR range (10.0.0.0/8)`);
  });
  return problems;
}

/** An IP address or CIDR range, as node:net's BlockList wants it; undefined when malformed. */
export function parseAddressRange(entry: string): { address: string; prefix: number; family: 'ipv4' | 'ipv6' } | undefined {
  const [address, prefixText, ...rest] = entry.split('/');
  if (rest.length || !address) return undefined;
  const version = isIP(address);
  if (!version) return undefined;
  const max = version === 4 ? 32 : 128;
  const prefix = prefixText === undefined ? max : Number(prefixText);
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > max || (prefixText !== undefined && !/^\d+$/.test(prefixText))) return undefined;
  return { address, prefix, family: version === 4 ? 'ipv4' : 'ipv6' };
}

function envPort(value: string | undefined, name = 'PORT'): number | undefined {
  if (value === undefined || value === '') return undefined;
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new ConfigError('environment', [`${name}: must be an integer from 0 to 65535, got ${JSON.stringify(value)}`]);
  }
  return port;
}

function envBoolean(value: string | undefined, name: string): boolean | undefined {
  if (value === undefined || value === '') return undefined;
  const lower = value.trim().toLowerCase();
  if (lower === 'true' || lower === '1' || lower === 'yes') return true;
  if (lower === 'false' || lower === '0' || lower === 'no') return false;
  throw new ConfigError('environment', [`${name}: must be true or false, got ${JSON.stringify(value)}`]);
}

function envList(value: string | undefined): string[] | undefined {
  if (value === undefined) return undefined;
  return value.split(',').map((entry) => entry.trim()).filter(Boolean);
}

function envIssuer(value: string | undefined): string | undefined {
  if (value === undefined || value === '') return undefined;
  const url = URL.parse(value);
  if (!url || (url.protocol !== 'https:' && url.protocol !== 'http:') || url.search || url.hash) {
    throw new ConfigError('environment', [`ISSUER: must be an http(s) URL without query or fragment, got ${JSON.stringify(value)}`]);
  }
  return value.replace(/\/$/, '');
}

/**
 * Reads and validates the configuration once, at boot: the YAML file named by
 * FEDGATE_CONFIG or, without it (and outside production), the demo realm.
 * Environment variables override the file (PORT, ISSUER, REDIS_URL, LOG_LEVEL,
 * FEDGATE_MTLS_PORT, FEDGATE_TRUST_PROXY, FEDGATE_TRUSTED_PROXIES).
 *
 * @throws ConfigError with one line per problem.
 */
export async function loadConfig(env: Environment): Promise<Config> {
  const production = env.NODE_ENV === 'production';
  let raw: unknown;
  let source: string;
  let demo = false;
  if (env.FEDGATE_CONFIG) {
    source = env.FEDGATE_CONFIG;
    let text: string;
    try {
      text = await readFile(env.FEDGATE_CONFIG, 'utf8');
    } catch (err) {
      throw new ConfigError(source, [`FEDGATE_CONFIG: cannot read ${env.FEDGATE_CONFIG} (${(err as NodeJS.ErrnoException).code ?? 'error'})`]);
    }
    try {
      raw = parseYaml(text, { prettyErrors: true }) ?? {};
    } catch (err) {
      const where = err instanceof YAMLParseError && err.linePos ? `line ${err.linePos[0].line}` : '(file)';
      throw new ConfigError(source, [`${where}: not valid YAML (${err instanceof YAMLParseError ? err.code : 'parse error'})`]);
    }
  } else if (production) {
    throw new ConfigError('environment', [
      'FEDGATE_CONFIG: not set, and NODE_ENV=production refuses to run the demo realm (its users and secrets are public); point FEDGATE_CONFIG at your configuration file',
    ]);
  } else {
    source = 'built-in demo realm';
    raw = demoRealm();
    demo = true;
  }

  const users = demo ? (raw as ReturnType<typeof demoRealm>).users : undefined;
  // Behind a TLS-terminating proxy the demo realm (which has no file to edit) needs these too.
  const trustProxy = envBoolean(env.FEDGATE_TRUST_PROXY, 'FEDGATE_TRUST_PROXY');
  const trustedProxies = envList(env.FEDGATE_TRUSTED_PROXIES);
  const fromEnv = { ...(trustProxy !== undefined ? { trustProxy } : {}), ...(trustedProxies !== undefined ? { trustedProxies } : {}) };
  const withEnv = typeof raw === 'object' && raw !== null && !Array.isArray(raw) ? { ...raw, ...fromEnv } : raw;
  const parsed = fileConfigSchema.safeParse(demo ? { ...(withEnv as object), users: users!.map(({ password: _p, ...u }) => u) } : withEnv);
  if (!parsed.success) throw new ConfigError(source, formatIssues(parsed.error.issues));
  const problems = crossCheck(parsed.data);
  if (problems.length) throw new ConfigError(source, problems);

  const port = envPort(env.PORT) ?? parsed.data.port ?? 8080;
  const issuer = envIssuer(env.ISSUER) ?? parsed.data.issuer?.replace(/\/$/, '') ?? `http://localhost:${port}`;
  const logLevel = (env.LOG_LEVEL as Config['logLevel'] | undefined) ?? parsed.data.logLevel;
  if (!fileConfigSchema.shape.logLevel.safeParse(logLevel).success) {
    throw new ConfigError('environment', [`LOG_LEVEL: must be one of fatal, error, warn, info, debug, trace, silent`]);
  }
  const host = env.HOST || parsed.data.host || (demo ? '127.0.0.1' : undefined);
  const adminApi = `${issuer}${ADMIN_API_PATH}`;
  const adminClash = parsed.data.resourceServers.findIndex((rs) => rs.audience === adminApi || rs.audience.startsWith(`${adminApi}/`));
  if (adminClash !== -1) throw new ConfigError(source, [`resourceServers.${adminClash}.audience: ${adminApi} is the built-in admin API resource server`]);
  const mtlsPort = envPort(env.FEDGATE_MTLS_PORT, 'FEDGATE_MTLS_PORT') ?? parsed.data.x509.mtlsPort;
  return {
    ...parsed.data,
    x509: { ...parsed.data.x509, ...(mtlsPort !== undefined ? { mtlsPort } : {}) },
    issuer,
    port,
    host,
    logLevel,
    redisUrl: env.REDIS_URL || parsed.data.redisUrl || undefined,
    production,
    demo,
    source,
    users: demo ? users! : parsed.data.users,
  };
}
