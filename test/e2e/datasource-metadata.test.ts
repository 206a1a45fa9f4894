import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as oidc from 'openid-client';
import { adminToken as obtainAdminToken, authorizationCodeFlow, decodeJwt, rawRequest, rp, startServer, startUpstream, type TestServer } from '../support/harness.ts';

const PORTAL_REDIRECT = 'http://localhost:3000/callback';
const WELL_KNOWN = '/.well-known/oauth-protected-resource';

interface ResourceMetadata {
  resource: string;
  authorization_servers: string[];
  scopes_supported: string[];
  bearer_methods_supported: string[];
  resource_name: string;
  audience: string;
}

/**
 * OAuth 2.0 Protected Resource Metadata (RFC 9728) for data sources: a
 * client that knows nothing but the resource's URL is told where the
 * metadata is (the 401 challenge, §5.1), reads the issuer and scopes from it,
 * gets a token from that issuer for that resource, and is let in.
 */
describe('RFC 9728 protected resource metadata for data sources', () => {
  let server: TestServer;
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  let adminToken: string;

  before(async () => {
    upstream = await startUpstream();
    server = await startServer({
      redis: true,
      configure: (config) => {
        config.gateway.services = config.gateway.services.map((s) => (s.name === 'data' ? { ...s, upstream: `${upstream.url}/data` } : s));
      },
    });
    adminToken = await obtainAdminToken(server.issuer);
    const admin = (body: unknown) => fetch(`${server.issuer}/admin/api/resource-servers`, {
      method: 'POST', headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' }, body: JSON.stringify(body),
    });
    assert.equal((await admin({
      name: 'inference', audience: 'https://ml.partner.test', displayName: 'Partner inference service', kind: 'ml',
      scopes: ['ml.inference'], profile: 'groups', upstream: `${upstream.url}/ml`,
      defaultPolicies: [{ group: '/cms', path: '/v1/models/*/infer', action: 'inference', scope: 'ml.inference' }],
      scopeGrants: [{ group: '/cms', scope: 'ml.inference' }],
    })).status, 201);
    assert.equal((await admin({ name: 'archive', audience: 'https://archive.partner.test', kind: 'storage', storage: { basePath: '/archive' } })).status, 201);
  });
  after(async () => {
    await server.cleanup();
    await upstream.close();
  });

  it('lets a client discover the issuer and scopes from the 401 challenge, get a token and use it', async () => {
    const target = `${server.issuer}/api/inference/v1/models/bert/infer`;
    // 1. The client calls the resource without a token (RFC 9728 §5.1).
    const challenge = await fetch(target, { method: 'POST' });
    assert.equal(challenge.status, 401);
    const header = challenge.headers.get('www-authenticate')!;
    const metadataUrl = /resource_metadata="([^"]+)"/.exec(header)?.[1];
    assert.equal(metadataUrl, `${server.issuer}${WELL_KNOWN}/api/inference`);

    // 2. It reads the metadata; §3.3: `resource` must be the resource it asked about.
    const res = await fetch(metadataUrl);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type')!, /application\/json/);
    const metadata = await res.json() as ResourceMetadata;
    assert.equal(metadata.resource, `${server.issuer}/api/inference`);
    assert.ok(target.startsWith(metadata.resource));
    assert.deepEqual(metadata.authorization_servers, [server.issuer]);
    assert.deepEqual(metadata.scopes_supported, ['ml.inference']);
    assert.deepEqual(metadata.bearer_methods_supported, ['header']);
    assert.equal(metadata.resource_name, 'Partner inference service');
    assert.equal(metadata.audience, 'https://ml.partner.test');

    // 3. It discovers the authorization server named there and asks it for a token for that resource (RFC 8707).
    const as = await rp(metadata.authorization_servers[0]!, 'demo-portal', 'demo-portal-secret');
    const tokens = await authorizationCodeFlow(as, {
      redirectUri: PORTAL_REDIRECT, scope: `openid ${metadata.scopes_supported.join(' ')}`, resource: metadata.resource, username: 'alice', password: 'alice-password',
    });
    const claims = decodeJwt(tokens.access_token).payload;
    assert.equal(claims.aud, metadata.audience, 'the token carries the data source audience');
    assert.equal(claims.scope, 'ml.inference');
    assert.deepEqual(claims.groups, ['/cms', '/cms/production'], 'the data source\'s token profile (groups)');

    // 4. And is let in.
    const allowed = await rawRequest(server.issuer, '/api/inference/v1/models/bert/infer', { method: 'POST', headers: { authorization: `Bearer ${tokens.access_token}` } });
    assert.equal(allowed.status, 200, allowed.body);
    assert.equal((JSON.parse(allowed.body) as { url: string }).url, '/ml/v1/models/bert/infer');
  });

  it('issues client credentials tokens for the gateway resource identifier or the audience alike', async () => {
    const service = await rp(server.issuer, 'demo-service', 'demo-service-secret');
    for (const resource of [`${server.issuer}/api/inference`, 'https://ml.partner.test']) {
      const token = await oidc.clientCredentialsGrant(service, { resource, scope: 'ml.inference' });
      assert.equal(decodeJwt(token.access_token).payload.aud, 'https://ml.partner.test', resource);
    }
  });

  it('serves the document by audience for a data source without a gateway route', async () => {
    const res = await fetch(`${server.issuer}${WELL_KNOWN}?resource=${encodeURIComponent('https://archive.partner.test')}`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('access-control-allow-origin'), '*');
    const metadata = await res.json() as ResourceMetadata;
    assert.equal(metadata.resource, 'https://archive.partner.test');
    assert.deepEqual(metadata.scopes_supported, ['storage.read:/archive', 'storage.create:/archive', 'storage.modify:/archive', 'storage.stage:/archive', 'storage.poll:/archive']);
    assert.equal((await fetch(`${server.issuer}${WELL_KNOWN}/api/archive`)).status, 404, 'no route, no gateway resource');
  });

  it('describes configured services with an upstream too', async () => {
    const metadata = await (await fetch(`${server.issuer}${WELL_KNOWN}/api/data`)).json() as ResourceMetadata;
    assert.equal(metadata.resource, `${server.issuer}/api/data`);
    assert.equal(metadata.audience, 'https://storage.demo');
    assert.ok(metadata.scopes_supported.includes('storage.read:/'));
  });

  it('answers unknown resources 404, a missing resource 400, other methods 405', async () => {
    assert.equal((await fetch(`${server.issuer}${WELL_KNOWN}/api/nope`)).status, 404);
    assert.equal((await fetch(`${server.issuer}${WELL_KNOWN}/api/inference/extra`)).status, 404);
    assert.equal((await fetch(`${server.issuer}${WELL_KNOWN}?resource=${encodeURIComponent('https://nope.test')}`)).status, 404);
    const missing = await fetch(`${server.issuer}${WELL_KNOWN}`);
    assert.equal(missing.status, 400);
    assert.equal((await missing.json() as { error: string }).error, 'invalid_request');
    assert.equal((await fetch(`${server.issuer}${WELL_KNOWN}/api/inference`, { method: 'POST' })).status, 405);
  });
});
