/**
 * A gateway test bed made of real parts: signing keys from src/keys, a
 * MemoryStore, real Accounts, a real oidc-provider (for opaque tokens), a
 * Koa app on loopback serving the gateway's middlewares the way app.ts
 * mounts them, and an upstream node:http server that records what reaches
 * it. The PDP is a small rule table: the real engine is tested in test/authz.
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { importJWK, SignJWT, type JWK, type JWTPayload } from 'jose';
import Koa from 'koa';
import type Provider from 'oidc-provider';
import { Accounts, effectiveGroups, type Account } from '../../src/accounts/accounts.ts';
import { Groups } from '../../src/accounts/groups.ts';
import { PolicyService } from '../../src/authz/policy-service.ts';
import type { DecisionRequest, Explanation, PolicyDecisionPoint } from '../../src/authz/types.ts';
import { loadConfig, type Config, type ServiceConfig } from '../../src/config/index.ts';
import { createGateway, type Gateway } from '../../src/gateway/index.ts';
import { jwksForProvider, loadOrCreateKeys, publicJwks, type KeySet } from '../../src/keys/index.ts';
import { Audit } from '../../src/observability/audit.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { createMetrics } from '../../src/observability/metrics.ts';
import { createProvider } from '../../src/oidc/provider.ts';
import { tokenExchange } from '../../src/exchange/index.ts';
import { ResourceServers } from '../../src/resource-servers/resource-servers.ts';
import { MemoryStore } from '../../src/store/index.ts';
import { LogCapture } from '../support/harness.ts';
export { LogCapture };

export const ISSUER = 'https://id.fedgate.test';
export const STORAGE = 'https://storage.demo';
export const ORCHESTRATOR = 'https://orchestrator.demo';
export const ML = 'https://ml.demo';


/** One allow rule: subject or group, domain, path prefix (`*` any), action (`*` any), optional required scope. */
export interface Rule {
  subject: string;
  domain: string;
  path: string;
  action: string;
  scope?: string;
}

/** A rule-table PDP with the PolicyDecisionPoint contract (allow rules only; default deny). */
export class TablePdp implements PolicyDecisionPoint {
  rules: Rule[] = [];
  allowedCalls = 0;
  explainCalls = 0;

  allowed(request: DecisionRequest): boolean {
    this.allowedCalls += 1;
    return this.#evaluate(request).allowed;
  }

  explain(request: DecisionRequest) {
    this.explainCalls += 1;
    return this.#evaluate(request);
  }

  #evaluate(request: DecisionRequest): { allowed: boolean; explanation: Explanation } {
    const principals = [request.subject, ...effectiveGroups(request.groups ?? [])];
    const missing: string[] = [];
    for (const rule of this.rules) {
      if (!principals.includes(rule.subject) || rule.domain !== request.domain) continue;
      if (rule.action !== '*' && rule.action !== request.action) continue;
      if (rule.path !== '*' && request.object !== rule.path && !request.object.startsWith(`${rule.path}/`)) continue;
      const line = { ptype: 'p' as const, values: [rule.subject, rule.domain, rule.path, rule.action, 'allow', rule.scope ?? ''] };
      if (!rule.scope || request.scopes?.includes(rule.scope)) {
        return { allowed: true, explanation: { outcome: 'allow', rule: line, principals } };
      }
      missing.push(rule.scope);
    }
    return { allowed: false, explanation: { outcome: 'no_match', principals, ...(missing.length ? { missingScopes: missing } : {}) } };
  }
}

/** What the upstream received. */
export interface Received {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  rawHeaders: string[];
  bodyBytes: number;
  /** The connection closed before the upstream finished its answer. */
  closedEarly: boolean;
}

/**
 * The upstream: records every request; `/…/echo…` streams the request body
 * back as it arrives, `/…/hang` never answers, `/…/stall` sends headers and
 * then nothing, `/…/hop` answers with hop-by-hop headers, anything else a
 * small JSON body.
 */
export async function startUpstream(): Promise<{ server: Server; url: string; received: Received[]; close(): Promise<void> }> {
  const received: Received[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const record: Received = { method: req.method!, url: req.url!, headers: req.headers, rawHeaders: req.rawHeaders, bodyBytes: 0, closedEarly: false };
    received.push(record);
    res.on('close', () => { record.closedEarly = !res.writableFinished; });
    if (req.url!.includes('/echo')) {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      res.flushHeaders();
      req.on('data', (chunk: Buffer) => { record.bodyBytes += chunk.length; });
      req.pipe(res);
      return;
    }
    if (req.url!.includes('/hang')) return;
    if (req.url!.includes('/stall')) {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('partial');
      return;
    }
    req.on('data', (chunk: Buffer) => { record.bodyBytes += chunk.length; });
    req.on('end', () => {
      const headers: Record<string, string> = { 'content-type': 'application/json', 'x-upstream': 'yes' };
      if (req.url!.includes('/hop')) Object.assign(headers, { connection: 'x-private-hop', 'x-private-hop': 'secret', 'keep-alive': 'timeout=5' });
      res.writeHead(req.url!.includes('/created') ? 201 : 200, headers);
      res.end(JSON.stringify({ ok: true, method: req.method, url: req.url, bytes: record.bodyBytes }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    server,
    url: `http://127.0.0.1:${port}`,
    received,
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

/** A port that was free a moment ago (nothing listens on it). */
export async function closedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createNetServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

export interface Response {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  json(): any;
}

/** A raw HTTP/1.1 request: the path goes out exactly as given (fetch would normalise `..`). */
export function send(base: string, path: string, options: { method?: string; headers?: Record<string, string | string[]>; body?: Buffer | string } = {}): Promise<Response> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: url.hostname, port: url.port, path, method: options.method ?? 'GET', headers: options.headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode!, headers: res.headers, text, json: () => JSON.parse(text) });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

export interface FixtureOptions {
  /** Extra changes to the configuration before the gateway is built. */
  configure?: (config: Config, upstream: string) => void;
}

export interface Fixture {
  config: Config;
  store: MemoryStore;
  accounts: Accounts;
  users: Record<'alice' | 'bob' | 'admin' | 'carol', Account>;
  keys: KeySet;
  provider: Provider;
  pdp: TablePdp;
  gateway: Gateway;
  /** The Koa app serving the gateway (tests may serve it over TLS too). */
  app: Koa;
  logs: LogCapture;
  audit: Audit;
  /** The policy version the gateway sees; bump it after changing accounts. */
  version: { value: number };
  /** fedgate's base URL. */
  url: string;
  upstream: Awaited<ReturnType<typeof startUpstream>>;
  /** Errors that escaped the gateway to the app's boundary (should stay empty). */
  escaped: unknown[];
  /** Errors Koa emitted on the app (fedgate logs those that are not `expose`d as unhandled). */
  emitted: Error[];
  /** Signs an RFC 9068 access token with fedgate's key (claims override the defaults: alice, storage audience). */
  sign(claims?: JWTPayload & Record<string, unknown>, options?: { alg?: 'ES256' | 'RS256'; typ?: string }): Promise<string>;
  close(): Promise<void>;
}

/** The services every gateway test sees; `configure` may change them. */
function services(upstream: string, closed: number): ServiceConfig[] {
  const base = { hosts: [], authzHeaders: 'nginx' as const, timeoutSeconds: 5, forwardToken: true };
  return [
    { ...base, name: 'data', audience: STORAGE, upstream: `${upstream}/base/`, hosts: ['data.example'] },
    { ...base, name: 'orchestrator', audience: ORCHESTRATOR, upstream, forwardToken: false, hosts: ['jobs.example:8443'] },
    { ...base, name: 'ml', audience: ML, upstream },
    { ...base, name: 'slow', audience: STORAGE, upstream: `${upstream}/hang`, timeoutSeconds: 0.4 },
    { ...base, name: 'stalling', audience: STORAGE, upstream: `${upstream}/stall`, timeoutSeconds: 0.4 },
    { ...base, name: 'gone', audience: STORAGE, upstream: `http://127.0.0.1:${closed}` },
    { ...base, name: 'decide-only', audience: STORAGE },
    // The same storage service behind Traefik and behind Envoy (policy domain data).
    { ...base, name: 'data-traefik', domain: 'data', audience: STORAGE, hosts: ['traefik.example'], authzHeaders: 'traefik' },
    { ...base, name: 'data-envoy', domain: 'data', audience: STORAGE, hosts: ['envoy.example'], authzHeaders: 'envoy' },
  ];
}

/** Starts the whole test bed. */
export async function startFixture(options: FixtureOptions = {}): Promise<Fixture> {
  const keysDir = await mkdtemp(join(tmpdir(), 'fedgate-gateway-'));
  const upstream = await startUpstream();
  const config = await loadConfig({ ISSUER, LOG_LEVEL: 'info' });
  config.keysDir = keysDir;
  config.gateway.services = services(upstream.url, await closedPort());
  config.gateway.tokenCacheSize = 1000;
  options.configure?.(config, upstream.url);

  const logs = new LogCapture();
  const logger = createLogger('info', logs);
  const store = new MemoryStore();
  const accounts = new Accounts(store);
  const users = {
    alice: await accounts.create({ username: 'alice', groups: ['/cms/production'] }),
    bob: await accounts.create({ username: 'bob', groups: ['/atlas'] }),
    admin: await accounts.create({ username: 'admin', groups: ['/admins'] }),
    carol: await accounts.create({ username: 'carol', groups: ['/cms'], disabled: true }),
  };
  const keys = await loadOrCreateKeys(keysDir);
  const metrics = createMetrics();
  const audit = new Audit(store, logger, 1000);
  // Token issuance (not exercised here: tests save tokens directly) consults the scope policy; it is built, not started.
  const groups = new Groups(store, accounts);
  const policy = new PolicyService({ config, store, logger, accounts, groups, audienceExists: () => true });
  const resourceServers = new ResourceServers(config.resourceServers, config.issuer);
  const provider = createProvider({
    config, store, logger, metrics, audit, accounts, groups, policy, resourceServers,
    jwks: jwksForProvider(keys), cookieKeys: ['k'.repeat(43)],
    tokenExchange: tokenExchange({ config, store, accounts, policy, resourceServers, audit, logger }),
  });
  const pdp = new TablePdp();
  const version = { value: 1 };
  const jwks = publicJwks(keys);
  const gateway = createGateway({
    config, store, logger, metrics, audit, accounts, pdp,
    policyVersion: () => version.value,
    jwks: () => jwks,
    provider: () => provider,
  });

  const escaped: unknown[] = [];
  const emitted: Error[] = [];
  const app = new Koa({ proxy: config.trustProxy });
  app.silent = true;
  app.on('error', (err: Error) => emitted.push(err));
  app.use(async (ctx, next) => {
    ctx.state.requestId = randomUUID();
    try {
      await next();
    } catch (err) {
      escaped.push(err);
      ctx.status = 500;
      ctx.body = { error: 'server_error' };
    }
  });
  app.use(async (ctx, next) => {
    if (ctx.path === '/authz' || ctx.path.startsWith('/authz/')) return gateway.authz(ctx, next);
    if (ctx.path.startsWith('/api/')) return gateway.proxy(ctx, next);
    ctx.status = 404;
  });
  // The same limits as fedgate's listener (src/app.ts).
  const server = createServer({ maxHeaderSize: 16 * 1024, requestTimeout: 30_000, headersTimeout: 10_000 }, app.callback());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const privateKey = async (alg: 'ES256' | 'RS256') => {
    const stored = keys.keys.find((k) => k.jwk.alg === alg && k.retiredAt === undefined)!;
    return { key: await importJWK(stored.jwk as JWK, alg), kid: stored.jwk.kid };
  };

  return {
    config, store, accounts, users, keys, provider, pdp, gateway, app, logs, audit, version, url, upstream, escaped, emitted,
    async sign(claims = {}, signOptions = {}) {
      const alg = signOptions.alg ?? 'ES256';
      const { key, kid } = await privateKey(alg);
      const now = Math.floor(Date.now() / 1000);
      const payload = {
        iss: ISSUER, sub: users.alice.id, aud: STORAGE, client_id: 'demo-cli', scope: 'storage.read:/',
        iat: now, nbf: now - 60, exp: now + 600, jti: randomUUID(), ...claims,
      };
      return new SignJWT(payload).setProtectedHeader({ alg, kid, typ: signOptions.typ ?? 'at+jwt' }).sign(key);
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await gateway.close();
      await upstream.close();
      await audit.flush();
      await store.close();
      await rm(keysDir, { recursive: true, force: true });
    },
  };
}

/** `Authorization: Bearer <token>`. */
export const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

/** The nginx auth_request form of a question to /authz. */
export function nginx(method: string, uri: string, extra: Record<string, string> = {}): Record<string, string> {
  return { 'x-original-method': method, 'x-original-uri': uri, ...extra };
}
