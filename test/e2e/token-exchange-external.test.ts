import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose';
import { decodeJwt, rawRequest, startServer, type TestServer } from '../support/harness.ts';

/**
 * Tokens of a neighbouring federation's issuer, made here with its own keys
 * and its JWKS served on loopback, exchanged for fedgate tokens.
 */
const GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
const AT = 'urn:ietf:params:oauth:token-type:access_token';
const JWT = 'urn:ietf:params:oauth:token-type:jwt';

interface Issuer {
  iss: string;
  sign(claims: Record<string, unknown>, options?: { expiresIn?: string | number; key?: CryptoKey }): Promise<string>;
}

describe('token exchange of a trusted external issuer\'s tokens', () => {
  let server: TestServer;
  let jwksServer: Server;
  let jwksRequests = 0;
  let byUsername: Issuer;
  let byLink: Issuer;
  let stranger: Issuer;
  let otherKey: CryptoKey;

  before(async () => {
    const keys = await Promise.all([generateKeyPair('ES256'), generateKeyPair('ES256'), generateKeyPair('ES256')]);
    otherKey = keys[2].privateKey;
    const jwks: JWK[] = await Promise.all(keys.slice(0, 2).map(async (k, i) => ({ ...(await exportJWK(k.publicKey)), kid: `k${i}`, alg: 'ES256', use: 'sig' })));
    jwksServer = createServer((req, res) => {
      jwksRequests += 1;
      const kid = req.url === '/a/jwks' ? 'k0' : 'k1';
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ keys: jwks.filter((k) => k.kid === kid) }));
    });
    await new Promise<void>((resolve) => jwksServer.listen(0, '127.0.0.1', resolve));
    const base = `http://127.0.0.1:${(jwksServer.address() as AddressInfo).port}`;
    const issuer = (iss: string, key: CryptoKey, kid: string): Issuer => ({
      iss,
      sign: (claims, options = {}) => new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid, typ: 'at+jwt' })
        .setIssuer(iss).setIssuedAt().setExpirationTime(options.expiresIn ?? '10m').sign(options.key ?? key),
    });
    byUsername = issuer('https://aai.neighbour.example', keys[0].privateKey, 'k0');
    byLink = issuer('https://iam.partner.example', keys[1].privateKey, 'k1');
    stranger = issuer('https://unknown.example', keys[0].privateKey, 'k0');
    server = await startServer({
      configure: (config) => {
        config.tokenExchange.trustedIssuers.push(
          { issuer: byUsername.iss, jwksUri: `${base}/a/jwks`, algorithms: ['ES256'], accountMapping: { type: 'username', claim: 'preferred_username' }, audience: ['https://fedgate.example'] },
          { issuer: byLink.iss, jwksUri: `${base}/b/jwks`, algorithms: ['ES256'], accountMapping: { type: 'linked', claim: 'sub' } },
        );
      },
    });
    // The orchestrator may exchange /cms members' tokens whatever client holds them.
    await server.fedgate.policy.add([{ ptype: 'p', values: ['/cms', 'exchange-by', 'client:demo-orchestrator', 'delegate', 'allow', ''] }]);
    const alice = (await server.fedgate.accounts.findByUsername('alice'))!;
    await server.fedgate.accounts.link(alice.id, { type: 'oidc', issuer: byLink.iss, subject: 'partner-7f3a' });
  });
  after(async () => {
    await server.cleanup();
    await new Promise((resolve) => jwksServer.close(resolve));
  });

  const exchange = async (params: Record<string, string>) => {
    const res = await fetch(`${server.issuer}/token`, {
      method: 'POST',
      headers: { authorization: `Basic ${Buffer.from('demo-orchestrator:demo-orchestrator-secret').toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: GRANT, ...params }),
    });
    return { status: res.status, body: await res.json() as Record<string, string> };
  };
  const ownToken = async () => {
    const res = await fetch(`${server.issuer}/token`, {
      method: 'POST',
      headers: { authorization: `Basic ${Buffer.from('demo-orchestrator:demo-orchestrator-secret').toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'client_credentials', resource: 'https://orchestrator.demo', scope: 'compute.read' }),
    });
    return (await res.json() as { access_token: string }).access_token;
  };
  const neighbourToken = (claims: Record<string, unknown> = {}, options = {}) =>
    byUsername.sign({ sub: 'n-1001', preferred_username: 'alice', aud: 'https://fedgate.example', scope: 'storage.read:/store/cms openid', ...claims }, options);

  it('maps a neighbour\'s token onto the local account by a claim, verified against its JWKS', async () => {
    const res = await exchange({ subject_token: await neighbourToken(), subject_token_type: JWT, actor_token: await ownToken(), actor_token_type: AT, audience: 'https://storage.demo' });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const token = decodeJwt(res.body.access_token!).payload;
    const alice = (await server.fedgate.accounts.findByUsername('alice'))!;
    assert.equal(token.sub, alice.id);
    assert.equal(token.scope, 'storage.read:/store/cms');
    assert.deepEqual(token.act, { sub: 'demo-orchestrator' });
    const gateway = await rawRequest(server.issuer, '/authz?service=data', {
      headers: { 'x-original-method': 'GET', 'x-original-uri': '/store/cms/a', authorization: `Bearer ${res.body.access_token}` },
    });
    assert.equal(gateway.status, 200);
    assert.equal(gateway.headers['x-fedgate-user'], 'alice');
  });

  it('maps a partner\'s token through an identity linked to the account', async () => {
    const subject = await byLink.sign({ sub: 'partner-7f3a', aud: server.issuer, scope: 'storage.read:/store/cms/run9' });
    const res = await exchange({ subject_token: subject, subject_token_type: AT, actor_token: await ownToken(), actor_token_type: AT, resource: 'https://storage.demo' });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(decodeJwt(res.body.access_token!).payload.scope, 'storage.read:/store/cms/run9');
    const unlinked = await byLink.sign({ sub: 'partner-unknown', aud: server.issuer, scope: 'storage.read:/store/cms' });
    const refused = await exchange({ subject_token: unlinked, subject_token_type: AT, actor_token: await ownToken(), actor_token_type: AT, resource: 'https://storage.demo' });
    assert.equal(refused.body.error, 'invalid_grant');
  });

  it('records an external actor with its issuer in act', async () => {
    const actor = await byLink.sign({ sub: 'partner-workflow-engine', aud: server.issuer });
    const res = await exchange({ subject_token: await neighbourToken(), subject_token_type: JWT, actor_token: actor, actor_token_type: JWT, audience: 'https://storage.demo' });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.deepEqual(decodeJwt(res.body.access_token!).payload.act, { sub: 'partner-workflow-engine', iss: byLink.iss });
  });

  it('honours may_act in the subject token', async () => {
    const allowed = await exchange({ subject_token: await neighbourToken({ may_act: { sub: 'demo-orchestrator' } }), subject_token_type: JWT, actor_token: await ownToken(), actor_token_type: AT, audience: 'https://storage.demo' });
    assert.equal(allowed.status, 200, JSON.stringify(allowed.body));
    const other = await exchange({ subject_token: await neighbourToken({ may_act: { sub: 'someone-else' } }), subject_token_type: JWT, actor_token: await ownToken(), actor_token_type: AT, audience: 'https://storage.demo' });
    assert.equal(other.status, 400);
    assert.equal(other.body.error, 'invalid_grant');
    assert.match(other.body.error_description!, /may_act/);
  });

  it('refuses tokens that are forged, foreign, expired or for someone else', async () => {
    const actor = await ownToken();
    const cases: Array<[string, string]> = [
      ['signed with a key the issuer does not publish', await neighbourToken({}, { key: otherKey })],
      ['from an issuer nobody trusts', await stranger.sign({ sub: 'x', preferred_username: 'alice', aud: 'https://fedgate.example', scope: 'storage.read:/store/cms' })],
      ['expired', await neighbourToken({}, { expiresIn: Math.floor(Date.now() / 1000) - 120 })],
      ['for another audience', await neighbourToken({ aud: 'https://elsewhere.example' })],
      ['for no local account', await neighbourToken({ preferred_username: 'mallory' })],
    ];
    for (const [what, token] of cases) {
      const res = await exchange({ subject_token: token, subject_token_type: JWT, actor_token: actor, actor_token_type: AT, audience: 'https://storage.demo' });
      assert.equal(res.status, 400, what);
      assert.equal(res.body.error, 'invalid_grant', `${what}: ${JSON.stringify(res.body)}`);
    }
    // Up-scoping stays impossible whoever issued the subject token.
    const wider = await exchange({ subject_token: await neighbourToken(), subject_token_type: JWT, actor_token: actor, actor_token_type: AT, audience: 'https://storage.demo', scope: 'storage.read:/store' });
    assert.equal(wider.body.error, 'invalid_scope');
    assert.ok(jwksRequests >= 1 && jwksRequests <= 6, `the JWKS is cached (${jwksRequests} fetches)`);
  });
});
