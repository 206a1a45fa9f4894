import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer as createHttpServer, request as httpRequest } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import * as oidc from 'openid-client';
import { createFedgate, type Fedgate } from '../../src/app.ts';
import { loadConfig, type Config } from '../../src/config/index.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { MemoryStore, RedisStore } from '../../src/store/index.ts';
import type { Store } from '../../src/store/store.ts';

export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

/** A port that was free a moment ago (the issuer must name it before the server listens). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Captures every log line a fedgate instance writes, for "no secret in logs" checks. */
export class LogCapture extends Writable {
  readonly lines: string[] = [];
  override _write(chunk: Buffer, _enc: string, done: () => void): void {
    this.lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
    done();
  }
  get text(): string {
    return this.lines.join('\n');
  }
}

export interface TestServer {
  fedgate: Fedgate;
  issuer: string;
  config: Config;
  store: Store;
  logs: LogCapture;
  keysDir: string;
  redisPrefix: string | undefined;
  /** Stops this instance (the store and keys stay for a restart). */
  stop(): Promise<void>;
  /** Starts a new instance on the same port, store (Redis prefix) and keys. */
  restart(): Promise<TestServer>;
  /** Stops and removes everything this server created. */
  cleanup(): Promise<void>;
}

export interface StartOptions {
  /** Back the instance with the real Redis under a unique key prefix (default: memory store). */
  redis?: boolean;
  /** Changes to the demo configuration. */
  configure?: (config: Config) => void;
  keysDir?: string;
  port?: number;
  redisPrefix?: string;
  watchKeys?: boolean;
  env?: Record<string, string>;
}

/** Boots fedgate with the demo realm on loopback, each test file its own instance. */
export async function startServer(options: StartOptions = {}): Promise<TestServer> {
  const port = options.port ?? await freePort();
  const issuer = `http://127.0.0.1:${port}`;
  const keysDir = options.keysDir ?? await mkdtemp(join(tmpdir(), 'fedgate-keys-'));
  const config = await loadConfig({ ISSUER: issuer, PORT: String(port), LOG_LEVEL: 'debug', ...options.env });
  config.keysDir = keysDir;
  options.configure?.(config);
  const redisPrefix = options.redis ? (options.redisPrefix ?? `fedgate-test-${randomBytes(6).toString('hex')}:`) : undefined;
  const store: Store = redisPrefix ? new RedisStore({ url: REDIS_URL, keyPrefix: redisPrefix, deadlineMs: config.store.deadlineMs }) : new MemoryStore();
  const logs = new LogCapture();
  const fedgate = await createFedgate(config, { store, logger: createLogger('debug', logs), watchKeys: options.watchKeys ?? false });
  await fedgate.listen(port, '127.0.0.1');
  const server: TestServer = {
    fedgate, issuer, config, store, logs, keysDir, redisPrefix,
    stop: () => fedgate.close(),
    restart: async () => {
      await fedgate.close().catch(() => {});
      return startServer({ ...options, port, keysDir, ...(redisPrefix ? { redisPrefix } : {}) });
    },
    cleanup: async () => {
      await fedgate.close().catch(() => {});
      if (redisPrefix) await deleteRedisPrefix(redisPrefix);
      await rm(keysDir, { recursive: true, force: true });
    },
  };
  return server;
}

/** Removes every Redis key a test created. */
export async function deleteRedisPrefix(prefix: string): Promise<void> {
  const { Redis } = await import('ioredis');
  const redis = new Redis(REDIS_URL);
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length) await redis.del(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}

/** openid-client configuration for a demo client (plain HTTP on loopback is allowed in tests only). */
export async function rp(issuer: string, clientId: string, secret?: string): Promise<oidc.Configuration> {
  return oidc.discovery(new URL(issuer), clientId, secret, secret ? oidc.ClientSecretBasic(secret) : oidc.None(), {
    execute: [oidc.allowInsecureRequests],
  });
}

/**
 * A minimal browser: a cookie jar with path scoping, no automatic redirects,
 * so tests walk every step of the login and consent pages.
 */
export class Browser {
  #cookies = new Map<string, { value: string; path: string }>();

  #cookieHeader(url: URL): string {
    return [...this.#cookies.entries()]
      .filter(([, c]) => url.pathname.startsWith(c.path))
      .map(([name, c]) => `${name}=${c.value}`)
      .join('; ');
  }

  #store(res: Response): void {
    for (const header of res.headers.getSetCookie()) {
      const [pair, ...attrs] = header.split(';');
      const eq = pair!.indexOf('=');
      const name = pair!.slice(0, eq).trim();
      const value = pair!.slice(eq + 1).trim();
      const path = attrs.map((a) => a.trim()).find((a) => a.toLowerCase().startsWith('path='))?.slice(5) ?? '/';
      const expired = attrs.some((a) => /^expires=/i.test(a.trim()) && Date.parse(a.trim().slice(8)) < Date.now());
      const key = `${name}`;
      if (!value || expired) this.#cookies.delete(key);
      else this.#cookies.set(key, { value, path });
    }
  }

  /**
   * Keeps the cookies of a response this browser did not fetch itself
   * (a navigation sent with node:http: fetch always says
   * `Sec-Fetch-Mode: cors`, which some servers answer differently).
   */
  adoptCookies(setCookies: readonly string[]): void {
    const headers = new Headers();
    for (const cookie of setCookies) headers.append('set-cookie', cookie);
    this.#store(new Response(null, { headers }));
  }

  async request(url: string | URL, init: { method?: string; form?: Record<string, string>; headers?: Record<string, string> } = {}): Promise<Response> {
    const target = new URL(url);
    const headers: Record<string, string> = { accept: 'text/html', ...init.headers };
    const cookie = this.#cookieHeader(target);
    if (cookie) headers.cookie = cookie;
    let body: string | undefined;
    if (init.form) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      body = new URLSearchParams(init.form).toString();
    }
    const res = await fetch(target, { method: init.method ?? (init.form ? 'POST' : 'GET'), headers, body, redirect: 'manual' });
    this.#store(res);
    return res;
  }

  /** Follows redirects on the issuer's origin; returns the first response that is not one (or that leaves it). */
  async follow(url: string | URL, stopAt: (location: URL) => boolean): Promise<{ res: Response; url: URL }> {
    let current = new URL(url);
    for (let i = 0; i < 10; i += 1) {
      const res = await this.request(current);
      const location = res.headers.get('location');
      if (res.status < 300 || res.status >= 400 || !location) return { res, url: current };
      const next = new URL(location, current);
      if (stopAt(next)) return { res, url: next };
      current = next;
    }
    throw new Error('too many redirects');
  }
}

/** The value of a hidden input in a page. */
export function hiddenInput(page: string, name: string): string {
  const match = new RegExp(`<input[^>]*name="${name}"[^>]*value="([^"]*)"`).exec(page)
    ?? new RegExp(`<input[^>]*value="([^"]*)"[^>]*name="${name}"`).exec(page);
  if (!match) throw new Error(`no input ${name} in page`);
  return match[1]!.replace(/&amp;/g, '&');
}

/** The action of the form whose action path ends with `suffix`. */
export function formAction(page: string, suffix: string): string {
  const match = [...page.matchAll(/<form[^>]*action="([^"]+)"/g)].map((m) => m[1]!.replace(/&amp;/g, '&')).find((a) => a.endsWith(suffix));
  if (!match) throw new Error(`no form ending with ${suffix}`);
  return match;
}

export interface LoginOptions {
  username: string;
  password: string;
  /** Approve the consent page (default) or deny it. */
  consent?: 'approve' | 'deny';
}

/**
 * Walks a browser through fedgate's login and consent pages from an
 * authorization URL until the redirect back to the client; returns that URL.
 */
export async function loginThroughPages(browser: Browser, authorizationUrl: URL, redirectPrefix: string, options: LoginOptions): Promise<URL> {
  const leaves = (u: URL) => u.href.startsWith(redirectPrefix);
  let step = await browser.follow(authorizationUrl, leaves);
  for (let i = 0; i < 5; i += 1) {
    if (leaves(step.url)) return step.url;
    const page = await step.res.text();
    if (step.res.status !== 200) throw new Error(`unexpected ${step.res.status} at ${step.url.pathname}: ${page.slice(0, 300)}`);
    const csrf = hiddenInput(page, 'csrf');
    let res: Response;
    if (page.includes('name="password"')) {
      res = await browser.request(new URL(formAction(page, '/login'), step.url), { form: { username: options.username, password: options.password, csrf } });
    } else if (/<form[^>]*action="[^"]*\/aup"/.test(page)) {
      // The acceptable use policy (when configured): accepted, or declined with the consent.
      if (options.consent === 'deny') res = await browser.request(new URL(formAction(page, '/abort'), step.url), { form: { csrf } });
      else res = await browser.request(new URL(formAction(page, '/aup'), step.url), { form: { csrf, version: hiddenInput(page, 'version') } });
    } else if (options.consent === 'deny') {
      res = await browser.request(new URL(formAction(page, '/abort'), step.url), { form: { csrf } });
    } else {
      res = await browser.request(new URL(formAction(page, '/confirm'), step.url), { form: { csrf } });
    }
    if (res.status !== 303) throw new Error(`form post answered ${res.status}: ${(await res.text()).slice(0, 300)}`);
    const next = new URL(res.headers.get('location')!, step.url);
    step = leaves(next) ? { res, url: next } : await browser.follow(next, leaves);
  }
  throw new Error('login did not finish');
}

/** An authorization URL with a fresh PKCE (S256) challenge, and its verifier. */
export async function pkceAuthorizationUrl(config: oidc.Configuration, params: Record<string, string>): Promise<{ url: URL; verifier: string }> {
  const verifier = oidc.randomPKCECodeVerifier();
  const url = oidc.buildAuthorizationUrl(config, {
    ...params, code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256',
  });
  return { url, verifier };
}

/** Code + PKCE through the pages with openid-client; returns the token response. */
export async function authorizationCodeFlow(
  config: oidc.Configuration,
  options: LoginOptions & { redirectUri: string; scope: string; resource?: string; browser?: Browser; prompt?: string; dpop?: oidc.DPoPHandle },
): Promise<oidc.TokenEndpointResponse & oidc.TokenEndpointResponseHelpers> {
  const verifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const params: Record<string, string> = {
    redirect_uri: options.redirectUri,
    scope: options.scope,
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
  };
  if (options.resource) params.resource = options.resource;
  // OIDC Core §11: offline_access is only honoured together with prompt=consent.
  if (options.prompt ?? (options.scope.split(' ').includes('offline_access') ? 'consent' : undefined)) {
    params.prompt = options.prompt ?? 'consent';
  }
  const url = oidc.buildAuthorizationUrl(config, params);
  const callback = await loginThroughPages(options.browser ?? new Browser(), url, options.redirectUri, options);
  return oidc.authorizationCodeGrant(config, callback, { pkceCodeVerifier: verifier, expectedState: state }, options.resource ? { resource: options.resource } : undefined,
    options.dpop ? { DPoP: options.dpop } : undefined);
}

/** The admin API's audience (`<issuer>/admin/api`), the resource indicator of admin tokens. */
export function adminApi(issuer: string): string {
  return `${issuer}/admin/api`;
}

/**
 * An admin token as the README obtains one: the `admin` user signs in with
 * demo-cli (code + PKCE through the pages) asking for `openid fedgate.admin`
 * and the admin API as resource.
 */
export async function adminToken(issuer: string, options: { username?: string; password?: string } = {}): Promise<string> {
  const cli = await rp(issuer, 'demo-cli');
  const tokens = await authorizationCodeFlow(cli, {
    redirectUri: 'http://127.0.0.1:50000/callback', scope: 'openid fedgate.admin', resource: adminApi(issuer),
    username: options.username ?? 'admin', password: options.password ?? 'admin-password',
  });
  return tokens.access_token;
}

/** Decodes a JWT's header and payload without verifying (tests verify separately). */
export function decodeJwt(token: string): { header: Record<string, unknown>; payload: Record<string, unknown> } {
  const [h, p] = token.split('.');
  return { header: JSON.parse(Buffer.from(h!, 'base64url').toString()), payload: JSON.parse(Buffer.from(p!, 'base64url').toString()) };
}

/** A response read whole, from a request sent exactly as given (no URL normalisation, unlike fetch). */
export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** Sends `path` verbatim (`..` and percent-encodings untouched) to a loopback server. */
export function rawRequest(origin: string, path: string, init: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<RawResponse> {
  const url = new URL(origin);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: url.hostname, port: url.port, method: init.method ?? 'GET', path, headers: init.headers ?? {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(init.body);
  });
}

/** What a recording upstream saw. */
export interface UpstreamRequest {
  method: string;
  url: string;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** A real HTTP server on loopback that records each request and answers 200 with it as JSON. */
export async function startUpstream(): Promise<{ url: string; requests: UpstreamRequest[]; close(): Promise<void> }> {
  const requests: UpstreamRequest[] = [];
  const server = createHttpServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const seen = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') };
      requests.push(seen);
      res.writeHead(200, { 'content-type': 'application/json', 'x-upstream': 'yes' });
      res.end(JSON.stringify(seen));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

export { within } from './poll.ts';

/**
 * Two fedgate replicas sharing one Redis key prefix and keys directory, and
 * the public issuer URL (as behind a load balancer); they check the store
 * versions every 0.5 s.
 */
export async function startReplicas(): Promise<[TestServer, TestServer]> {
  const keysDir = await mkdtemp(join(tmpdir(), 'fedgate-keys-'));
  const redisPrefix = `fedgate-test-${randomBytes(6).toString('hex')}:`;
  const configure = (config: Config) => { config.policies.pollSeconds = 0.5; };
  const a = await startServer({ redis: true, redisPrefix, keysDir, configure });
  const b = await startServer({ redis: true, redisPrefix, keysDir, configure, env: { ISSUER: a.issuer } });
  return [a, b];
}

/** Enters a user code on the device page and walks login, consent and confirmation; returns the last page. */
export async function approveOnDevicePage(
  browser: Browser, verificationUri: string, userCode: string, user: { username: string; password: string }, consent: 'approve' | 'deny' = 'approve',
): Promise<string> {
  const input = await browser.request(verificationUri);
  assert.equal(input.status, 200);
  const inputPage = await input.text();
  assert.match(inputPage, /Enter the code/i);
  let res = await browser.request(new URL(formAction(inputPage, '/device'), verificationUri), {
    form: { xsrf: hiddenInput(inputPage, 'xsrf'), user_code: userCode },
  });
  for (let i = 0; i < 10; i += 1) {
    const location = res.headers.get('location');
    if (location) {
      res = await browser.request(new URL(location, verificationUri));
      continue;
    }
    const page = await res.text();
    if (res.status === 400 && consent === 'deny') return page;
    assert.equal(res.status, 200, page.slice(0, 400));
    if (page.includes('op.deviceConfirmForm')) {
      res = await browser.request(new URL(formAction(page, '/device'), verificationUri), {
        form: { xsrf: hiddenInput(page, 'xsrf'), user_code: hiddenInput(page, 'user_code'), confirm: 'yes' },
      });
    } else if (page.includes('name="password"')) {
      res = await browser.request(new URL(formAction(page, '/login'), verificationUri), { form: { ...user, csrf: hiddenInput(page, 'csrf') } });
    } else if (page.includes('/aup"')) {
      res = await browser.request(new URL(formAction(page, '/aup'), verificationUri), { form: { csrf: hiddenInput(page, 'csrf'), version: hiddenInput(page, 'version') } });
    } else if (page.includes('/confirm"')) {
      const step = consent === 'approve' ? '/confirm' : '/abort';
      res = await browser.request(new URL(formAction(page, step), verificationUri), { form: { csrf: hiddenInput(page, 'csrf') } });
    } else {
      return page;
    }
  }
  throw new Error('device approval did not finish');
}
