import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as oidc from 'openid-client';
import { createFedgate, type Fedgate } from '../../src/app.ts';
import { loadConfig } from '../../src/config/index.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { RedisStore } from '../../src/store/index.ts';
import { adminToken, authorizationCodeFlow, Browser, freePort, pkceAuthorizationUrl, LogCapture, rawRequest, rp, startUpstream, type RawResponse } from '../support/harness.ts';
import { PrivateRedis } from '../support/private-redis.ts';

const DEADLINE_MS = 500;
const RETRY_AFTER = 7;
// A request may wait one deadline for the store, plus its own work on a busy 2-core machine.
const LIMIT_MS = DEADLINE_MS + 1000;
const PORTAL_REDIRECT = 'http://localhost:3000/callback';
const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;
const FORM = 'application/x-www-form-urlencoded';

/**
 * fedgate on a Redis of the test's own that is frozen (SIGSTOP) and then
 * killed: every endpoint that needs the store answers 503
 * temporarily_unavailable with Retry-After within one store deadline; none
 * answers 500, and none calls a good token invalid.
 */
describe('answers 503 while the store is unavailable', () => {
  let redis: PrivateRedis;
  let fedgate: Fedgate;
  let base: string;
  let keysDir: string;
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  const logs = new LogCapture();
  const tokens: Record<string, string> = {};
  const browser = new Browser();
  let authorizationUrl: URL;
  let interactionUrl: URL;

  before(async () => {
    redis = await PrivateRedis.start();
    upstream = await startUpstream();
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    const config = await loadConfig({ ISSUER: base, PORT: String(port), LOG_LEVEL: 'info' });
    keysDir = await mkdtemp(join(tmpdir(), 'fedgate-keys-'));
    config.keysDir = keysDir;
    config.store = { deadlineMs: DEADLINE_MS, retryAfterSeconds: RETRY_AFTER };
    config.gateway.services = config.gateway.services.map((s) => ({ ...s, upstream: `${upstream.url}/${s.name}` }));
    const store = new RedisStore({ url: redis.url, keyPrefix: 'outage:', deadlineMs: DEADLINE_MS });
    fedgate = await createFedgate(config, { store, logger: createLogger('info', logs), watchKeys: false });
    await fedgate.listen(port, '127.0.0.1');

    const portal = await rp(base, 'demo-portal', 'demo-portal-secret');
    const login = (username: string, scope: string, resource?: string) => authorizationCodeFlow(portal, {
      redirectUri: PORTAL_REDIRECT, scope, username, password: `${username}-password`, ...(resource ? { resource } : {}),
    });
    const admin = await login('admin', 'openid offline_access');
    tokens.admin = admin.access_token;
    tokens.refresh = admin.refresh_token!;
    tokens.adminApi = await adminToken(base);
    // Fresh JWTs the gateway has not seen (and so not cached) yet.
    tokens.storage1 = (await login('alice', 'openid storage.read:/store/cms', 'https://storage.demo')).access_token;
    tokens.storage2 = (await login('alice', 'openid storage.read:/store/cms', 'https://storage.demo')).access_token;
    tokens.storage3 = (await login('alice', 'openid storage.read:/store/cms', 'https://storage.demo')).access_token;
    tokens.storage4 = (await login('alice', 'openid storage.read:/store/cms', 'https://storage.demo')).access_token;
    // A sign-in in progress in a browser, left at its login page.
    authorizationUrl = (await pkceAuthorizationUrl(portal, { redirect_uri: PORTAL_REDIRECT, scope: 'openid' })).url;
    const step = await browser.follow(authorizationUrl, () => false);
    assert.equal(step.res.status, 200);
    assert.match(step.url.pathname, /^\/interaction\//);
    interactionUrl = step.url;
    const service = await rp(base, 'demo-service', 'demo-service-secret');
    tokens.opaque = (await oidc.clientCredentialsGrant(service, {})).access_token;
  });
  after(async () => {
    redis.thaw();
    await fedgate?.close();
    await redis.kill();
    await upstream.close();
    await rm(keysDir, { recursive: true, force: true });
  });

  /** The requests of the issue, each needing the store; `n` picks fresh gateway tokens per round. */
  const requests = (n: 1 | 2): Record<string, () => Promise<RawResponse>> => ({
    'client credentials (opaque token)': () => rawRequest(base, '/token', {
      method: 'POST', headers: { authorization: basic('demo-service', 'demo-service-secret'), 'content-type': FORM }, body: 'grant_type=client_credentials',
    }),
    introspection: () => rawRequest(base, '/token/introspection', {
      method: 'POST', headers: { authorization: basic('demo-service', 'demo-service-secret'), 'content-type': FORM }, body: `token=${tokens.opaque}`,
    }),
    refresh: () => rawRequest(base, '/token', {
      method: 'POST', headers: { authorization: basic('demo-portal', 'demo-portal-secret'), 'content-type': FORM }, body: `grant_type=refresh_token&refresh_token=${tokens.refresh}`,
    }),
    'device authorization': () => rawRequest(base, '/device/auth', {
      method: 'POST', headers: { 'content-type': FORM }, body: 'client_id=demo-cli&scope=openid',
    }),
    userinfo: () => rawRequest(base, '/me', { headers: { authorization: `Bearer ${tokens.admin}` } }),
    'admin API': () => rawRequest(base, '/admin/api/accounts', { headers: { authorization: `Bearer ${tokens.adminApi}`, accept: 'application/json' } }),
    'gateway /authz': () => rawRequest(base, '/authz?service=data', {
      headers: { authorization: `Bearer ${tokens[`storage${n}`]}`, 'x-original-method': 'GET', 'x-original-uri': '/store/cms/file' },
    }),
    'gateway /api': () => rawRequest(base, '/api/data/store/cms/file', { headers: { authorization: `Bearer ${tokens[`storage${n + 2}`]}` } }),
  });

  async function expectUnavailable(round: 1 | 2): Promise<void> {
    for (const [name, send] of Object.entries(requests(round))) {
      const start = performance.now();
      const res = await send();
      const ms = performance.now() - start;
      assert.equal(res.status, 503, `${name}: ${res.status} ${res.body}`);
      assert.equal(res.headers['retry-after'], String(RETRY_AFTER), `${name}: Retry-After`);
      assert.match(String(res.headers['content-type']), /application\/json/, name);
      assert.equal((JSON.parse(res.body) as { error: string }).error, 'temporarily_unavailable', `${name}: ${res.body}`);
      assert.doesNotMatch(String(res.headers['www-authenticate'] ?? ''), /invalid_token/, `${name}: a token that could not be checked is not called invalid`);
      assert.doesNotMatch(res.body, /redis|127\.0\.0\.1|ECONNREFUSED|timed out/i, `${name}: no internals`);
      assert.ok(ms < LIMIT_MS, `${name} answered within one deadline (${Math.round(ms)} ms)`);
    }
    // Browsers: an error page, same status and Retry-After.
    const pages: Record<string, () => Promise<Response>> = {
      'authorization endpoint': () => browser.request(authorizationUrl),
      'sign-in page of an interaction in progress': () => browser.request(interactionUrl),
      'device code page': () => browser.request(`${base}/device`),
    };
    for (const [name, open] of Object.entries(pages)) {
      const res = await open();
      const page = await res.text();
      assert.equal(res.status, 503, `${name}: ${res.status}`);
      assert.equal(res.headers.get('retry-after'), String(RETRY_AFTER), name);
      assert.match(res.headers.get('content-type') ?? '', /text\/html/, name);
      assert.match(page, /temporarily_unavailable/, name);
    }
  }

  it('answers normally while Redis is up', async () => {
    for (const [name, send] of Object.entries(requests(1))) {
      if (name.startsWith('gateway')) continue; // each gateway token is kept for the outage rounds
      const res = await send();
      assert.ok(res.status === 200 || res.status === 201, `${name}: ${res.status} ${res.body}`);
    }
  });

  it('while Redis is frozen (SIGSTOP)', async () => {
    redis.freeze();
    try {
      await expectUnavailable(1);
    } finally {
      redis.thaw();
    }
  });

  it('while Redis is down, and not a single 500 in the logs', async () => {
    // Back to normal first: the store notices within its probe interval.
    const until = Date.now() + 5000;
    while ((await rawRequest(base, '/readyz')).status !== 200) {
      assert.ok(Date.now() < until, 'ready again after SIGCONT');
      await new Promise((r) => setTimeout(r, 50));
    }
    await redis.kill();
    await expectUnavailable(2);
    assert.doesNotMatch(logs.text, /"status":500/, 'no request answered 500');
  });
});
