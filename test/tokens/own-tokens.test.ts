import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { importJWK, SignJWT, type JWK, type JWTPayload } from 'jose';
import type * as oidc from 'openid-client';
import { jwksForProvider, loadOrCreateKeys, SIGNING_ALGORITHMS } from '../../src/keys/index.ts';
import { CLOCK_TOLERANCE, isCompactJws, isOpaqueToken, OWN_TOKEN_ALGORITHMS, scopeList, TokenRefused } from '../../src/tokens/own-tokens.ts';
import { adminApi, authorizationCodeFlow, rawRequest, rp, startServer, type TestServer } from '../support/harness.ts';

/**
 * The one verifier of fedgate's own tokens (src/tokens), seen from every
 * path that accepts them: the gateway's `/authz`, the admin API (its own
 * resource server, through the gateway's authenticate) and token exchange
 * (subject and actor tokens). Each bad token is refused on each path with
 * the same description: `invalid_token` (401) at the resources,
 * `invalid_grant` (400) naming the token's role at the token endpoint.
 */
const GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
const AT = 'urn:ietf:params:oauth:token-type:access_token';
const ORCHESTRATOR = 'https://orchestrator.demo';
const STORAGE = 'https://storage.demo';
const SECRETS: Record<string, string> = { 'demo-portal': 'demo-portal-secret', 'demo-orchestrator': 'demo-orchestrator-secret' };

type Answer = { status: number; body: { error?: string; error_description?: string; access_token?: string; refresh_token?: string } };

describe('one verifier of fedgate\'s own tokens', () => {
  let server: TestServer;
  let portal: oidc.Configuration;
  let signingKeys: JWK[];

  let aliceToken: string;

  before(async () => {
    server = await startServer();
    portal = await rp(server.issuer, 'demo-portal', SECRETS['demo-portal']);
    signingKeys = jwksForProvider(await loadOrCreateKeys(server.keysDir)).keys as JWK[];
    // alice's grant with the portal: the tokens signed below (naming no grant) belong to it.
    aliceToken = (await login('openid compute.create', ORCHESTRATOR)).access_token;
  });
  after(() => server.cleanup());

  const post = async (path: string, client: string, params: Record<string, string>): Promise<Answer> => {
    const res = await fetch(`${server.issuer}${path}`, {
      method: 'POST',
      headers: { authorization: `Basic ${Buffer.from(`${client}:${SECRETS[client]}`).toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(params),
    });
    const text = await res.text();
    return { status: res.status, body: (text ? JSON.parse(text) : {}) as Answer['body'] };
  };
  const clientToken = async (client: string) => {
    const res = await post('/token', client, { grant_type: 'client_credentials', resource: ORCHESTRATOR, scope: 'compute.read' });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body.access_token!;
  };
  const login = (scope: string, resource?: string) => authorizationCodeFlow(portal, {
    redirectUri: 'http://localhost:3000/callback', scope, ...(resource ? { resource } : {}), username: 'alice', password: 'alice-password',
  });

  /** A JWT access token signed with fedgate's own key, as fedgate signs them, with `claims` and `header` changed. */
  async function sign(claims: JWTPayload = {}, header: { alg?: string; typ?: string } = {}): Promise<string> {
    const alg = header.alg ?? 'ES256';
    const key = signingKeys.find((k) => k.alg === (alg === 'RS384' ? 'RS256' : alg))!;
    const alice = await server.fedgate.accounts.findByUsername('alice');
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({
      iss: server.issuer, sub: alice!.id, aud: ORCHESTRATOR, client_id: 'demo-portal', scope: 'compute.create', iat: now - 60, exp: now + 600,
      jti: randomBytes(8).toString('hex'), ...claims,
    }).setProtectedHeader({ alg, kid: key.kid!, typ: header.typ ?? 'at+jwt' }).sign(await importJWK(key, alg));
  }

  /** How each path answers `token`: the description it gives, or "accepted". */
  async function answers(token: string): Promise<Record<string, string>> {
    const gateway = await rawRequest(server.issuer, '/authz?service=orchestrator', {
      headers: { 'x-original-method': 'GET', 'x-original-uri': '/deployments/1', authorization: `Bearer ${token}` },
    });
    const admin = await fetch(`${adminApi(server.issuer)}/groups`, { headers: { authorization: `Bearer ${token}` } });
    const portalToken = await clientToken('demo-portal');
    const asSubject = await post('/token', 'demo-portal', { grant_type: GRANT, subject_token: token, subject_token_type: AT, actor_token: portalToken, actor_token_type: AT, audience: ORCHESTRATOR });
    const asActor = await post('/token', 'demo-portal', { grant_type: GRANT, subject_token: aliceToken, subject_token_type: AT, actor_token: token, actor_token_type: AT, audience: ORCHESTRATOR });
    const resource = (status: number, headers: { get(name: string): string | null } | Record<string, unknown>, body: string) => {
      if (status !== 401) return `accepted (${status})`;
      const challenge = typeof (headers as { get?: unknown }).get === 'function' ? (headers as { get(n: string): string | null }).get('www-authenticate') : String((headers as Record<string, unknown>)['www-authenticate']);
      const json = JSON.parse(body) as Answer['body'];
      assert.equal(json.error, 'invalid_token');
      assert.match(challenge ?? '', /^Bearer realm="fedgate", error="invalid_token", error_description="/);
      return json.error_description!;
    };
    // The token passed when the exchange went through, or was refused for something else than this token.
    const exchanged = (res: Answer, role: string) => {
      const prefix = `${role}_token: `;
      if (res.status === 200 || !res.body.error_description?.startsWith(prefix)) return `accepted (${res.status})`;
      assert.equal(res.status, 400, JSON.stringify(res.body));
      assert.equal(res.body.error, 'invalid_grant', JSON.stringify(res.body));
      return res.body.error_description.slice(prefix.length);
    };
    return {
      gateway: resource(gateway.status, gateway.headers, gateway.body),
      admin: resource(admin.status, admin.headers, await admin.text()),
      'exchange subject_token': exchanged(asSubject, 'subject'),
      'exchange actor_token': exchanged(asActor, 'actor'),
    };
  }

  /** Every path refuses `token` with `description`. */
  async function refusedEverywhere(token: string, description: string, paths?: string[]): Promise<void> {
    const got = await answers(token);
    for (const path of paths ?? Object.keys(got)) assert.equal(got[path], description, `${path}: ${JSON.stringify(got)}`);
  }

  it('lists the accepted algorithms and the clock tolerance once: the key store\'s algorithms, 30 s', () => {
    assert.deepEqual([...OWN_TOKEN_ALGORITHMS], [...SIGNING_ALGORITHMS]);
    assert.equal(CLOCK_TOLERANCE, 30);
  });

  it('tells a compact JWS from an opaque token, and splits scopes once (dropping storage paths not in normal form)', () => {
    assert.ok(isCompactJws('eyJ.eyJ.sig'));
    for (const value of ['a..c', 'a.b', 'a.b.c.d.e', 'a+b.c.d', '']) assert.ok(!isCompactJws(value), value);
    assert.ok(isOpaqueToken('A'.repeat(43)));
    for (const value of ['short', 'A'.repeat(513), `${'A'.repeat(20)}.x`]) assert.ok(!isOpaqueToken(value), value);
    assert.deepEqual(scopeList('openid  storage.read:/store/cms storage.read:/store/../etc'), ['openid', 'storage.read:/store/cms']);
    assert.deepEqual(scopeList(['a', 'b']), ['a', 'b']);
    assert.deepEqual(scopeList(undefined), []);
    assert.ok(new TokenRefused('x') instanceof Error);
  });

  it('accepts a good token on every path (the baseline the refusals below differ from)', async () => {
    const got = await answers(await sign());
    assert.equal(got.gateway, 'accepted (200)');
    assert.equal(got['exchange subject_token'], 'accepted (200)');
    assert.ok(got['exchange actor_token']!.startsWith('accepted'), JSON.stringify(got));
    // The admin API is another resource: the token passes verification and is refused for its audience.
    assert.equal(got.admin, 'the access token is not meant for this service (aud)');
    const admin = await answers(await sign({ aud: `${server.issuer}/admin/api`, scope: 'fedgate.admin' }));
    assert.ok(admin.admin!.startsWith('accepted'), JSON.stringify(admin));
  });

  it('refuses a token for another audience at every resource (token exchange takes any audience by design)', async () => {
    const other = await sign({ aud: STORAGE, scope: 'storage.read:/store/cms' });
    await refusedEverywhere(other, 'the access token is not meant for this service (aud)', ['gateway']);
    await refusedEverywhere(await sign(), 'the access token is not meant for this service (aud)', ['admin']);
  });

  it('accepts a token expired within the clock tolerance and refuses one expired beyond it, the same on every path', async () => {
    const now = Math.floor(Date.now() / 1000);
    const within = await answers(await sign({ exp: now - (CLOCK_TOLERANCE - 20) }));
    assert.equal(within.gateway, 'accepted (200)');
    assert.ok(within['exchange actor_token']!.startsWith('accepted'), JSON.stringify(within));
    // The verifier accepts it; token exchange then issues nothing from a subject token already past its exp (its own rule).
    assert.equal(within['exchange subject_token'], 'the token has expired');
    const admin = await answers(await sign({ aud: `${server.issuer}/admin/api`, scope: 'fedgate.admin', exp: now - (CLOCK_TOLERANCE - 20) }));
    assert.ok(admin.admin!.startsWith('accepted'), JSON.stringify(admin));
    await refusedEverywhere(await sign({ exp: now - (CLOCK_TOLERANCE + 30) }), 'the access token has expired');
  });

  it('refuses a wrong algorithm (RS384 with fedgate\'s own RSA key, HS256) the same on every path', async () => {
    await refusedEverywhere(await sign({}, { alg: 'RS384' }), 'the access token is signed with an algorithm that is not accepted');
    const es = signingKeys.find((k) => k.alg === 'ES256')!;
    const now = Math.floor(Date.now() / 1000);
    const hs = await new SignJWT({ iss: server.issuer, sub: 'x', aud: ORCHESTRATOR, client_id: 'demo-portal', iat: now, exp: now + 60, jti: 'j' })
      .setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', kid: es.kid! })
      .sign(new TextEncoder().encode(JSON.stringify({ kty: es.kty, crv: es.crv, x: es.x, y: es.y })));
    await refusedEverywhere(hs, 'the access token is signed with an algorithm that is not accepted');
  });

  it('refuses a malformed JWS the same on every path', async () => {
    await refusedEverywhere('a.b.c', 'the token is malformed');
    const good = await sign();
    const [header, , signature] = good.split('.');
    await refusedEverywhere(`${header}.${Buffer.from('not json').toString('base64url')}.${signature}`, 'the token is malformed');
  });

  it('refuses an opaque token that is not in the store the same on every path', async () => {
    await refusedEverywhere(randomBytes(32).toString('base64url'), 'the access token is unknown, expired or revoked');
    await refusedEverywhere('short', 'the token is malformed');
  });

  it('refuses the tokens of a revoked grant the same on every path: an opaque token and an exchanged (recorded) JWT', async () => {
    // alice's opaque token (no resource: for userinfo) and her JWT for the orchestrator, exchanged into a recorded one.
    const opaque = await login('openid offline_access');
    assert.ok(!opaque.access_token.includes('.'));
    const user = await login('openid offline_access compute.create', ORCHESTRATOR);
    const handed = await post('/token', 'demo-portal', {
      grant_type: GRANT, subject_token: user.access_token, subject_token_type: AT,
      actor_token: await clientToken('demo-portal'), actor_token_type: AT, audience: ORCHESTRATOR,
    });
    assert.equal(handed.status, 200, JSON.stringify(handed.body));
    const exchanged = handed.body.access_token!;
    assert.equal((await answers(exchanged)).gateway, 'accepted (200)');

    // Revoking a refresh token revokes its grant, everything issued from it and what was exchanged from it.
    for (const refreshToken of [opaque.refresh_token!, user.refresh_token!]) {
      assert.equal((await post('/token/revocation', 'demo-portal', { token: refreshToken, token_type_hint: 'refresh_token' })).status, 200);
    }
    await refusedEverywhere(opaque.access_token, 'the access token is unknown, expired or revoked');
    await refusedEverywhere(exchanged, 'the access token has been revoked');
  });
});
