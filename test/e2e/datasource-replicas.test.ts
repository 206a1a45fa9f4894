import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import * as oidc from 'openid-client';
import { DATA_SOURCE_VERSION_KEY, parseDataSource, type StoredDataSource } from '../../src/datasources/index.ts';
import { adminToken as obtainAdminToken, authorizationCodeFlow, decodeJwt, rawRequest, rp, startReplicas, within, startUpstream, type TestServer } from '../support/harness.ts';

const PORTAL_REDIRECT = 'http://localhost:3000/callback';
const AUDIENCE = 'https://storage.partner.test';
const NAME = 'partner-store';

const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;

/**
 * Two fedgate replicas sharing one Redis and one keys directory: a data
 * source onboarded through the admin API of replica A is live on replica B
 * within a second (tokens for its audience, its /api route to a real
 * upstream, its default policies), and its removal takes all of that away.
 */
describe('data sources across replicas', () => {
  let a: TestServer;
  let b: TestServer;
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  let adminToken: string;
  /** alice's WLCG token for the "any" audience (storage.read:/store/cms), obtained before the data source exists. */
  let aliceAny: string;
  let onboarding: Record<string, any>;
  let serviceToken: string;

  before(async () => {
    upstream = await startUpstream();
    [a, b] = await startReplicas();
    const portal = await rp(a.issuer, 'demo-portal', 'demo-portal-secret');
    adminToken = await obtainAdminToken(a.issuer);
    aliceAny = (await authorizationCodeFlow(portal, { redirectUri: PORTAL_REDIRECT, scope: 'openid storage.read:/store/cms', username: 'alice', password: 'alice-password' })).access_token;
    assert.equal(decodeJwt(aliceAny).payload.aud, 'https://wlcg.cern.ch/jwt/v1/any');
  });
  after(async () => {
    await b.stop();
    await a.cleanup();
    await upstream.close();
  });

  const admin = (server: TestServer, path: string, method: string, body?: unknown) => fetch(`${server.issuer}/admin/api${path}`, {
    method, headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' }, ...(body ? { body: JSON.stringify(body) } : {}),
  });
  // Replica B answers; B never saw the admin request.
  const serviceTokenOnB = (resource = AUDIENCE) => fetch(`${b.issuer}/token`, {
    method: 'POST',
    headers: { authorization: basic('demo-service', 'demo-service-secret'), 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'client_credentials', resource, scope: 'storage.read:/store/shared' }),
  });
  const apiOnB = (path: string, token?: string) => rawRequest(b.issuer, path, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  const authzOnB = (uri: string, token?: string) => rawRequest(b.issuer, `/authz?service=${NAME}`, {
    headers: { 'x-original-method': 'GET', 'x-original-uri': uri, ...(token ? { authorization: `Bearer ${token}` } : {}) },
  });
  const introspectOnB = (clientId: string, secret: string) => fetch(`${b.issuer}/token/introspection`, {
    method: 'POST',
    headers: { authorization: basic(clientId, secret), 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ token: 'not-a-token-at-all-0123456789' }),
  });

  it('onboards on A and is live on B within a second: tokens for the audience, the /api route, the default policies', async () => {
    assert.equal((await serviceTokenOnB()).status, 400, 'unknown audience before');
    assert.equal((await apiOnB(`/api/${NAME}/store/cms/f`, aliceAny)).status, 404);

    const created = await admin(a, '/resource-servers', 'POST', {
      name: NAME,
      audience: AUDIENCE,
      displayName: 'Partner site storage',
      kind: 'storage',
      storage: { basePath: '/store' },
      upstream: `${upstream.url}/base`,
      defaultPolicies: [
        { group: '/cms', path: '/store/cms/**', action: 'read', scope: 'storage.read' },
        { group: '/atlas', path: '/store/shared/**', action: 'read' },
      ],
      scopeGrants: [{ group: '/atlas', scope: 'storage.read:/store/shared' }],
      accessTokenFormat: 'jwt',
      introspection: true,
    });
    const answered = performance.now();
    assert.equal(created.status, 201, await created.clone().text());
    const body = await created.json() as { resource_server: Record<string, any>; onboarding: Record<string, any> };
    onboarding = body.onboarding;

    const took = await within(1000, async () => {
      const token = await serviceTokenOnB();
      if (token.status !== 200) return false;
      serviceToken = (await token.json() as { access_token: string }).access_token;
      const viaApi = await apiOnB(`/api/${NAME}/store/cms/run1/f.root`, aliceAny);
      const denied = await apiOnB(`/api/${NAME}/store/atlas/f`, aliceAny);
      return viaApi.status === 200 && denied.status === 403;
    });
    assert.ok(performance.now() - answered < 1000, `live on B after ${Math.round(took)} ms`);

    const claims = decodeJwt(serviceToken).payload;
    assert.equal(claims.aud, AUDIENCE);
    // Relative to the data source's base path /store (WLCG profile §2.2.3), as its storage reads them.
    assert.equal(claims.scope, 'storage.read:/shared');
    const seen = JSON.parse((await apiOnB(`/api/${NAME}/store/cms/run1/f.root`, aliceAny)).body) as { url: string; headers: Record<string, string> };
    assert.equal(seen.url, '/base/store/cms/run1/f.root', 'proxied to the real upstream under its base path');
    assert.equal(seen.headers['x-fedgate-user'], 'alice');
    assert.equal((await authzOnB('/store/cms/x', aliceAny)).status, 200, '/authz decides for it too');
    assert.equal((await authzOnB('/store/atlas/x', aliceAny)).status, 403);
    // The introspection client authenticates on B (it never saw the creation).
    const introspection = onboarding.introspection as { client_id: string; client_secret: string };
    assert.equal((await introspectOnB(introspection.client_id, introspection.client_secret)).status, 200);
  });

  it('applies its scope grants when B issues user tokens for the audience', async () => {
    // B speaks for the shared issuer (A's URL) at its own address, as a replica behind a load balancer does.
    const portalOnB = new oidc.Configuration({
      issuer: a.issuer, authorization_endpoint: `${b.issuer}/auth`, token_endpoint: `${b.issuer}/token`, jwks_uri: `${b.issuer}/jwks`,
    }, 'demo-portal', { client_secret: 'demo-portal-secret', id_token_signed_response_alg: 'ES256' }, oidc.ClientSecretBasic('demo-portal-secret'));
    oidc.allowInsecureRequests(portalOnB);
    const bob = await authorizationCodeFlow(portalOnB, {
      redirectUri: PORTAL_REDIRECT, scope: 'openid storage.read:/store/shared/run2 storage.read:/store/cms', resource: AUDIENCE, username: 'bob', password: 'bob-password',
    });
    const claims = decodeJwt(bob.access_token).payload;
    assert.equal(claims.aud, AUDIENCE);
    assert.equal(claims.scope, 'storage.read:/shared/run2', 'the grant for /atlas, not the /cms path (relative to the base path /store)');
    assert.equal((await apiOnB(`/api/${NAME}/store/shared/run2/x`, bob.access_token)).status, 200);
    assert.equal((await apiOnB(`/api/${NAME}/store/cms/x`, bob.access_token)).status, 403);
  });

  it('removes on A: within a second B issues no token, closes the route and /authz, refuses earlier tokens, revokes the introspection client', async () => {
    const introspection = onboarding.introspection as { client_id: string; client_secret: string };
    const removed = await admin(a, `/resource-servers/${NAME}`, 'DELETE');
    assert.equal(removed.status, 204);
    const answered = performance.now();
    await within(1000, async () => {
      const token = await serviceTokenOnB();
      const route = await apiOnB(`/api/${NAME}/store/cms/f`, aliceAny);
      const authz = await authzOnB('/store/cms/f', aliceAny);
      const client = await introspectOnB(introspection.client_id, introspection.client_secret);
      return token.status === 400 && route.status === 404 && authz.status === 404 && client.status === 401;
    });
    assert.ok(performance.now() - answered < 1000);
    const refused = await serviceTokenOnB();
    assert.equal((await refused.json() as { error: string }).error, 'invalid_target');
    // The token B issued before the removal is refused wherever it is presented.
    assert.equal((await apiOnB(`/api/${NAME}/store/shared/x`, serviceToken)).status, 404);
    assert.equal((await rawRequest(b.issuer, '/authz?service=data', {
      headers: { authorization: `Bearer ${serviceToken}`, 'x-original-method': 'GET', 'x-original-uri': '/store/shared/x' },
    })).status, 401, 'not an audience any service fronts');
    // Its policy lines are gone, and only those.
    const rules = await (await admin(b, `/policies?domain=${NAME}`, 'GET')).json() as { rules: unknown[] };
    assert.deepEqual(rules.rules, []);
    const scopes = await (await admin(b, '/policies?domain=scopes', 'GET')).json() as { rules: Array<{ object: string }> };
    assert.ok(!scopes.rules.some((r) => r.object === AUDIENCE));
    assert.ok(scopes.rules.length > 0, 'the demo scope policy is untouched');
    // Every change is an audit event.
    const audit = await (await admin(a, '/audit?limit=200', 'GET')).json() as { events: Array<{ type: string; target?: string; detail?: { action?: string } }> };
    const actions = audit.events.filter((e) => e.type === 'admin.change' && e.target === `resource-server:${NAME}`).map((e) => e.detail?.action);
    assert.ok(actions.includes('create') && actions.includes('delete'), JSON.stringify(actions));
  });

  it('catches up without the announcement: the periodic version check', async () => {
    // A record written and counted, but its announcement lost (as after a pub/sub reconnect).
    const now = new Date().toISOString();
    const record: StoredDataSource = {
      id: randomUUID(),
      spec: parseDataSource({ name: 'quiet', audience: 'https://quiet.partner.test', kind: 'compute' }),
      lines: [],
      createdVia: 'cli',
      createdAt: now,
      updatedAt: now,
    };
    await a.store.set(`datasource:${record.id}`, record);
    await a.store.addToSet('datasource:ids', record.id);
    await a.store.increment(DATA_SOURCE_VERSION_KEY);
    const quiet = () => rawRequest(b.issuer, '/authz?service=quiet', { headers: { 'x-original-method': 'GET', 'x-original-uri': '/x' } });
    assert.equal((await quiet()).status, 404);
    await within(2000, async () => (await quiet()).status === 401);
  });
});
