import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import * as oidc from 'openid-client';
import { createInitialAccessToken } from '../../src/admin/routes.ts';
import { adminApi, adminToken, authorizationCodeFlow, rp, startServer, type TestServer } from '../support/harness.ts';

/**
 * The admin API is a resource server of its own (audience
 * `<issuer>/admin/api`, scope `fedgate.admin`): an administrator's token for
 * anything else, an exchanged one, or a DPoP-bound one without its proof
 * administers nothing.
 */
const EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const AT = 'urn:ietf:params:oauth:token-type:access_token';
const PORTAL_REDIRECT = 'http://localhost:3000/callback';
const CLI_REDIRECT = 'http://127.0.0.1:50000/callback';
const NOTES = 'https://notes.test';

describe('admin API: only tokens meant for it', () => {
  let server: TestServer;
  let portal: oidc.Configuration;
  let cli: oidc.Configuration;

  before(async () => {
    server = await startServer({
      redis: true,
      configure: (config) => {
        // alice administers too, so that her tokens the portal hands on are an administrator's.
        config.users.find((u) => u.username === 'alice')!.groups.push('/admins');
        config.users.push({ username: 'carol', password: 'carol-password', groups: ['/admins'], disabled: false } as typeof config.users[number]);
        config.resourceServers.push({ audience: NOTES, name: 'Notes', kind: 'other', scopes: ['notes.read'], profile: 'groups', accessTokenFormat: 'opaque', signingAlg: 'ES256' });
        config.clients.push({
          clientId: 'admin-robot', clientSecret: 'admin-robot-secret-0123', applicationType: 'web', grantTypes: ['client_credentials'],
          redirectUris: [], postLogoutRedirectUris: [], scopes: ['fedgate.admin'], consentRequired: false, accessTokenTtl: 2,
        });
        // A first-party web application that skips the consent page.
        config.clients.push({
          clientId: 'first-party', clientSecret: 'first-party-secret-0123', applicationType: 'web', grantTypes: ['authorization_code'],
          redirectUris: [PORTAL_REDIRECT], postLogoutRedirectUris: [], consentRequired: false,
        });
      },
    });
    await server.fedgate.policy.importCsv(`p, /admins, scopes, ${NOTES}, notes.read, allow,\n`, 'merge');
    portal = await rp(server.issuer, 'demo-portal', 'demo-portal-secret');
    cli = await rp(server.issuer, 'demo-cli');
  });
  after(() => server.cleanup());

  const call = (token: string, init: { scheme?: string; dpop?: string; path?: string; method?: string } = {}) =>
    fetch(`${server.issuer}/admin/api${init.path ?? '/accounts'}`, {
      method: init.method ?? 'GET',
      headers: { authorization: `${init.scheme ?? 'Bearer'} ${token}`, ...(init.dpop ? { dpop: init.dpop } : {}) },
    });
  const post = async (client: string, secret: string, params: Record<string, string>) => {
    const res = await fetch(`${server.issuer}/token`, {
      method: 'POST',
      headers: { authorization: `Basic ${Buffer.from(`${client}:${secret}`).toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(params),
    });
    return { status: res.status, body: await res.json() as { access_token?: string; scope?: string; error?: string } };
  };
  const ownToken = async (client: string, secret: string) => {
    const res = await post(client, secret, { grant_type: 'client_credentials', resource: 'https://orchestrator.demo', scope: 'compute.read' });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body.access_token!;
  };

  it('admits an administrator\'s token for its audience with fedgate.admin', async () => {
    const token = await adminToken(server.issuer);
    const introspected = await oidc.tokenIntrospection(portal, token);
    assert.equal(introspected.aud, adminApi(server.issuer));
    assert.equal(introspected.scope, 'fedgate.admin');
    const res = await call(token);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('cache-control'), 'no-store');
  });

  it('refuses an administrator\'s token issued to a relying party for itself (userinfo) or for another resource server', async () => {
    const userinfo = (await authorizationCodeFlow(portal, { redirectUri: PORTAL_REDIRECT, scope: 'openid', username: 'admin', password: 'admin-password' })).access_token;
    const storage = (await authorizationCodeFlow(cli, { redirectUri: CLI_REDIRECT, scope: 'openid storage.read:/', resource: 'https://storage.demo', username: 'admin', password: 'admin-password' })).access_token;
    const notes = await authorizationCodeFlow(cli, { redirectUri: CLI_REDIRECT, scope: 'openid notes.read', resource: NOTES, username: 'admin', password: 'admin-password' });
    assert.equal(notes.scope?.includes('notes.read'), true, 'an opaque token for the notes service');
    assert.equal(notes.access_token.includes('.'), false, 'opaque');
    for (const token of [userinfo, storage, notes.access_token]) {
      const res = await call(token);
      assert.equal(res.status, 401);
      assert.match(res.headers.get('www-authenticate')!, /^Bearer realm="fedgate", error="invalid_token", error_description="the access token is not meant for this service \(aud\)"/);
      assert.equal((await res.json() as { error: string }).error, 'invalid_token');
    }
  });

  it('refuses exchanged tokens of an administrator, once or twice exchanged, and exchanges never reach the admin audience', async () => {
    const user = await authorizationCodeFlow(portal, {
      redirectUri: PORTAL_REDIRECT, scope: 'openid compute.create storage.read:/store/cms', resource: 'https://orchestrator.demo', username: 'alice', password: 'alice-password',
    });
    const once = await post('demo-portal', 'demo-portal-secret', {
      grant_type: EXCHANGE, subject_token: user.access_token, subject_token_type: AT,
      actor_token: await ownToken('demo-portal', 'demo-portal-secret'), actor_token_type: AT, audience: 'https://orchestrator.demo',
    });
    assert.equal(once.status, 200, JSON.stringify(once.body));
    const twice = await post('demo-orchestrator', 'demo-orchestrator-secret', {
      grant_type: EXCHANGE, subject_token: once.body.access_token!, subject_token_type: AT,
      actor_token: await ownToken('demo-orchestrator', 'demo-orchestrator-secret'), actor_token_type: AT,
      resource: 'https://storage.demo', scope: 'storage.read:/store/cms/run1',
    });
    assert.equal(twice.status, 200, JSON.stringify(twice.body));
    for (const token of [once.body.access_token!, twice.body.access_token!]) assert.equal((await call(token)).status, 401);

    const toAdmin = await post('demo-portal', 'demo-portal-secret', {
      grant_type: EXCHANGE, subject_token: user.access_token, subject_token_type: AT,
      actor_token: await ownToken('demo-portal', 'demo-portal-secret'), actor_token_type: AT, audience: adminApi(server.issuer), scope: 'fedgate.admin',
    });
    assert.equal(toAdmin.status, 400);
    assert.equal(toAdmin.body.error, 'invalid_target');
  });

  it('always asks the administrator before a relying party gets an admin token, even one that skips consent', async () => {
    const firstParty = await rp(server.issuer, 'first-party', 'first-party-secret-0123');
    // Without fedgate.admin no consent page: refusing a page that never comes changes nothing.
    const plain = await authorizationCodeFlow(firstParty, { redirectUri: PORTAL_REDIRECT, scope: 'openid', username: 'admin', password: 'admin-password', consent: 'deny' });
    assert.ok(plain.access_token);
    await assert.rejects(
      authorizationCodeFlow(firstParty, { redirectUri: PORTAL_REDIRECT, scope: 'openid fedgate.admin', resource: adminApi(server.issuer), username: 'admin', password: 'admin-password', consent: 'deny' }),
      (err: { error?: string }) => err.error === 'access_denied',
    );
    const approved = await authorizationCodeFlow(firstParty, { redirectUri: PORTAL_REDIRECT, scope: 'openid fedgate.admin', resource: adminApi(server.issuer), username: 'admin', password: 'admin-password' });
    assert.equal(approved.scope, 'fedgate.admin');
    assert.equal((await call(approved.access_token)).status, 200);
  });

  it('takes a DPoP-bound token only with a proof of its key for this request', async () => {
    const keyPair = await generateKeyPair('ES256', { extractable: true });
    // Bound, but not an admin token: refused whatever the scheme.
    const plain = (await authorizationCodeFlow(cli, {
      redirectUri: CLI_REDIRECT, scope: 'openid', username: 'admin', password: 'admin-password', dpop: oidc.getDPoPHandle(cli, keyPair),
    })).access_token;
    assert.equal((await call(plain)).status, 401);

    const bound = await authorizationCodeFlow(cli, {
      redirectUri: CLI_REDIRECT, scope: 'openid fedgate.admin', resource: adminApi(server.issuer), username: 'admin', password: 'admin-password',
      dpop: oidc.getDPoPHandle(cli, keyPair),
    });
    assert.equal(bound.token_type.toLowerCase(), 'dpop');
    const url = `${server.issuer}/admin/api/accounts`;
    const proof = async (htu: string, htm = 'GET') => new SignJWT({ htm, htu, jti: randomUUID(), ath: createHash('sha256').update(bound.access_token).digest('base64url') })
      .setProtectedHeader({ typ: 'dpop+jwt', alg: 'ES256', jwk: await exportJWK(keyPair.publicKey) })
      .setIssuedAt()
      .sign(keyPair.privateKey);

    const asBearer = await call(bound.access_token);
    assert.equal(asBearer.status, 401, 'a DPoP-bound token is not a bearer token');
    assert.match(asBearer.headers.get('www-authenticate')!, /^DPoP /);
    const noProof = await call(bound.access_token, { scheme: 'DPoP' });
    assert.equal(noProof.status, 401);
    assert.equal((await noProof.json() as { error: string }).error, 'invalid_dpop_proof');
    assert.equal((await call(bound.access_token, { scheme: 'DPoP', dpop: await proof(`${server.issuer}/admin/api/audit`) })).status, 401, 'a proof for another URL');
    assert.equal((await call(bound.access_token, { scheme: 'DPoP', dpop: await proof(url, 'DELETE') })).status, 401, 'a proof for another method');

    const good = await proof(url);
    assert.equal((await call(bound.access_token, { scheme: 'DPoP', dpop: good })).status, 200);
    assert.equal((await call(bound.access_token, { scheme: 'DPoP', dpop: good })).status, 401, 'a proof is good once');
    // openid-client, an independent DPoP implementation, makes its own proofs.
    const viaClient = await oidc.fetchProtectedResource(cli, bound.access_token, new URL(url), 'GET', undefined, undefined, { DPoP: oidc.getDPoPHandle(cli, keyPair) });
    assert.equal(viaClient.status, 200);
  });

  it('stops a token at once when it is revoked or its user leaves /admins', async () => {
    const token = await adminToken(server.issuer);
    assert.equal((await call(token)).status, 200);
    await oidc.tokenRevocation(cli, token);
    assert.equal((await call(token)).status, 401, 'revoked');

    const carol = await adminToken(server.issuer, { username: 'carol', password: 'carol-password' });
    assert.equal((await call(carol)).status, 200);
    const removed = await call(await adminToken(server.issuer), { path: '/groups/admins/members/carol', method: 'DELETE' });
    assert.equal(removed.status, 200);
    const after = await call(carol);
    assert.equal(after.status, 403, 'no longer an administrator');
    // A new request no longer gets the scope: the scope policy gives it to /admins only.
    const again = await authorizationCodeFlow(cli, { redirectUri: CLI_REDIRECT, scope: 'openid fedgate.admin', resource: adminApi(server.issuer), username: 'carol', password: 'carol-password' });
    assert.equal(again.scope?.split(' ').includes('fedgate.admin'), false);
  });

  it('gives a client its own admin token only when configured, and refuses it once expired', async () => {
    const robot = await post('admin-robot', 'admin-robot-secret-0123', { grant_type: 'client_credentials', resource: adminApi(server.issuer), scope: 'fedgate.admin' });
    assert.equal(robot.status, 200, JSON.stringify(robot.body));
    assert.equal(robot.body.scope, 'fedgate.admin');
    assert.equal((await call(robot.body.access_token!)).status, 200);

    const service = await post('demo-service', 'demo-service-secret', { grant_type: 'client_credentials', resource: adminApi(server.issuer), scope: 'fedgate.admin' });
    assert.equal(service.status, 200);
    assert.equal(service.body.scope, undefined, 'a client whose configuration does not list fedgate.admin');
    assert.equal((await call(service.body.access_token!)).status, 403);
    const withoutResource = await post('admin-robot', 'admin-robot-secret-0123', { grant_type: 'client_credentials', scope: 'fedgate.admin' });
    assert.equal(withoutResource.status, 200);
    assert.equal(withoutResource.body.scope, undefined);
    assert.equal((await call(withoutResource.body.access_token!)).status, 401, 'not for the admin audience');

    await new Promise((resolve) => setTimeout(resolve, 2_500));
    assert.equal((await call(robot.body.access_token!)).status, 401, 'expired');
  });

  it('never lets a dynamically registered client register or obtain fedgate.admin', async () => {
    // As `initial-access-token create` makes it; one registration each.
    const initialAccessToken = (await createInitialAccessToken(server.fedgate.provider(), 600)).token;
    const register = (body: Record<string, unknown>, token = initialAccessToken) => fetch(`${server.issuer}/reg`, {
      method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify(body),
    });
    const refused = await register({ grant_types: ['client_credentials'], response_types: [], redirect_uris: [], scope: 'openid fedgate.admin' });
    assert.equal(refused.status, 400);
    assert.equal((await refused.json() as { error: string }).error, 'invalid_client_metadata');

    // Register a client without the scope, and let it ask anyway.
    const created = await register({
      application_type: 'native', grant_types: ['authorization_code', 'client_credentials'], response_types: ['code'],
      redirect_uris: [CLI_REDIRECT], token_endpoint_auth_method: 'client_secret_basic',
    });
    assert.equal(created.status, 201);
    const { client_id: clientId, client_secret: clientSecret } = await created.json() as { client_id: string; client_secret: string };
    const own = await post(clientId, clientSecret, { grant_type: 'client_credentials', resource: adminApi(server.issuer), scope: 'fedgate.admin' });
    assert.equal(own.status, 200);
    assert.equal(own.body.scope, undefined, 'stripped at issuance');
    assert.equal((await call(own.body.access_token!)).status, 401, 'not a configured client');

    const registered = await rp(server.issuer, clientId, clientSecret);
    const forAdmin = await authorizationCodeFlow(registered, { redirectUri: CLI_REDIRECT, scope: 'openid fedgate.admin', resource: adminApi(server.issuer), username: 'admin', password: 'admin-password' });
    assert.equal(forAdmin.scope?.split(' ').includes('fedgate.admin'), false, 'stripped at issuance');
    assert.equal((await call(forAdmin.access_token)).status, 401);
  });
});
