import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as oidc from 'openid-client';
import { authorizationCodeFlow, decodeJwt, rawRequest, rp, startServer, type TestServer } from '../support/harness.ts';

const PORTAL_REDIRECT = 'http://localhost:3000/callback';

/** WLCG common JWT profile 1.2 §2.2.1: storage.stage as revised, and storage.poll. */
describe('storage.stage and storage.poll (WLCG profile 1.2)', () => {
  let server: TestServer;
  let portal: oidc.Configuration;

  before(async () => {
    server = await startServer();
    portal = await rp(server.issuer, 'demo-portal', 'demo-portal-secret');
  });
  after(() => server.cleanup());

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
