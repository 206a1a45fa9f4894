import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { after, before, describe, it } from 'node:test';
import * as oidc from 'openid-client';
import { authorizationCodeFlow, rawRequest, rp, startServer, startUpstream, type TestServer } from '../support/harness.ts';

const PORTAL_REDIRECT = 'http://localhost:3000/callback';

/**
 * The gateway end to end: tokens from the provider, the demo policy, a real
 * upstream behind /api/<service>/*, and the same decisions through /authz.
 */
describe('the gateway: /api proxy and /authz decisions', () => {
  let server: TestServer;
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  let alice: string;
  let bob: string;
  let aliceMl: string;
  let admin: string;
  let service: string;

  before(async () => {
    upstream = await startUpstream();
    server = await startServer({
      redis: true,
      configure: (config) => {
        config.gateway.services = config.gateway.services.map((s) => ({ ...s, upstream: `${upstream.url}/${s.name}-base` }));
      },
    });
    const portal = await rp(server.issuer, 'demo-portal', 'demo-portal-secret');
    const login = (username: string, scope: string, resource: string) => authorizationCodeFlow(portal, {
      redirectUri: PORTAL_REDIRECT, scope, resource, username, password: `${username}-password`,
    }).then((t) => t.access_token);
    alice = await login('alice', 'openid storage.read:/store/cms storage.modify:/store/cms/user', 'https://storage.demo');
    bob = await login('bob', 'openid storage.read:/store/atlas/public', 'https://storage.demo');
    aliceMl = await login('alice', 'openid ml.training', 'https://ml.demo');
    admin = await login('admin', 'openid storage.read:/', 'https://storage.demo');
    const demoService = await rp(server.issuer, 'demo-service', 'demo-service-secret');
    service = (await oidc.clientCredentialsGrant(demoService, { resource: 'https://orchestrator.demo', scope: 'compute.read' })).access_token;
  });
  after(async () => {
    await server.cleanup();
    await upstream.close();
  });

  const api = (path: string, token: string | undefined, init: { method?: string; headers?: Record<string, string>; body?: string } = {}) =>
    rawRequest(server.issuer, path, { ...init, headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...init.headers } });
  const authz = (service: string, method: string, uri: string, token: string | undefined, headers: Record<string, string> = {}) =>
    rawRequest(server.issuer, `/authz?service=${service}`, {
      headers: { 'x-original-method': method, 'x-original-uri': uri, ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers },
    });
  const upstreamCalls = () => upstream.requests.length;

  it('forwards an allowed request with the identity fedgate verified', async () => {
    const res = await api('/api/data/store/cms/run1/file.root?x=1', alice);
    assert.equal(res.status, 200, res.body);
    assert.equal(res.headers['x-upstream'], 'yes');
    const seen = JSON.parse(res.body) as { url: string; headers: Record<string, string> };
    assert.equal(seen.url, '/data-base/store/cms/run1/file.root?x=1', 'the upstream base path is kept, the query forwarded');
    assert.equal(seen.headers['x-fedgate-user'], 'alice');
    assert.equal(seen.headers['x-fedgate-groups'], '/cms,/cms/production');
    assert.equal(seen.headers['x-fedgate-client'], 'demo-portal');
    assert.equal(seen.headers['x-fedgate-audience'], 'https://storage.demo');
    assert.ok(seen.headers['x-fedgate-subject']);
  });

  it('lets /cms/production write only where its storage.modify scope reaches', async () => {
    const ok = await api('/api/data/store/cms/user/out.txt', alice, { method: 'PUT', body: 'payload', headers: { 'content-type': 'text/plain' } });
    assert.equal(ok.status, 200, ok.body);
    assert.equal((JSON.parse(ok.body) as { body: string }).body, 'payload', 'the body reaches the upstream');
    const before = upstreamCalls();
    const outside = await api('/api/data/store/cms/other/out.txt', alice, { method: 'PUT', body: 'payload' });
    assert.equal(outside.status, 403);
    assert.match(String(outside.headers['www-authenticate']), /error="insufficient_scope"/);
    assert.match(String(outside.headers['www-authenticate']), /scope="storage\.modify"/);
    assert.equal(upstreamCalls(), before, 'nothing reaches the upstream');
  });

  it('refuses what the policy does not allow, and denies bob /store/atlas/secret', async () => {
    const before = upstreamCalls();
    const other = await api('/api/data/store/atlas/file', alice);
    assert.equal(other.status, 403);
    assert.equal((JSON.parse(other.body) as { error: string }).error, 'access_denied');
    assert.equal((await api('/api/data/store/atlas/public/file', bob)).status, 200);
    const secret = await api('/api/data/store/atlas/secret/file', bob);
    assert.equal(secret.status, 403, 'the explicit deny overrides /atlas read');
    assert.equal(upstreamCalls(), before + 1);
  });

  it('answers /authz like the proxy: 200 with identity headers, 401, 403', async () => {
    const allowed = await authz('data', 'GET', '/store/cms/run1/file.root', alice);
    assert.equal(allowed.status, 200);
    assert.equal(allowed.headers['x-fedgate-user'], 'alice');
    assert.equal((await authz('data', 'GET', '/store/atlas/secret/x', bob)).status, 403);
    const missing = await authz('data', 'GET', '/store/cms/x', undefined);
    assert.equal(missing.status, 401);
    assert.equal(missing.headers['www-authenticate'], 'Bearer realm="fedgate"');
    // The demo's services are asked in nginx's form: Traefik's header names mean nothing to them.
    const traefik = await rawRequest(server.issuer, '/authz?service=data', {
      headers: { authorization: `Bearer ${alice}`, 'x-forwarded-method': 'GET', 'x-forwarded-uri': '/store/cms/a', 'x-forwarded-host': 'storage.example' },
    });
    assert.equal(traefik.status, 400);
    // A client acting for itself, under the client rules.
    assert.equal((await authz('orchestrator', 'GET', '/deployments/42', service)).status, 200);
    assert.equal((await authz('orchestrator', 'POST', '/deployments', service)).status, 403);
  });

  it('tells the ML service: /cms/production may train, /ml-users may run inference but not train', async () => {
    assert.equal((await authz('ml', 'POST', '/v1/models/bert/train', aliceMl)).status, 200);
    const portal = await rp(server.issuer, 'demo-portal', 'demo-portal-secret');
    const bobMl = (await authorizationCodeFlow(portal, {
      redirectUri: PORTAL_REDIRECT, scope: 'openid ml.inference', resource: 'https://ml.demo', username: 'bob', password: 'bob-password',
    })).access_token;
    assert.equal((await authz('ml', 'POST', '/v1/models/bert/infer', bobMl)).status, 200);
    assert.equal((await authz('ml', 'POST', '/v1/models/bert/train', bobMl)).status, 403);
    assert.equal((await authz('ml', 'GET', '/v1/models/bert', bobMl)).status, 200);
  });

  it('explains decisions to administrators only', async () => {
    const denied = await authz('data', 'GET', '/store/cms/x', admin, { 'x-fedgate-explain': 'true' });
    assert.equal(denied.status, 403);
    const explanation = JSON.parse(String(denied.headers['x-fedgate-explain'])) as { outcome: string };
    assert.equal(explanation.outcome, 'no_match');
    const bobAsks = await authz('data', 'GET', '/store/atlas/secret/x', bob, { 'x-fedgate-explain': 'true' });
    assert.equal(bobAsks.headers['x-fedgate-explain'], undefined, 'no explanation for non-administrators');
  });

  it('refuses tokens for another audience, and forged ones', async () => {
    assert.equal((await api('/api/data/store/cms/x', aliceMl)).status, 401, 'an ML token is not a storage token');
    const [h, p, s] = alice.split('.');
    const payload = JSON.parse(Buffer.from(p!, 'base64url').toString()) as Record<string, unknown>;
    const forged = `${h}.${Buffer.from(JSON.stringify({ ...payload, scope: 'storage.modify:/' })).toString('base64url')}.${s}`;
    const res = await api('/api/data/store/cms/x', forged);
    assert.equal(res.status, 401);
    assert.match(String(res.headers['www-authenticate']), /error="invalid_token"/);
    assert.ok(!res.body.includes(forged), 'the token is never echoed');
    const none = `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'at+jwt' })).toString('base64url')}.${p}.`;
    assert.equal((await api('/api/data/store/cms/x', none)).status, 401);
  });

  it('rejects traversal and encoded-slash tricks before anything reaches the upstream', async () => {
    const before = upstreamCalls();
    for (const path of [
      '/api/data/store/cms/../atlas/file',
      '/api/data/store/cms/%2e%2e/atlas/file',
      '/api/data/store/cms/%2E%2E/atlas/file',
      '/api/data/store/cms%2f..%2fatlas/file',
      '/api/data/store/cms/..%5catlas',
      '/api/data/store//cms/file',
      '/api/data/store/cms/./file',
    ]) {
      const res = await api(path, alice);
      assert.equal(res.status, 400, `${path} → ${res.status}`);
    }
    const viaAuthz = await authz('data', 'GET', '/store/cms/../atlas/file', alice);
    assert.equal(viaAuthz.status, 400);
    assert.equal(upstreamCalls(), before, 'nothing reached the upstream');
  });

  it('strips identity headers the client sent', async () => {
    const res = await api('/api/data/store/cms/x', alice, { headers: { 'x-fedgate-user': 'admin', 'X-Fedgate-Groups': '/admins', 'x-forwarded-user': 'admin', 'remote-user': 'admin' } });
    assert.equal(res.status, 200);
    const seen = JSON.parse(res.body) as { headers: Record<string, string> };
    assert.equal(seen.headers['x-fedgate-user'], 'alice');
    assert.equal(seen.headers['x-fedgate-groups'], '/cms,/cms/production');
    assert.equal(seen.headers['x-forwarded-user'], undefined);
    assert.equal(seen.headers['remote-user'], undefined);
  });

  it('answers 431 for oversized headers and 404 for unknown services', async () => {
    const big = await api('/api/data/store/cms/x', alice, { headers: { 'x-padding': 'a'.repeat(20_000) } });
    assert.equal(big.status, 431);
    assert.equal((await api('/api/nowhere/x', alice)).status, 404);
    assert.equal((await authz('nowhere', 'GET', '/x', alice)).status, 404);
  });

  it('accepts a DPoP-bound token only with a fresh proof of its key (RFC 9449)', async () => {
    const keyPair = await generateKeyPair('ES256', { extractable: true });
    const demoService = await rp(server.issuer, 'demo-service', 'demo-service-secret');
    const bound = (await oidc.clientCredentialsGrant(demoService, { resource: 'https://orchestrator.demo', scope: 'compute.read' }, { DPoP: oidc.getDPoPHandle(demoService, keyPair) })).access_token;
    const path = '/api/orchestrator/deployments/1';
    const proof = async (htm: string, htu: string) => new SignJWT({ htm, htu, jti: randomUUID(), ath: createHash('sha256').update(bound).digest('base64url') })
      .setProtectedHeader({ typ: 'dpop+jwt', alg: 'ES256', jwk: await exportJWK(keyPair.publicKey) })
      .setIssuedAt()
      .sign(keyPair.privateKey);
    const good = await proof('GET', `${server.issuer}${path}`);
    const ok = await rawRequest(server.issuer, path, { headers: { authorization: `DPoP ${bound}`, dpop: good } });
    assert.equal(ok.status, 200, ok.body);
    assert.equal((JSON.parse(ok.body) as { headers: Record<string, string> }).headers['x-fedgate-client'], 'demo-service');
    const replayed = await rawRequest(server.issuer, path, { headers: { authorization: `DPoP ${bound}`, dpop: good } });
    assert.equal(replayed.status, 401, 'a proof is good once');
    assert.match(String(replayed.headers['www-authenticate']), /^DPoP /);
    const elsewhere = await rawRequest(server.issuer, path, { headers: { authorization: `DPoP ${bound}`, dpop: await proof('GET', `${server.issuer}/api/orchestrator/other`) } });
    assert.equal(elsewhere.status, 401, 'a proof is for one URL');
    const asBearer = await rawRequest(server.issuer, path, { headers: { authorization: `Bearer ${bound}` } });
    assert.equal(asBearer.status, 401, 'a DPoP-bound token is not a bearer token');
  });

  it('counts decisions per service and outcome in /metrics', async () => {
    const text = await (await fetch(`${server.issuer}/metrics`)).text();
    const count = (service: string, outcome: string) => Number(new RegExp(`fedgate_authz_decisions_total\\{service="${service}",outcome="${outcome}"\\} (\\d+)`).exec(text)?.[1] ?? 0);
    assert.ok(count('data', 'allow') >= 3, text.slice(0, 200));
    assert.ok(count('data', 'deny') >= 3);
  });

  it('stops honouring a user\'s tokens once the account is disabled', async () => {
    const portal = await rp(server.issuer, 'demo-portal', 'demo-portal-secret');
    const token = (await authorizationCodeFlow(portal, {
      redirectUri: PORTAL_REDIRECT, scope: 'openid storage.read:/store/atlas/public', resource: 'https://storage.demo', username: 'bob', password: 'bob-password',
    })).access_token;
    assert.equal((await authz('data', 'GET', '/store/atlas/public/f', token)).status, 200);
    const account = (await server.fedgate.accounts.findByUsername('bob'))!;
    await server.fedgate.accounts.setDisabled(account.id, true);
    try {
      assert.equal((await authz('data', 'GET', '/store/atlas/public/f', token)).status, 401, 'the JWT is still unexpired, but its account is disabled');
    } finally {
      await server.fedgate.accounts.setDisabled(account.id, false);
    }
  });
});
