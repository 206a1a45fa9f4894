import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { importJWK, SignJWT } from 'jose';
import type * as oidc from 'openid-client';
import { jwksForProvider, loadOrCreateKeys } from '../../src/keys/index.ts';
import { authorizationCodeFlow, decodeJwt, rawRequest, rp, startServer, type TestServer } from '../support/harness.ts';

/**
 * RFC 8693 token exchange with the demo realm: the research portal hands
 * alice's token to the orchestrator, which exchanges it for storage and
 * sync&share tokens (policies/exchange.csv), over Redis.
 */
const GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
const AT = 'urn:ietf:params:oauth:token-type:access_token';
const RT = 'urn:ietf:params:oauth:token-type:refresh_token';
const ID = 'urn:ietf:params:oauth:token-type:id_token';
const JWT = 'urn:ietf:params:oauth:token-type:jwt';
const PORTAL_REDIRECT = 'http://localhost:3000/callback';
const SECRETS: Record<string, string> = {
  'demo-portal': 'demo-portal-secret',
  'demo-orchestrator': 'demo-orchestrator-secret',
  'demo-service': 'demo-service-secret',
  'no-exchange': 'no-exchange-secret-0123',
};

type Answer = { status: number; body: Record<string, unknown> & { access_token?: string; error?: string; error_description?: string } };

describe('token exchange (RFC 8693)', () => {
  let server: TestServer;
  let portal: oidc.Configuration;

  before(async () => {
    server = await startServer({
      redis: true,
      configure: (config) => {
        config.clients.push({ clientId: 'no-exchange', clientSecret: 'no-exchange-secret-0123', applicationType: 'web', grantTypes: ['client_credentials'], redirectUris: [], postLogoutRedirectUris: [], consentRequired: false });
      },
    });
    portal = await rp(server.issuer, 'demo-portal', SECRETS['demo-portal']);
  });
  after(() => server.cleanup());

  const post = async (path: string, client: string, params: Record<string, string>, secret = SECRETS[client]!): Promise<Answer> => {
    const res = await fetch(`${server.issuer}${path}`, {
      method: 'POST',
      headers: { authorization: `Basic ${Buffer.from(`${client}:${secret}`).toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(params),
    });
    const text = await res.text();
    return { status: res.status, body: (text ? JSON.parse(text) : {}) as Answer['body'] };
  };
  const exchange = (client: string, params: Record<string, string>) => post('/token', client, { grant_type: GRANT, ...params });
  const introspect = async (token: string, client = 'demo-service') => (await post('/token/introspection', client, { token })).body;
  const ownToken = async (client: string) => {
    const res = await post('/token', client, { grant_type: 'client_credentials', resource: 'https://orchestrator.demo', scope: 'compute.read' });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body.access_token!;
  };
  const login = (username: string, scope: string, resource = 'https://orchestrator.demo') =>
    authorizationCodeFlow(portal, { redirectUri: PORTAL_REDIRECT, scope, resource, username, password: `${username}-password` });
  const authz = (service: string, method: string, uri: string, token: string) =>
    rawRequest(server.issuer, `/authz?service=${service}`, { headers: { 'x-original-method': method, 'x-original-uri': uri, authorization: `Bearer ${token}` } });

  /** alice at the portal, then portal → orchestrator (delegation). */
  const portalToOrchestrator = async (scope = 'openid offline_access compute.create storage.read:/store/cms storage.modify:/store/cms sync.write') => {
    const user = await login('alice', scope);
    const handed = await exchange('demo-portal', {
      subject_token: user.access_token, subject_token_type: AT,
      actor_token: await ownToken('demo-portal'), actor_token_type: AT,
      audience: 'https://orchestrator.demo',
    });
    assert.equal(handed.status, 200, JSON.stringify(handed.body));
    return { user, orchestratorToken: handed.body.access_token!, handed };
  };

  /** The orchestrator asks a refresh token for sync&share from a token it was handed. */
  const syncRefreshToken = async (subjectToken: string) => exchange('demo-orchestrator', {
    subject_token: subjectToken, subject_token_type: AT, actor_token: await ownToken('demo-orchestrator'), actor_token_type: AT,
    audience: 'https://sync.demo', requested_token_type: RT, scope: 'sync.write',
  });

  it('is advertised in discovery', async () => {
    const meta = await (await fetch(`${server.issuer}/.well-known/openid-configuration`)).json() as { grant_types_supported: string[] };
    assert.ok(meta.grant_types_supported.includes(GRANT));
  });

  it('carries the portal → orchestrator → storage chain in a nested act claim, narrowed at every hop', async () => {
    const { user, orchestratorToken, handed } = await portalToOrchestrator();
    assert.equal(handed.body.issued_token_type, AT);
    assert.equal(handed.body.token_type, 'Bearer');
    const hop1 = decodeJwt(orchestratorToken).payload;
    assert.deepEqual(hop1.act, { sub: 'demo-portal' });
    assert.equal(hop1.aud, 'https://orchestrator.demo');
    assert.equal(hop1.sub, decodeJwt(user.access_token).payload.sub, 'still alice');
    assert.equal(hop1.client_id, 'demo-portal');
    assert.equal(hop1['wlcg.ver'], '1.0', 'in the audience\'s (WLCG) profile');

    const storage = await exchange('demo-orchestrator', {
      subject_token: orchestratorToken, subject_token_type: AT,
      actor_token: await ownToken('demo-orchestrator'), actor_token_type: AT,
      resource: 'https://storage.demo', scope: 'storage.read:/store/cms/run42',
    });
    assert.equal(storage.status, 200, JSON.stringify(storage.body));
    assert.equal(storage.body.scope, 'storage.read:/store/cms/run42');
    const hop2 = decodeJwt(storage.body.access_token!).payload;
    assert.deepEqual(hop2.act, { sub: 'demo-orchestrator', act: { sub: 'demo-portal' } });
    assert.equal(hop2.aud, 'https://storage.demo');
    assert.equal(hop2.client_id, 'demo-orchestrator');
    assert.ok((hop2.exp as number) <= (decodeJwt(orchestratorToken).payload.exp as number), 'never outlives the subject token');

    // The gateway accepts it for its audience, within its narrowed path, and nowhere else.
    assert.equal((await authz('data', 'GET', '/store/cms/run42/input.root', storage.body.access_token!)).status, 200);
    assert.equal((await authz('data', 'GET', '/store/cms/run43/input.root', storage.body.access_token!)).status, 403, 'outside the narrowed path');
    assert.equal((await authz('orchestrator', 'GET', '/deployments/1', storage.body.access_token!)).status, 401, 'another audience');
    assert.equal((await authz('orchestrator', 'GET', '/deployments/1', orchestratorToken)).status, 200);
  });

  it('narrows WLCG storage paths, never widens them', async () => {
    const { orchestratorToken } = await portalToOrchestrator();
    const actor = await ownToken('demo-orchestrator');
    const ask = (scope: string) => exchange('demo-orchestrator', {
      subject_token: orchestratorToken, subject_token_type: AT, actor_token: actor, actor_token_type: AT, audience: 'https://storage.demo', scope,
    });
    const narrower = await ask('storage.modify:/store/cms/user/alice/out');
    assert.equal(narrower.status, 200);
    assert.equal(narrower.body.scope, 'storage.modify:/store/cms/user/alice/out');
    for (const scope of ['storage.read:/store', 'storage.read:/', 'storage.read:/store/cms/../atlas', 'storage.create:/store/cms', 'compute.cancel',
      // Storage paths not in normal form are refused, however they are spelled.
      'storage.read:/store/cms/%2e%2e/atlas', 'storage.read:/store/cms/.%2e/atlas', 'storage.read:/store/cms/..%2fatlas', 'storage.read:/store/cms%00',
      'storage.read:/store/cms/\u0000', 'storage.read:/store/cms//x', 'storage.modify:/store/cms/%2E%2E']) {
      const wider = await ask(scope);
      assert.equal(wider.status, 400, scope);
      assert.equal(wider.body.error, 'invalid_scope', scope);
    }
    // Without a scope parameter, the new token carries what the subject token had and the target accepts.
    const all = await exchange('demo-orchestrator', { subject_token: orchestratorToken, subject_token_type: AT, actor_token: actor, actor_token_type: AT, audience: 'https://storage.demo' });
    assert.deepEqual(String(all.body.scope).split(' ').sort(), ['storage.modify:/store/cms', 'storage.read:/store/cms']);
  });

  it('gives the orchestrator a refresh token for a long job, which it uses later and which rotates', async () => {
    const { orchestratorToken } = await portalToOrchestrator();
    const got = await syncRefreshToken(orchestratorToken);
    assert.equal(got.status, 200, JSON.stringify(got.body));
    assert.equal(got.body.issued_token_type, RT);
    assert.equal(got.body.token_type, 'N_A');
    const refreshToken = got.body.access_token!;

    const first = await post('/token', 'demo-orchestrator', { grant_type: 'refresh_token', refresh_token: refreshToken, resource: 'https://sync.demo' });
    assert.equal(first.status, 200, JSON.stringify(first.body));
    const syncToken = decodeJwt(first.body.access_token!).payload;
    assert.equal(syncToken.aud, 'https://sync.demo');
    assert.equal(syncToken.scope, 'sync.write');
    assert.deepEqual(syncToken.act, { sub: 'demo-orchestrator', act: { sub: 'demo-portal' } }, 'the chain survives refreshes');
    assert.ok(syncToken.eduperson_entitlement, 'in the sync service\'s (AARC) profile');
    assert.ok(first.body.refresh_token && first.body.refresh_token !== refreshToken, 'rotated');
    const replay = await post('/token', 'demo-orchestrator', { grant_type: 'refresh_token', refresh_token: refreshToken });
    assert.equal(replay.body.error, 'invalid_grant', 'a used refresh token is refused (and its grant revoked)');

    // A client cannot use a refresh token someone else was given.
    const stolen = await exchange('demo-portal', { subject_token: String(first.body.refresh_token), subject_token_type: RT, audience: 'https://orchestrator.demo' });
    assert.equal(stolen.body.error, 'invalid_grant');
  });

  it('refuses a refresh token by exchange when the user never granted offline_access', async () => {
    const { orchestratorToken } = await portalToOrchestrator('openid compute.create storage.read:/store/cms sync.write');
    const got = await exchange('demo-orchestrator', {
      subject_token: orchestratorToken, subject_token_type: AT, actor_token: await ownToken('demo-orchestrator'), actor_token_type: AT,
      audience: 'https://sync.demo', requested_token_type: RT,
    });
    assert.equal(got.status, 400);
    assert.equal(got.body.error, 'invalid_scope');
  });

  it('decides offline_access from the subject token\'s own grant, not from the user\'s other logins at the client', async () => {
    // Another login of alice at the portal, without offline_access, beside the one whose token is exchanged.
    const other = await login('alice', 'openid compute.create sync.write');
    const { orchestratorToken } = await portalToOrchestrator();
    const got = await syncRefreshToken(orchestratorToken);
    assert.equal(got.status, 200, JSON.stringify(got.body));
    assert.equal(got.body.issued_token_type, RT);
    // And the other login's token still gets none.
    const handed = await exchange('demo-portal', {
      subject_token: other.access_token, subject_token_type: AT, actor_token: await ownToken('demo-portal'), actor_token_type: AT,
      audience: 'https://orchestrator.demo',
    });
    assert.equal(handed.status, 200, JSON.stringify(handed.body));
    const refused = await syncRefreshToken(handed.body.access_token!);
    assert.equal(refused.body.error, 'invalid_scope');
  });

  it('decides offline_access from the own grant of an ID token or an opaque access token too', async () => {
    // Two logins of alice at the portal without a resource (the access token is then opaque, for userinfo), only the first with offline_access.
    const signIn = (scope: string) => authorizationCodeFlow(portal, { redirectUri: PORTAL_REDIRECT, scope, username: 'alice', password: 'alice-password' });
    const offline = await signIn('openid offline_access');
    const online = await signIn('openid');
    assert.ok(offline.id_token && online.id_token);
    assert.doesNotMatch(offline.access_token, /^eyJ/, 'an opaque access token');
    const refreshFor = async (subjectToken: string, type: string) => exchange('demo-portal', {
      subject_token: subjectToken, subject_token_type: type, actor_token: await ownToken('demo-portal'), actor_token_type: AT,
      audience: 'https://orchestrator.demo', requested_token_type: RT,
    });
    for (const [what, token, type] of [['ID token', offline.id_token!, ID], ['opaque access token', offline.access_token, AT]] as const) {
      const got = await refreshFor(token, type);
      assert.equal(got.status, 200, `${what} of the login with offline_access: ${JSON.stringify(got.body)}`);
      assert.equal(got.body.issued_token_type, RT, what);
    }
    for (const [what, token, type] of [['ID token', online.id_token!, ID], ['opaque access token', online.access_token, AT]] as const) {
      const refused = await refreshFor(token, type);
      assert.equal(refused.status, 400, what);
      assert.equal(refused.body.error, 'invalid_scope', `${what} of the login without offline_access: ${JSON.stringify(refused.body)}`);
    }
    // The same holds for an ID token issued by exchange: it names the exchanged grant.
    const exchangedId = await exchange('demo-portal', {
      subject_token: offline.id_token!, subject_token_type: ID, actor_token: await ownToken('demo-portal'), actor_token_type: AT, requested_token_type: ID,
    });
    assert.equal(exchangedId.status, 200, JSON.stringify(exchangedId.body));
    assert.equal(typeof decodeJwt(exchangedId.body.access_token!).payload.fedgate_grant, 'string');
    assert.notEqual(decodeJwt(exchangedId.body.access_token!).payload.fedgate_grant, decodeJwt(offline.id_token!).payload.fedgate_grant);
  });

  it('refuses a refresh token for an ID token that names no grant, rather than guessing which login it came from', async () => {
    await login('alice', 'openid offline_access');
    // An ID token as fedgate signed them before grant references: no fedgate_grant claim.
    const { keys } = jwksForProvider(await loadOrCreateKeys(server.keysDir));
    const key = keys.find((k) => k.alg === 'ES256')!;
    const alice = await server.fedgate.accounts.findByUsername('alice');
    const legacy = await new SignJWT({ azp: 'demo-portal' })
      .setProtectedHeader({ alg: 'ES256', kid: key.kid!, typ: 'JWT' })
      .setIssuer(server.issuer).setSubject(alice!.id).setAudience('demo-portal').setIssuedAt().setExpirationTime('10m')
      .sign(await importJWK(key, 'ES256'));
    const base = { subject_token: legacy, subject_token_type: ID, actor_token: await ownToken('demo-portal'), actor_token_type: AT, audience: 'https://orchestrator.demo' };
    const refused = await exchange('demo-portal', { ...base, requested_token_type: RT });
    assert.equal(refused.status, 400, JSON.stringify(refused.body));
    assert.equal(refused.body.error, 'invalid_grant');
    assert.match(String(refused.body.error_description), /does not name the grant/);
    // An access token from it is still fine: it dies with any of the user's grants at the portal.
    const handed = await exchange('demo-portal', base);
    assert.equal(handed.status, 200, JSON.stringify(handed.body));
  });

  it('reports exchanged tokens at introspection, and revoking the subject grant ends them everywhere', async () => {
    const { user, orchestratorToken } = await portalToOrchestrator();
    const storage = await exchange('demo-orchestrator', {
      subject_token: orchestratorToken, subject_token_type: AT, actor_token: await ownToken('demo-orchestrator'), actor_token_type: AT,
      audience: 'https://storage.demo', scope: 'storage.read:/store/cms',
    });
    const token = storage.body.access_token!;
    const seen = await introspect(token);
    assert.equal(seen.active, true);
    assert.equal(seen.scope, 'storage.read:/store/cms');
    assert.equal(seen.aud, 'https://storage.demo');
    assert.equal(seen.client_id, 'demo-orchestrator');
    assert.equal(seen.sub, decodeJwt(user.access_token).payload.sub);
    assert.deepEqual(seen.act, { sub: 'demo-orchestrator', act: { sub: 'demo-portal' } });
    assert.equal((await authz('data', 'GET', '/store/cms/f', token)).status, 200);

    // The portal signs alice out of its grant: revoking its refresh token revokes the grant (RFC 7009 §2.1).
    const revoked = await post('/token/revocation', 'demo-portal', { token: String(user.refresh_token), token_type_hint: 'refresh_token' });
    assert.equal(revoked.status, 200);
    assert.equal((await introspect(token)).active, false);
    assert.equal((await introspect(orchestratorToken)).active, false);
    const refused = await authz('data', 'GET', '/store/cms/f', token);
    assert.equal(refused.status, 401);
    assert.match(String(refused.headers['www-authenticate'] ?? ''), /invalid_token/);
    assert.equal((await authz('orchestrator', 'GET', '/deployments/1', orchestratorToken)).status, 401);
    const again = await exchange('demo-orchestrator', { subject_token: orchestratorToken, subject_token_type: AT, actor_token: await ownToken('demo-orchestrator'), actor_token_type: AT, audience: 'https://storage.demo' });
    assert.equal(again.body.error, 'invalid_grant');
  });

  it('shows an exchanged token for a storage with a base path at introspection with the relative paths its JWT carries', async () => {
    await server.fedgate.dataSources.create({ name: 'vo-store', audience: 'https://vo-store.test', kind: 'storage', storage: { basePath: '/store' } }, { actor: 'cli', via: 'cli' });
    const rule = { ptype: 'p' as const, values: ['client:demo-orchestrator', 'exchange', 'https://vo-store.test', '*', 'allow', ''] };
    await server.fedgate.policy.add([rule]);
    try {
      const { orchestratorToken } = await portalToOrchestrator();
      const storage = await exchange('demo-orchestrator', {
        subject_token: orchestratorToken, subject_token_type: AT, actor_token: await ownToken('demo-orchestrator'), actor_token_type: AT,
        audience: 'https://vo-store.test', scope: 'storage.read:/store/cms/run1',
      });
      assert.equal(storage.status, 200, JSON.stringify(storage.body));
      assert.equal(decodeJwt(storage.body.access_token!).payload.scope, 'storage.read:/cms/run1');
      const seen = await introspect(storage.body.access_token!);
      assert.equal(seen.active, true);
      assert.equal(seen.scope, 'storage.read:/cms/run1');
    } finally {
      await server.fedgate.policy.remove([rule]);
    }
  });

  it('ends exchanged tokens when the account is disabled', async () => {
    const { orchestratorToken } = await portalToOrchestrator();
    assert.equal((await authz('orchestrator', 'GET', '/deployments/1', orchestratorToken)).status, 200);
    const alice = (await server.fedgate.accounts.findByUsername('alice'))!;
    await server.fedgate.accounts.setDisabled(alice.id, true);
    try {
      assert.equal((await introspect(orchestratorToken)).active, false);
      assert.equal((await authz('orchestrator', 'GET', '/deployments/1', orchestratorToken)).status, 401);
    } finally {
      await server.fedgate.accounts.setDisabled(alice.id, false);
    }
  });

  it('revokes a single exchanged token at the revocation endpoint', async () => {
    const { orchestratorToken } = await portalToOrchestrator();
    const res = await post('/token/revocation', 'demo-portal', { token: orchestratorToken });
    assert.equal(res.status, 200);
    assert.equal((await introspect(orchestratorToken)).active, false);
    assert.equal((await authz('orchestrator', 'GET', '/deployments/1', orchestratorToken)).status, 401);
  });

  it('impersonates only where policy names it, without an act claim', async () => {
    const bob = await login('bob', 'openid ml.inference', 'https://ml.demo');
    const res = await exchange('demo-service', { subject_token: bob.access_token, subject_token_type: AT, audience: 'https://ml.demo', scope: 'ml.inference' });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const token = decodeJwt(res.body.access_token!).payload;
    assert.equal(token.act, undefined);
    assert.equal(token.client_id, 'demo-service');
    assert.equal((await authz('ml', 'POST', '/v1/models/bert/infer', res.body.access_token!)).status, 200);

    // The portal may delegate to the orchestrator, not impersonate.
    const alice = await login('alice', 'openid compute.create');
    const impersonation = await exchange('demo-portal', { subject_token: alice.access_token, subject_token_type: AT, audience: 'https://orchestrator.demo' });
    assert.equal(impersonation.status, 400);
    assert.equal(impersonation.body.error, 'unauthorized_client');
  });

  it('impersonates in an ID token only under an impersonate rule for the issuer', async () => {
    const bob = await login('bob', 'openid ml.inference', 'https://ml.demo');
    const asked = () => exchange('demo-service', { subject_token: bob.access_token, subject_token_type: AT, requested_token_type: ID });
    // demo-service may impersonate /ml-users at https://ml.demo only: that is no licence to speak for them as fedgate.
    const refused = await asked();
    assert.equal(refused.status, 400, JSON.stringify(refused.body));
    assert.equal(refused.body.error, 'unauthorized_client');
    const rule = { ptype: 'p' as const, values: ['client:demo-service', 'exchange', server.issuer, 'impersonate', 'allow', ''] };
    await server.fedgate.policy.add([rule]);
    try {
      const allowed = await asked();
      assert.equal(allowed.status, 200, JSON.stringify(allowed.body));
      const claims = decodeJwt(allowed.body.access_token!).payload;
      assert.equal(claims.aud, 'demo-service');
      assert.equal(claims.act, undefined);
    } finally {
      await server.fedgate.policy.remove([rule]);
    }
  });

  it('issues an ID token and a JWT on request', async () => {
    const { orchestratorToken } = await portalToOrchestrator();
    const actor = await ownToken('demo-orchestrator');
    const id = await exchange('demo-orchestrator', { subject_token: orchestratorToken, subject_token_type: AT, actor_token: actor, actor_token_type: AT, requested_token_type: ID });
    assert.equal(id.status, 200, JSON.stringify(id.body));
    assert.equal(id.body.issued_token_type, ID);
    const claims = decodeJwt(id.body.access_token!).payload;
    assert.equal(claims.aud, 'demo-orchestrator');
    assert.deepEqual(claims.act, { sub: 'demo-orchestrator', act: { sub: 'demo-portal' } });

    const jwt = await exchange('demo-orchestrator', { subject_token: orchestratorToken, subject_token_type: JWT, actor_token: actor, actor_token_type: JWT, requested_token_type: JWT, audience: 'https://storage.demo' });
    assert.equal(jwt.status, 200, JSON.stringify(jwt.body));
    assert.equal(jwt.body.issued_token_type, JWT);
    assert.equal(decodeJwt(jwt.body.access_token!).header.typ, 'at+jwt');
  });

  it('answers every refusal with the RFC 8693 / RFC 6749 error', async () => {
    const { user, orchestratorToken } = await portalToOrchestrator();
    const actor = await ownToken('demo-orchestrator');
    const base = { subject_token: orchestratorToken, subject_token_type: AT, actor_token: actor, actor_token_type: AT, audience: 'https://storage.demo' };
    const cases: Array<[string, string, Record<string, string>, string]> = [
      ['no subject_token', 'demo-orchestrator', { subject_token_type: AT, audience: 'https://storage.demo' }, 'invalid_request'],
      ['no subject_token_type', 'demo-orchestrator', { subject_token: orchestratorToken, audience: 'https://storage.demo' }, 'invalid_request'],
      ['an unknown token type', 'demo-orchestrator', { ...base, subject_token_type: 'urn:ietf:params:oauth:token-type:saml2' }, 'invalid_request'],
      ['a type that does not match the token', 'demo-orchestrator', { ...base, subject_token_type: ID }, 'invalid_request'],
      ['an access token declared a refresh token', 'demo-orchestrator', { ...base, subject_token_type: RT }, 'invalid_request'],
      ['actor_token without its type', 'demo-orchestrator', { subject_token: orchestratorToken, subject_token_type: AT, actor_token: actor, audience: 'https://storage.demo' }, 'invalid_request'],
      ['an unsupported requested type', 'demo-orchestrator', { ...base, requested_token_type: 'urn:x:unknown' }, 'invalid_request'],
      ['a forged subject token', 'demo-orchestrator', { ...base, subject_token: `${orchestratorToken.slice(0, -4)}AAAA` }, 'invalid_grant'],
      ['garbage as subject token', 'demo-orchestrator', { ...base, subject_token: 'not-a-token-at-all-0123456789' }, 'invalid_grant'],
      ['another client\'s token as actor', 'demo-orchestrator', { ...base, actor_token: await ownToken('demo-service') }, 'invalid_grant'],
      ['an unknown audience', 'demo-orchestrator', { ...base, audience: 'https://nowhere.example' }, 'invalid_target'],
      ['two audiences', 'demo-orchestrator', { ...base, resource: 'https://sync.demo' }, 'invalid_target'],
      ['an audience the policy does not allow', 'demo-orchestrator', { ...base, audience: 'https://ml.demo' }, 'invalid_target'],
      ['a scope the subject token lacks', 'demo-orchestrator', { ...base, scope: 'storage.read:/store/atlas' }, 'invalid_scope'],
      ['a client no exchange policy names', 'demo-portal', { subject_token: user.access_token, subject_token_type: AT, actor_token: await ownToken('demo-portal'), actor_token_type: AT, audience: 'https://storage.demo' }, 'invalid_target'],
    ];
    for (const [what, client, params, error] of cases) {
      const res = await exchange(client, params);
      assert.equal(res.status, 400, `${what}: ${JSON.stringify(res.body)}`);
      assert.equal(res.body.error, error, `${what}: ${JSON.stringify(res.body)}`);
      assert.ok(typeof res.body.error_description === 'string' && res.body.error_description.length > 0, what);
    }
    // Whose tokens: bob (/atlas) may not be handed on by the portal.
    const bob = await login('bob', 'openid compute.read');
    const bobs = await exchange('demo-portal', { subject_token: bob.access_token, subject_token_type: AT, actor_token: await ownToken('demo-portal'), actor_token_type: AT, audience: 'https://orchestrator.demo' });
    assert.equal(bobs.body.error, 'unauthorized_client');
    // A client not allowed the grant at all.
    const noGrant = await post('/token', 'no-exchange', { grant_type: GRANT, ...base });
    assert.equal(noGrant.body.error, 'unauthorized_client', JSON.stringify(noGrant.body));
    // Nothing was stored by the refusals: the subject token still works.
    assert.equal((await exchange('demo-orchestrator', base)).status, 200);
  });

  it('records each exchange as an audit event with the actor chain and the scopes granted and dropped', async () => {
    const { orchestratorToken } = await portalToOrchestrator();
    await exchange('demo-orchestrator', {
      subject_token: orchestratorToken, subject_token_type: AT, actor_token: await ownToken('demo-orchestrator'), actor_token_type: AT,
      audience: 'https://storage.demo',
    });
    const events = await server.fedgate.audit.recent(50);
    const event = events.find((e) => e.type === 'token.exchanged' && e.client === 'demo-orchestrator');
    assert.ok(event, 'a token.exchanged event');
    const detail = event.detail as Record<string, unknown>;
    assert.deepEqual(detail.act, { sub: 'demo-orchestrator', act: { sub: 'demo-portal' } });
    assert.equal(detail.audience, 'https://storage.demo');
    assert.equal(detail.mode, 'delegate');
    assert.deepEqual((detail.scopes_granted as string[]).sort(), ['storage.modify:/store/cms', 'storage.read:/store/cms']);
    assert.deepEqual((detail.scopes_dropped as string[]).sort(), ['compute.create', 'sync.write'], 'storage does not take compute or sync scopes');
    assert.equal((detail.subject as { username: string }).username, 'alice');
    assert.ok(!JSON.stringify(event).includes(orchestratorToken), 'no token in the audit trail');
  });

  it('follows exchange policy changes made through the admin API', async () => {
    const { orchestratorToken } = await portalToOrchestrator();
    const actor = await ownToken('demo-orchestrator');
    const line = { ptype: 'p' as const, values: ['client:demo-orchestrator', 'exchange', 'https://storage.demo', 'storage.modify:/store/cms', 'deny', ''] };
    await server.fedgate.policy.add([line]);
    try {
      const res = await exchange('demo-orchestrator', { subject_token: orchestratorToken, subject_token_type: AT, actor_token: actor, actor_token_type: AT, audience: 'https://storage.demo' });
      assert.equal(res.status, 200);
      assert.equal(res.body.scope, 'storage.read:/store/cms', 'the denied scope is dropped');
    } finally {
      await server.fedgate.policy.remove([line]);
    }
  });
});
