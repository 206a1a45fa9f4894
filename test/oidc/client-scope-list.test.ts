import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { decodeJwt, startServer, type TestServer } from '../support/harness.ts';

const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;
const STORAGE = 'https://storage.demo';

/**
 * A configured client's `scopes` list as oidc-provider sees it: with OIDC
 * scopes in it they are an allow-list; without (or without a list) the
 * client may ask for every OIDC scope. A client's own tokens are answered
 * from a memo per client: one client's answer is never another's.
 */
describe('configured clients: the OIDC scope allow-list and the per-client token memo', () => {
  let server: TestServer;

  before(async () => {
    server = await startServer({
      configure: (config) => {
        config.clients.push({
          clientId: 'listed-svc', clientSecret: 'listed-svc-secret-0123', applicationType: 'web', grantTypes: ['client_credentials'],
          redirectUris: [], postLogoutRedirectUris: [], scopes: ['openid', 'storage.read:/'], consentRequired: false,
        });
        config.clients.push({
          clientId: 'narrow-svc', clientSecret: 'narrow-svc-secret-0123', applicationType: 'web', grantTypes: ['client_credentials'],
          redirectUris: [], postLogoutRedirectUris: [], scopes: ['storage.read:/data'], consentRequired: false,
        });
      },
    });
  });
  after(() => server.cleanup());

  const token = async (clientId: string, secret: string, scope: string) => {
    const res = await fetch(`${server.issuer}/token`, {
      method: 'POST',
      headers: { authorization: basic(clientId, secret), 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'client_credentials', resource: STORAGE, scope }),
    });
    return { status: res.status, body: await res.json() as { access_token?: string; error?: string } };
  };

  it('refuses an OIDC scope a listed client does not name, and lets an unlisted client ask for any', async () => {
    const refused = await token('listed-svc', 'listed-svc-secret-0123', 'email storage.read:/');
    assert.equal(refused.status, 400);
    assert.equal(refused.body.error, 'invalid_scope');
    const listed = await token('listed-svc', 'listed-svc-secret-0123', 'storage.read:/');
    assert.equal(listed.status, 200, JSON.stringify(listed.body));
    assert.equal(decodeJwt(listed.body.access_token!).payload.scope, 'storage.read:/');
    const open = await token('demo-service', 'demo-service-secret', 'email storage.read:/');
    assert.equal(open.status, 200, JSON.stringify(open.body));
    assert.equal(decodeJwt(open.body.access_token!).payload.scope, 'storage.read:/');
  });

  it('answers the same request of two clients each by its own scopes, in any order and again', async () => {
    for (let round = 0; round < 2; round += 1) {
      const wide = await token('demo-service', 'demo-service-secret', 'storage.read:/ storage.read:/data');
      const narrow = await token('narrow-svc', 'narrow-svc-secret-0123', 'storage.read:/ storage.read:/data');
      assert.equal(decodeJwt(wide.body.access_token!).payload.scope, 'storage.read:/ storage.read:/data', `round ${round}`);
      assert.equal(decodeJwt(narrow.body.access_token!).payload.scope, 'storage.read:/data', `round ${round}: only what its list covers`);
    }
  });
});
