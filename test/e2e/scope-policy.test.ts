import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as oidc from 'openid-client';
import { authorizationCodeFlow, decodeJwt, rawRequest, rp, startServer, type TestServer } from '../support/harness.ts';

const PORTAL_REDIRECT = 'http://localhost:3000/callback';

/** The scope policy (policies/scopes.csv) at token issuance: what is not allowed is dropped silently. */
describe('scope policy at token issuance', () => {
  let server: TestServer;
  let portal: oidc.Configuration;

  before(async () => {
    server = await startServer();
    portal = await rp(server.issuer, 'demo-portal', 'demo-portal-secret');
  });
  after(() => server.cleanup());

  const scopesFor = async (username: string, scope: string, resource: string) => {
    const tokens = await authorizationCodeFlow(portal, { redirectUri: PORTAL_REDIRECT, scope: `openid ${scope}`, resource, username, password: `${username}-password` });
    return String(decodeJwt(tokens.access_token).payload.scope ?? '').split(' ').filter(Boolean);
  };

  it('grants a user the storage paths of their groups, narrower paths included, and nothing wider', async () => {
    const granted = await scopesFor('alice', 'storage.read:/store storage.read:/store/cms/run42 storage.modify:/store/cms storage.read:/store/atlas', 'https://storage.demo');
    assert.deepEqual(granted, ['storage.read:/store/cms/run42', 'storage.modify:/store/cms']);
  });

  it('honours a deny for one user under a group allow', async () => {
    const granted = await scopesFor('bob', 'storage.read:/store/atlas storage.read:/store/atlas/public storage.read:/store/atlas/secret/plans storage.modify:/store/atlas/public', 'https://storage.demo');
    // The secret path is denied to bob; so is the whole area, which would carry the secret path along; /atlas may not modify.
    assert.deepEqual(granted, ['storage.read:/store/atlas/public']);
    assert.deepEqual(await scopesFor('alice', 'storage.read:/store/atlas', 'https://storage.demo'), [], 'not an /atlas member');
  });

  it('grants no storage path that is not in normal form, whatever the policy and deny rules say', async () => {
    // (A raw NUL is refused by oidc-provider at the authorization endpoint already.)
    const tricks = ['%2e%2e', '.%2e', '%2e.', '%2E%2E', '..%2f..', '%00', '%252e%252e'];
    const aliceAsks = tricks.map((t) => `storage.read:/store/cms/${t}/atlas`).concat('storage.read:/store/cms%00', 'storage.read:/store/cms//x', 'storage.read:/store/cms/');
    assert.deepEqual(await scopesFor('alice', `${aliceAsks.join(' ')} storage.read:/store/cms/run1`, 'https://storage.demo'), ['storage.read:/store/cms/run1']);
    // bob is denied /store/atlas/secret: a path that reaches it through an encoded dot segment must not beat the deny.
    const bobAsks = tricks.map((t) => `storage.read:/store/atlas/public/${t}/secret`);
    assert.deepEqual(await scopesFor('bob', `${bobAsks.join(' ')} storage.read:/store/atlas/public`, 'https://storage.demo'), ['storage.read:/store/atlas/public']);
    // A client acting for itself, with storage.read:/ on its list, is held to the same form.
    const service = await rp(server.issuer, 'demo-service', 'demo-service-secret');
    const own = await oidc.clientCredentialsGrant(service, { resource: 'https://storage.demo', scope: 'storage.read:/home/%2e%2e/root storage.read:/home/alice' });
    assert.equal(decodeJwt(own.access_token).payload.scope, 'storage.read:/home/alice');
  });

  it('refreshes a grant that holds a storage path not in normal form without it', async () => {
    // A grant written before the normal form was enforced, as the store holds it.
    const provider = server.fedgate.provider();
    const alice = (await server.fedgate.accounts.findByUsername('alice'))!;
    const resourceScope = 'storage.read:/store/cms storage.read:/store/cms/%2e%2e/atlas storage.read:/store/cms/.%2e/atlas';
    const grant = new provider.Grant({ accountId: alice.id, clientId: 'demo-cli' });
    grant.addOIDCScope('openid offline_access');
    grant.addResourceScope('https://storage.demo', resourceScope);
    const grantId = await grant.save();
    const client = await provider.Client.find('demo-cli');
    const refreshToken = await new provider.RefreshToken({
      accountId: alice.id, client: client!, grantId, gty: 'authorization_code', scope: `openid offline_access ${resourceScope}`,
      resource: 'https://storage.demo', rotations: 0, iiat: Math.floor(Date.now() / 1000),
    }).save();
    const res = await fetch(`${server.issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'refresh_token', client_id: 'demo-cli', refresh_token: refreshToken }),
    });
    const body = await res.json() as { access_token?: string };
    assert.equal(res.status, 200, JSON.stringify(body));
    assert.equal(decodeJwt(body.access_token!).payload.scope, 'storage.read:/store/cms');
  });

  it('applies per-audience rules', async () => {
    assert.deepEqual(await scopesFor('bob', 'ml.inference ml.training', 'https://ml.demo'), ['ml.inference']);
    assert.deepEqual(await scopesFor('alice', 'ml.inference ml.training', 'https://ml.demo'), ['ml.training']);
  });

  it('follows a policy change at once', async () => {
    assert.deepEqual(await scopesFor('bob', 'sync.write', 'https://sync.demo'), []);
    await server.fedgate.policy.add([{ ptype: 'p', values: ['user:bob', 'scopes', 'https://sync.demo', 'sync.write', 'allow', ''] }]);
    assert.deepEqual(await scopesFor('bob', 'sync.write', 'https://sync.demo'), ['sync.write']);
  });

  it('leaves a client acting for itself to its own scope list', async () => {
    const service = await rp(server.issuer, 'demo-service', 'demo-service-secret');
    const tokens = await oidc.clientCredentialsGrant(service, { resource: 'https://storage.demo', scope: 'storage.read:/ storage.modify:/store' });
    assert.equal(decodeJwt(tokens.access_token).payload.scope, 'storage.read:/ storage.modify:/store');
  });

  describe('storage.stage and storage.poll (WLCG profile 1.2 §2.2.1)', () => {
    const userToken = async (username: string, scope: string) => (await authorizationCodeFlow(portal, {
      redirectUri: PORTAL_REDIRECT, scope: `openid ${scope}`, resource: 'https://storage.demo', username, password: `${username}-password`,
    })).access_token;
    const authz = (method: string, uri: string, token: string) => rawRequest(server.issuer, '/authz?service=data', {
      headers: { authorization: `Bearer ${token}`, 'x-original-method': method, 'x-original-uri': uri },
    });

    it('issues storage.poll by policy (narrower paths too) and for the WLCG any audience', async () => {
      const alice = decodeJwt(await userToken('alice', 'storage.poll:/store/cms/run1 storage.stage:/store/cms')).payload;
      assert.deepEqual(String(alice.scope).split(' ').sort(), ['storage.poll:/store/cms/run1', 'storage.stage:/store/cms']);
      const bob = decodeJwt(await userToken('bob', 'storage.poll:/store/cms storage.read:/store/atlas/public')).payload;
      assert.equal(bob.scope, 'storage.read:/store/atlas/public', 'bob may not poll /store/cms');
      const service = await rp(server.issuer, 'demo-service', 'demo-service-secret');
      const any = decodeJwt((await oidc.clientCredentialsGrant(service, { scope: 'storage.poll:/tape' })).access_token).payload;
      assert.equal(any.aud, 'https://wlcg.cern.ch/jwt/v1/any');
      assert.equal(any.scope, 'storage.poll:/tape');
    });

    it('a storage.stage token does not read (the revised definition), whatever its wlcg.ver', async () => {
      const stageOnly = await userToken('alice', 'storage.stage:/store/cms');
      assert.equal(decodeJwt(stageOnly).payload['wlcg.ver'], '1.0');
      const refused = await authz('GET', '/store/cms/run1/file.root', stageOnly);
      assert.equal(refused.status, 403);
      assert.match(String(refused.headers['www-authenticate']), /insufficient_scope/);
      const reader = await userToken('alice', 'storage.read:/store/cms');
      assert.equal((await authz('GET', '/store/cms/run1/file.root', reader)).status, 200);
    });
  });
});
