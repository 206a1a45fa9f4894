import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, beforeEach, describe, it } from 'node:test';
import { base64url, SignJWT, UnsecuredJWT } from 'jose';
import { bearer, ISSUER, ML, nginx, ORCHESTRATOR, send, startFixture, STORAGE, type Fixture } from './fixture.ts';
import { WLCG_ANY_AUDIENCE } from '../../src/config/names.ts';

describe('/authz: token verification and decisions', () => {
  let f: Fixture;

  before(async () => {
    f = await startFixture();
  });
  after(() => f.close());
  beforeEach(() => {
    f.pdp.rules = [
      { subject: '/cms', domain: 'data', path: '/store/cms', action: 'GET' },
      { subject: '/cms/production', domain: 'data', path: '/store/cms', action: 'PUT', scope: 'storage.modify:/' },
      { subject: 'client:demo-service', domain: 'orchestrator', path: '/jobs', action: '*' },
      { subject: '/admins', domain: 'data', path: '*', action: '*' },
      { subject: '/atlas', domain: 'ml', path: '/models', action: 'GET' },
    ];
  });

  const ask = (token: string | undefined, method: string, uri: string, extra: Record<string, string> = {}, service = 'data') =>
    send(f.url, `/authz?service=${service}`, { headers: { ...nginx(method, uri), ...(token ? bearer(token) : {}), ...extra } });

  const assertInvalidToken = (res: Awaited<ReturnType<typeof send>>, token?: string) => {
    assert.equal(res.status, 401, res.text);
    assert.equal(res.json().error, 'invalid_token');
    assert.match(String(res.headers['www-authenticate']), /^Bearer realm="fedgate", error="invalid_token", error_description="[^"]+"$/);
    assert.equal(res.headers['cache-control'], 'no-store');
    if (token) {
      assert.ok(!res.text.includes(token) && !String(res.headers['www-authenticate']).includes(token.split('.')[2]!), 'the token is never echoed');
    }
  };

  it('allows with 200, an empty body and the identity headers, marked no-store', async () => {
    const token = await f.sign({ scope: 'storage.read:/ wlcg.groups' });
    const res = await ask(token, 'GET', '/store/cms/run1/file.root?offset=5');
    assert.equal(res.status, 200, res.text);
    assert.equal(res.text, '');
    assert.equal(res.headers['cache-control'], 'no-store');
    assert.equal(res.headers['x-fedgate-subject'], f.users.alice.id);
    assert.equal(res.headers['x-fedgate-user'], 'alice');
    assert.equal(res.headers['x-fedgate-groups'], '/cms,/cms/production');
    assert.equal(res.headers['x-fedgate-client'], 'demo-cli');
    assert.equal(res.headers['x-fedgate-scope'], 'storage.read:/ wlcg.groups');
    assert.equal(res.headers['x-fedgate-audience'], STORAGE);
    assert.match(String(res.headers['x-fedgate-token-expires']), /^\d{10}$/);
    assert.equal(res.headers['x-fedgate-explain'], undefined);
  });

  it('ignores token scopes whose storage path is not in normal form: not decided on, not passed on', async () => {
    f.pdp.rules.push({ subject: '/cms', domain: 'data', path: '/store/atlas', action: 'GET', scope: 'storage.read:/store/cms/%2e%2e/atlas' });
    const token = await f.sign({ scope: 'storage.read:/store/cms storage.read:/store/cms/%2e%2e/atlas storage.read:/store/cms/.%2e storage.read:/store//x' });
    const res = await ask(token, 'GET', '/store/cms/x');
    assert.equal(res.status, 200, res.text);
    assert.equal(res.headers['x-fedgate-scope'], 'storage.read:/store/cms');
    assert.equal((await ask(token, 'GET', '/store/atlas/x')).status, 403);
  });

  it('denies with 403 access_denied, audits the denial and keeps allowed decisions out of the audit', async () => {
    const bobToken = await f.sign({ sub: f.users.bob.id });
    const denied = await ask(bobToken, 'GET', '/store/cms/secret');
    assert.equal(denied.status, 403);
    assert.deepEqual(denied.json(), { error: 'access_denied', error_description: 'the policy does not allow GET /store/cms/secret' });
    assert.equal(denied.headers['www-authenticate'], undefined, 'no scope would help: no insufficient_scope challenge');
    assert.equal(denied.headers['x-fedgate-user'], undefined);
    const events = await f.audit.recent(50);
    const event = events.find((e) => e.type === 'authz.denied');
    assert.ok(event, 'a denial is audited');
    assert.equal(event.actor, f.users.bob.id);
    assert.equal(event.outcome, 'failure');
    assert.deepEqual(event.detail, { service: 'data', method: 'GET', path: '/store/cms/secret', outcome: 'no_match', rule: null });
    assert.ok(!JSON.stringify(events).includes(bobToken), 'no token in the audit trail');

    const before = (await f.audit.recent(100)).length;
    assert.equal((await ask(await f.sign(), 'GET', '/store/cms/x')).status, 200);
    assert.equal((await f.audit.recent(100)).length, before, 'allowed decisions are not audited');
  });

  it('answers insufficient_scope with the missing scope when only a scope is lacking', async () => {
    const res = await ask(await f.sign({ scope: 'storage.read:/' }), 'PUT', '/store/cms/new');
    assert.equal(res.status, 403);
    assert.equal(res.headers['www-authenticate'], 'Bearer realm="fedgate", error="insufficient_scope", scope="storage.modify:/"');
    assert.equal((await ask(await f.sign({ scope: 'storage.modify:/' }), 'PUT', '/store/cms/new')).status, 200);
  });

  it('decides on the decoded path and the upper-case original method, and sends the PDP the right request', async () => {
    let seen: unknown;
    const original = f.pdp.allowed.bind(f.pdp);
    f.pdp.allowed = (request) => {
      seen = request;
      return original(request);
    };
    try {
      const res = await ask(await f.sign(), 'get', '/store/cms/caf%C3%A9/');
      assert.equal(res.status, 200);
      assert.deepEqual(seen, {
        subject: 'user:alice', groups: ['/cms/production'], domain: 'data', object: '/store/cms/café', action: 'GET', scopes: ['storage.read:/'],
      });
      const client = await f.sign({ sub: 'demo-service', client_id: 'demo-service', aud: ORCHESTRATOR, scope: 'compute.read' });
      assert.equal((await ask(client, 'POST', '/jobs/1', {}, 'orchestrator')).status, 200);
      assert.deepEqual(seen, { subject: 'client:demo-service', domain: 'orchestrator', object: '/jobs/1', action: 'POST', scopes: ['compute.read'] });
    } finally {
      f.pdp.allowed = original;
    }
  });

  it('identifies client tokens: no user header, no groups', async () => {
    const token = await f.sign({ sub: 'demo-service', client_id: 'demo-service', aud: ORCHESTRATOR, scope: 'compute.read' });
    const res = await ask(token, 'GET', '/jobs', {}, 'orchestrator');
    assert.equal(res.status, 200, res.text);
    assert.equal(res.headers['x-fedgate-subject'], 'demo-service');
    assert.equal(res.headers['x-fedgate-user'], undefined);
    assert.equal(res.headers['x-fedgate-groups'], undefined);
    assert.equal(res.headers['x-fedgate-client'], 'demo-service');
  });

  describe('refusals (RFC 6750 §3)', () => {
    it('answers a request without a token with a bare Bearer challenge', async () => {
      const res = await ask(undefined, 'GET', '/store/cms/x');
      assert.equal(res.status, 401);
      assert.equal(res.headers['www-authenticate'], 'Bearer realm="fedgate"');
      assert.equal(res.json().error, 'unauthorized');
      const basic = await ask(undefined, 'GET', '/store/cms/x', { authorization: 'Basic YWxpY2U6cHc=' });
      assert.equal(basic.status, 401);
      assert.equal(basic.headers['www-authenticate'], 'Bearer realm="fedgate"');
    });

    it('answers a malformed Authorization header with 400 invalid_request', async () => {
      for (const authorization of ['Bearer', 'Bearer two tokens', 'Bearer tok"en', 'Bearer,x']) {
        const res = await ask(undefined, 'GET', '/store/cms/x', { authorization });
        assert.equal(res.status, 400, authorization);
        assert.equal(res.json().error, 'invalid_request');
      }
    });

    it('refuses a forged signature', async () => {
      const token = await f.sign();
      const [h, p] = token.split('.');
      const forgedPayload = base64url.encode(JSON.stringify({ ...JSON.parse(Buffer.from(p!, 'base64url').toString()), sub: f.users.admin.id }));
      const forged = `${h}.${forgedPayload}.${token.split('.')[2]}`;
      const res = await ask(forged, 'GET', '/store/cms/x');
      assertInvalidToken(res, forged);
      assert.match(res.json().error_description, /signature/);
    });

    it('refuses expired tokens (beyond the 30 s tolerance) and accepts within it', async () => {
      const now = Math.floor(Date.now() / 1000);
      const expired = await f.sign({ iat: now - 700, nbf: now - 760, exp: now - 31 });
      const res = await ask(expired, 'GET', '/store/cms/x');
      assertInvalidToken(res, expired);
      assert.match(res.json().error_description, /expired/);
      assert.equal((await ask(await f.sign({ iat: now - 700, exp: now - 10 }), 'GET', '/store/cms/x')).status, 200);
    });

    it('refuses a token that is not valid yet', async () => {
      const now = Math.floor(Date.now() / 1000);
      assertInvalidToken(await ask(await f.sign({ nbf: now + 120 }), 'GET', '/store/cms/x'));
    });

    it('refuses a token for another audience', async () => {
      const token = await f.sign({ aud: ORCHESTRATOR });
      const res = await ask(token, 'GET', '/store/cms/x');
      assertInvalidToken(res, token);
      assert.match(res.json().error_description, /aud/);
    });

    it('accepts the WLCG "any" audience at a wlcg-profile service only (WLCG profile §2.1.3)', async () => {
      const any = await f.sign({ aud: WLCG_ANY_AUDIENCE });
      assert.equal((await ask(any, 'GET', '/store/cms/x')).status, 200);
      const atlas = await f.sign({ sub: f.users.bob.id, aud: WLCG_ANY_AUDIENCE });
      assertInvalidToken(await ask(atlas, 'GET', '/models/x', {}, 'ml'), atlas);
      const mlToken = await f.sign({ sub: f.users.bob.id, aud: [ML, 'https://other.example'] });
      assert.equal((await ask(mlToken, 'GET', '/models/x', {}, 'ml')).status, 200);
    });

    it('refuses another issuer', async () => {
      const token = await f.sign({ iss: 'https://evil.example' });
      const res = await ask(token, 'GET', '/store/cms/x');
      assertInvalidToken(res, token);
      assert.match(res.json().error_description, /issuer/);
    });

    it('refuses alg=none', async () => {
      const now = Math.floor(Date.now() / 1000);
      const token = new UnsecuredJWT({ iss: ISSUER, sub: f.users.alice.id, aud: STORAGE, client_id: 'demo-cli', iat: now, exp: now + 60, jti: 'x' }).encode();
      assertInvalidToken(await ask(token, 'GET', '/store/cms/x'));
    });

    it('refuses HS256 signed with the public key as the secret', async () => {
      const es = f.keys.keys.find((k) => k.jwk.alg === 'ES256')!.jwk;
      const secret = new TextEncoder().encode(JSON.stringify({ kty: es.kty, crv: es.crv, x: es.x, y: es.y }));
      const now = Math.floor(Date.now() / 1000);
      const token = await new SignJWT({ iss: ISSUER, sub: f.users.alice.id, aud: STORAGE, client_id: 'demo-cli', iat: now, exp: now + 60, jti: 'x' })
        .setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', kid: es.kid }).sign(secret);
      const res = await ask(token, 'GET', '/store/cms/x');
      assertInvalidToken(res, token);
      assert.match(res.json().error_description, /algorithm/);
    });

    it('refuses a JWT whose typ is not at+jwt (an ID token, RFC 9068 §4)', async () => {
      for (const typ of ['JWT', 'id_token+jwt']) {
        const res = await ask(await f.sign({}, { typ }), 'GET', '/store/cms/x');
        assertInvalidToken(res);
        assert.match(res.json().error_description, /typ/);
      }
      assert.equal((await ask(await f.sign({}, { typ: 'application/at+jwt' }), 'GET', '/store/cms/x')).status, 200);
    });

    it('accepts RS256 tokens signed with fedgate\'s RSA key', async () => {
      assert.equal((await ask(await f.sign({}, { alg: 'RS256' }), 'GET', '/store/cms/x')).status, 200);
    });

    it('refuses tokens of disabled and of deleted accounts', async () => {
      const carol = await f.sign({ sub: f.users.carol.id });
      const res = await ask(carol, 'GET', '/store/cms/x');
      assertInvalidToken(res, carol);
      assert.match(res.json().error_description, /disabled/);
      const ghost = await f.sign({ sub: randomUUID() });
      assertInvalidToken(await ask(ghost, 'GET', '/store/cms/x'), ghost);
    });

    it('refuses garbage and unknown opaque tokens', async () => {
      assertInvalidToken(await ask('not-a-token-at-all-but-long-enough', 'GET', '/store/cms/x'));
      assertInvalidToken(await ask('a.b.c', 'GET', '/store/cms/x'));
      assertInvalidToken(await ask('short', 'GET', '/store/cms/x'));
    });
  });

  describe('opaque tokens', () => {
    it('looks them up on every request, so revocation is immediate', async () => {
      const client = await f.provider.Client.find('demo-cli');
      const at = new f.provider.AccessToken({ client: client!, accountId: f.users.alice.id, grantId: 'grant-1', gty: 'authorization_code', scope: 'storage.read:/', aud: STORAGE });
      const value = await at.save();
      assert.ok(!value.includes('.'));
      const lookups = f.gateway.stats.opaqueLookups;
      const res = await ask(value, 'GET', '/store/cms/x');
      assert.equal(res.status, 200, res.text);
      assert.equal(res.headers['x-fedgate-user'], 'alice');
      assert.equal((await ask(value, 'GET', '/store/cms/y')).status, 200);
      assert.equal(f.gateway.stats.opaqueLookups, lookups + 2);
      assertInvalidToken(await ask(value, 'GET', '/store/cms/x', {}, 'ml'), value);

      await at.destroy();
      const revoked = await ask(value, 'GET', '/store/cms/x');
      assertInvalidToken(revoked, value);
      assert.match(revoked.json().error_description, /unknown, expired or revoked/);
    });

    it('accepts opaque client credentials tokens', async () => {
      const client = await f.provider.Client.find('demo-service');
      const cc = new f.provider.ClientCredentials({ client: client!, scope: 'compute.read', aud: ORCHESTRATOR });
      const value = await cc.save();
      const res = await ask(value, 'GET', '/jobs', {}, 'orchestrator');
      assert.equal(res.status, 200, res.text);
      assert.equal(res.headers['x-fedgate-subject'], 'demo-service');
      assert.equal(res.headers['x-fedgate-user'], undefined);
    });
  });

  describe('the token cache', () => {
    it('verifies a JWT once, and re-reads its account (not its signature) when the policy version changes', async () => {
      const accounts = f.accounts;
      const user = await accounts.create({ username: `dave-${randomUUID().slice(0, 8)}`, groups: ['/cms'] });
      const token = await f.sign({ sub: user.id });
      const stats = f.gateway.stats;
      const before = { ...stats };
      assert.equal((await ask(token, 'GET', '/store/cms/a')).status, 200);
      assert.equal((await ask(token, 'GET', '/store/cms/b')).status, 200);
      assert.equal((await ask(token, 'GET', '/store/cms/c')).status, 200);
      assert.equal(stats.signatureVerifications - before.signatureVerifications, 1, 'one signature check for three calls');
      assert.equal(stats.cacheHits - before.cacheHits, 2);
      assert.equal(stats.accountReads - before.accountReads, 1);

      // A change without a version bump is not seen (the cache is per version)...
      await accounts.setDisabled(user.id, true);
      assert.equal((await ask(token, 'GET', '/store/cms/d')).status, 200);
      // ...the bump makes the gateway re-read the account, not re-verify the token.
      f.version.value += 1;
      const refused = await ask(token, 'GET', '/store/cms/e');
      assertInvalidToken(refused, token);
      assert.equal(stats.signatureVerifications - before.signatureVerifications, 1);
      assert.equal(stats.accountReads - before.accountReads, 2);
      // The refusal is cached too.
      assertInvalidToken(await ask(token, 'GET', '/store/cms/f'), token);
      assert.equal(stats.accountReads - before.accountReads, 2);

      await accounts.setDisabled(user.id, false);
      await accounts.setGroups(user.id, ['/cms/production']);
      f.version.value += 1;
      const back = await ask(token, 'GET', '/store/cms/g');
      assert.equal(back.status, 200);
      assert.equal(back.headers['x-fedgate-groups'], '/cms,/cms/production', 'new groups after the bump');
      assert.equal(stats.signatureVerifications - before.signatureVerifications, 1);
    });

    it('does not cache tokens that failed verification', async () => {
      const stats = f.gateway.stats;
      const token = await f.sign({ iss: 'https://evil.example' });
      const before = stats.signatureVerifications;
      await ask(token, 'GET', '/store/cms/x');
      await ask(token, 'GET', '/store/cms/x');
      assert.equal(stats.signatureVerifications - before, 2);
    });
  });

  describe('explanations', () => {
    it('returns the explanation to an /admins member who asks, on 200 and on 403', async () => {
      const admin = await f.sign({ sub: f.users.admin.id });
      const allowed = await ask(admin, 'DELETE', '/store/anything', { 'x-fedgate-explain': 'true' });
      assert.equal(allowed.status, 200);
      const explanation = JSON.parse(String(allowed.headers['x-fedgate-explain']));
      assert.equal(explanation.outcome, 'allow');
      assert.deepEqual(explanation.rule.values.slice(0, 3), ['/admins', 'data', '*']);

      f.pdp.rules = [];
      const denied = await ask(admin, 'DELETE', '/store/anything', { 'x-fedgate-explain': 'true' });
      assert.equal(denied.status, 403);
      assert.equal(JSON.parse(String(denied.headers['x-fedgate-explain'])).outcome, 'no_match');
    });

    it('ignores the request header from anyone else', async () => {
      const res = await ask(await f.sign(), 'GET', '/store/cms/x', { 'x-fedgate-explain': 'true' });
      assert.equal(res.status, 200);
      assert.equal(res.headers['x-fedgate-explain'], undefined);
      const denied = await ask(await f.sign(), 'DELETE', '/store/cms/x', { 'x-fedgate-explain': 'true' });
      assert.equal(denied.status, 403);
      assert.equal(denied.headers['x-fedgate-explain'], undefined);
    });

    it('does not call explain() on the allowed fast path', async () => {
      const before = f.pdp.explainCalls;
      assert.equal((await ask(await f.sign(), 'GET', '/store/cms/x')).status, 200);
      assert.equal(f.pdp.explainCalls, before);
    });
  });

  describe('how the proxy in front asks', () => {
    it('takes Traefik\'s X-Forwarded-Method/-Uri and picks the service by X-Forwarded-Host', async () => {
      const res = await send(f.url, '/authz', {
        headers: { ...bearer(await f.sign()), 'x-forwarded-method': 'GET', 'x-forwarded-uri': '/store/cms/x?y=1', 'x-forwarded-host': 'TRAEFIK.example' },
      });
      assert.equal(res.status, 200, res.text);
    });

    it('matches hosts with their port, then without', async () => {
      const client = await f.sign({ sub: 'demo-service', client_id: 'demo-service', aud: ORCHESTRATOR });
      const withPort = await send(f.url, '/authz', { headers: { ...bearer(client), ...nginx('GET', '/jobs'), host: 'jobs.example:8443' } });
      assert.equal(withPort.status, 200);
      const dataWithPort = await send(f.url, '/authz', { headers: { ...bearer(await f.sign()), ...nginx('GET', '/store/cms/x'), host: 'data.example:443' } });
      assert.equal(dataWithPort.status, 200);
      const traefikWithPort = await send(f.url, '/authz', { headers: { ...bearer(await f.sign()), 'x-forwarded-method': 'GET', 'x-forwarded-uri': '/store/cms/x', 'x-forwarded-host': 'traefik.example:443' } });
      assert.equal(traefikWithPort.status, 200);
    });

    it('takes Envoy\'s natural form: the original path under /authz, the original method, the service by host', async () => {
      const res = await send(f.url, '/authz/store/cms/x?service=decide-only', { method: 'GET', headers: { ...bearer(await f.sign()), host: 'envoy.example' } });
      assert.equal(res.status, 200, res.text);
      const put = await send(f.url, '/authz/store/cms/x', { method: 'PUT', headers: { ...bearer(await f.sign()), host: 'envoy.example' } });
      assert.equal(put.status, 403);
      assert.match(put.json().error_description, /PUT \/store\/cms\/x/);
    });

    it('does not let the query of an Envoy-form request choose the service', async () => {
      const res = await send(f.url, '/authz/store/cms/x?service=data-envoy', { headers: { ...bearer(await f.sign()), host: 'unknown.example' } });
      assert.equal(res.status, 404);
    });

    describe('believes only the form the service names', () => {
      const denied = '/store/atlas/x';
      const allowed = '/store/cms/x';

      it('behind Traefik, ignores the X-Original-* headers a client adds (Traefik passes them on)', async () => {
        const res = await send(f.url, '/authz?service=data-traefik', {
          headers: { ...bearer(await f.sign()), ...nginx('GET', allowed), 'x-forwarded-method': 'GET', 'x-forwarded-uri': denied, 'x-forwarded-host': 'traefik.example' },
        });
        assert.equal(res.status, 403, 'decided on what Traefik set');
        assert.match(res.json().error_description, /GET \/store\/atlas\/x/);
        const only = await send(f.url, '/authz?service=data-traefik', { headers: { ...bearer(await f.sign()), ...nginx('GET', allowed) } });
        assert.equal(only.status, 400, 'X-Original-* alone mean nothing here');
        assert.match(only.json().error_description, /X-Forwarded-Method and X-Forwarded-Uri/);
      });

      it('behind nginx, ignores X-Forwarded-Method/-Uri', async () => {
        const res = await ask(await f.sign(), 'GET', denied, { 'x-forwarded-method': 'GET', 'x-forwarded-uri': allowed });
        assert.equal(res.status, 403);
        const only = await send(f.url, '/authz?service=data', { headers: { ...bearer(await f.sign()), 'x-forwarded-method': 'GET', 'x-forwarded-uri': allowed } });
        assert.equal(only.status, 400);
      });

      it('behind Envoy, ignores both header forms and any query naming a service', async () => {
        const res = await send(f.url, `/authz${denied}`, {
          method: 'GET', headers: { ...bearer(await f.sign()), host: 'envoy.example', ...nginx('GET', allowed), 'x-forwarded-method': 'GET', 'x-forwarded-uri': allowed },
        });
        assert.equal(res.status, 403);
        const put = await send(f.url, `/authz${allowed}`, { method: 'PUT', headers: { ...bearer(await f.sign()), host: 'envoy.example', ...nginx('GET', allowed) } });
        assert.equal(put.status, 403, 'the method is the request\'s own');
        const asHeaders = await send(f.url, '/authz?service=data-envoy', { headers: { ...bearer(await f.sign()), ...nginx('GET', allowed) } });
        assert.equal(asHeaders.status, 400);
        const otherForm = await send(f.url, `/authz${allowed}`, { headers: { ...bearer(await f.sign()), host: 'data.example' } });
        assert.equal(otherForm.status, 404, 'an nginx-form service is not asked in the path-prefix form');
      });

      it('picks an nginx service by Host before a client\'s X-Forwarded-Host', async () => {
        const res = await send(f.url, '/authz', {
          headers: { ...bearer(await f.sign()), host: 'data.example', ...nginx('GET', denied), 'x-forwarded-host': 'traefik.example', 'x-forwarded-method': 'GET', 'x-forwarded-uri': allowed },
        });
        assert.equal(res.status, 403);
      });
    });

    it('answers 404 for an unknown service and 400 without the original method and URI', async () => {
      const unknown = await ask(await f.sign(), 'GET', '/x', {}, 'nope');
      assert.equal(unknown.status, 404);
      assert.deepEqual(unknown.json().error, 'not_found');
      assert.equal((await send(f.url, '/authz', { headers: { host: 'nowhere.example', ...nginx('GET', '/x') } })).status, 404);
      assert.equal((await send(f.url, '/authz?service=data', { headers: bearer(await f.sign()) })).status, 400);
      assert.equal((await send(f.url, '/authz?service=data', { headers: { ...bearer(await f.sign()), 'x-original-uri': '/store/cms/x' } })).status, 400);
      assert.equal((await send(f.url, '/authz?service=data', { headers: { ...bearer(await f.sign()), ...nginx('GE T', '/store/cms/x') } })).status, 400);
    });

    it('refuses traversal and encoded separators in the original URI with 400', async () => {
      const token = await f.sign({ sub: f.users.admin.id });
      for (const uri of ['/store/cms/../atlas', '/store/%2e%2e/atlas', '/store/cms%2fatlas', '/store//atlas', 'store/cms', '/store/cms\\..\\atlas', '/store/%00']) {
        const res = await ask(token, 'GET', uri);
        assert.equal(res.status, 400, uri);
        assert.equal(res.json().error, 'invalid_request');
      }
      assert.equal((await ask(token, 'GET', `/${'a'.repeat(9000)}`)).status, 414);
    });
  });

  it('lets no error escape to the app boundary', () => {
    assert.deepEqual(f.escaped, []);
  });
});
