import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import * as oidc from 'openid-client';
import { decodeJwt, rp, startServer, type TestServer } from '../support/harness.ts';

describe('client credentials, JWT access tokens, introspection and revocation', () => {
  let server: TestServer;
  let service: oidc.Configuration;
  /** A confidential client allowed the authorization code grant only. */
  let webApp: oidc.Configuration;
  let jwks: ReturnType<typeof createRemoteJWKSet>;

  before(async () => {
    server = await startServer({
      redis: true,
      configure: (config) => {
        config.lifetimes.clientCredentials = 600;
        config.clients.push({ clientId: 'web-app', clientSecret: 'web-app-secret-0123456', applicationType: 'web', grantTypes: ['authorization_code'], redirectUris: ['https://app.example/cb'], postLogoutRedirectUris: [], consentRequired: true });
        config.resourceServers.push({
          audience: 'https://hpc.example', name: 'Legacy HPC gateway', kind: 'compute', scopes: ['compute.create'],
          profile: 'wlcg', accessTokenFormat: 'jwt', signingAlg: 'RS256', accessTokenTtl: 1200,
        });
      },
    });
    service = await rp(server.issuer, 'demo-service', 'demo-service-secret');
    webApp = await rp(server.issuer, 'web-app', 'web-app-secret-0123456');
    jwks = createRemoteJWKSet(new URL(`${server.issuer}/jwks`));
  });
  after(() => server.cleanup());

  it('issues an ES256 RFC 9068 JWT for a resource server that verifies against the published JWKS', async () => {
    const tokens = await oidc.clientCredentialsGrant(service, { resource: 'https://orchestrator.demo', scope: 'compute.read compute.create' });
    const { payload, protectedHeader } = await jwtVerify(tokens.access_token, jwks, {
      issuer: server.issuer, audience: 'https://orchestrator.demo', typ: 'at+jwt', algorithms: ['ES256'],
    });
    assert.equal(protectedHeader.alg, 'ES256');
    assert.equal(payload.sub, 'demo-service');
    assert.equal(payload.client_id, 'demo-service');
    assert.equal(payload.scope, 'compute.read compute.create');
    assert.equal(payload['wlcg.ver'], '1.0');
    assert.ok(typeof payload.jti === 'string' && payload.iat && payload.exp && payload.nbf! <= payload.iat!);
    assert.equal(payload.exp! - payload.iat!, 600, 'the configured client credentials lifetime');
  });

  it('signs with RS256 and uses the lifetime of a resource server that asks for them', async () => {
    const tokens = await oidc.clientCredentialsGrant(service, { resource: 'https://hpc.example', scope: 'compute.create' });
    const { payload, protectedHeader } = await jwtVerify(tokens.access_token, jwks, { issuer: server.issuer, audience: 'https://hpc.example', algorithms: ['RS256'] });
    assert.equal(protectedHeader.alg, 'RS256');
    assert.equal(payload.exp! - payload.iat!, 1200, 'the resource server lifetime wins over the grant default');
  });

  it('narrows WLCG storage scopes to paths under what the resource server accepts and drops the rest', async () => {
    const tokens = await oidc.clientCredentialsGrant(service, {
      resource: 'https://storage.demo',
      scope: 'storage.read:/store/cms storage.modify:/store/cms/../../etc storage.stage:/tape compute.read unknown.scope',
    });
    // `..` never escapes a base path; compute.* is not a storage scope; unknown scopes are silently dropped (RFC 6749 §3.3).
    assert.equal(decodeJwt(tokens.access_token).payload.scope, 'storage.read:/store/cms storage.stage:/tape');
  });

  it('gives WLCG capability requests without a resource the WLCG "any" audience', async () => {
    const tokens = await oidc.clientCredentialsGrant(service, { scope: 'storage.read:/public' });
    const { payload } = await jwtVerify(tokens.access_token, jwks, { issuer: server.issuer, audience: 'https://wlcg.cern.ch/jwt/v1/any' });
    assert.equal(payload.scope, 'storage.read:/public');
  });

  it('refuses an unknown resource server with invalid_target', async () => {
    await assert.rejects(
      oidc.clientCredentialsGrant(service, { resource: 'https://unknown.example', scope: 'storage.read:/' }),
      (err: oidc.ResponseBodyError) => err.error === 'invalid_target' && err.status === 400,
    );
  });

  it('introspects tokens for a confidential resource server (RFC 7662) and reports revoked ones inactive (RFC 7009)', async () => {
    const tokens = await oidc.clientCredentialsGrant(service, {});
    assert.ok(!tokens.access_token.includes('.'), 'without a resource the token is opaque');
    const active = await oidc.tokenIntrospection(webApp, tokens.access_token);
    assert.equal(active.active, true);
    assert.equal(active.client_id, 'demo-service');
    assert.equal(active.token_type, 'Bearer');

    await oidc.tokenRevocation(service, tokens.access_token);
    const revoked = await oidc.tokenIntrospection(webApp, tokens.access_token);
    assert.deepEqual(revoked, { active: false });
    const events = await server.fedgate.audit.recent(20);
    assert.ok(events.some((e) => e.type === 'token.revoked' && e.client === 'demo-service'));
  });

  it('refuses wrong secrets and unknown clients with invalid_client and a 401', async () => {
    for (const [id, secret] of [['demo-service', 'wrong-secret-wrong'], ['nobody', 'whatever-whatever']] as const) {
      const res = await fetch(`${server.issuer}/token`, {
        method: 'POST',
        headers: { authorization: `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' },
        body: 'grant_type=client_credentials',
      });
      assert.equal(res.status, 401);
      assert.equal((await res.json() as { error: string }).error, 'invalid_client');
    }
    const events = await server.fedgate.audit.recent(20);
    assert.ok(events.some((e) => e.type === 'token.failed' && e.outcome === 'failure'));
  });

  it('refuses client credentials to a client that is not allowed the grant', async () => {
    await assert.rejects(
      oidc.clientCredentialsGrant(webApp, {}),
      // oidc-provider answers invalid_request (not unauthorized_client) with this description.
      (err: oidc.ResponseBodyError) => err.error === 'invalid_request' && /grant type is not allowed/.test(String(err.error_description)),
    );
  });

  it('counts issued tokens by grant type and requests by route in /metrics, and writes an audit event per issuance', async () => {
    await oidc.clientCredentialsGrant(service, { resource: 'https://ml.demo', scope: 'ml.inference' });
    const metrics = await (await fetch(`${server.issuer}/metrics`)).text();
    assert.match(metrics, /fedgate_tokens_issued_total\{grant_type="client_credentials"\} \d+/);
    assert.match(metrics, /fedgate_http_requests_total\{route="token",method="POST",status="200"\} \d+/);
    assert.match(metrics, /fedgate_http_request_duration_seconds_bucket\{le="0.005",route="token",method="POST"\} \d+/);
    const events = await server.fedgate.audit.recent(50);
    const issued = events.find((e) => e.type === 'token.issued' && e.detail?.audience === 'https://ml.demo');
    assert.ok(issued);
    assert.equal(issued.actor, 'client:demo-service');
    assert.equal(issued.detail?.grant_type, 'client_credentials');
  });

  it('never writes a secret or token into the logs', async () => {
    const tokens = await oidc.clientCredentialsGrant(service, { resource: 'https://storage.demo', scope: 'storage.read:/' });
    const logs = server.logs.text;
    assert.ok(logs.length > 0);
    assert.ok(!logs.includes('demo-service-secret'));
    assert.ok(!logs.includes('demo-portal-secret'));
    assert.ok(!logs.includes(tokens.access_token));
    assert.ok(!logs.includes(tokens.access_token.split('.')[2]!));
  });
});
