import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createInitialAccessToken, SINGLE_USE_POLICY } from '../../src/oidc/initial-access-token.ts';
import { startServer, type TestServer } from '../support/harness.ts';

/**
 * The single-use rule for initial access tokens lives in oidc-provider's
 * registration policies (features.registration.policies): every token
 * fedgate makes names the policy, the policy uses the token up before the
 * client is added, and a registration access token that inherits the policy
 * uses nothing up when its client is updated.
 */
describe('initial access tokens: the single-use registration policy', () => {
  let server: TestServer;
  const client = { grant_types: ['client_credentials'], response_types: [], redirect_uris: [], token_endpoint_auth_method: 'client_secret_basic' };
  const register = (token: string, body: unknown) => fetch(`${server.issuer}/reg`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify(body),
  });

  before(async () => {
    server = await startServer({ configure: (config) => { config.registration.enabled = true; } });
  });
  after(() => server.cleanup());

  it('is named by every token fedgate makes, and is a policy the provider knows', async () => {
    const { token } = await createInitialAccessToken(server.fedgate.provider(), 600);
    const found = await server.fedgate.provider().InitialAccessToken.find(token);
    assert.deepEqual(found?.policies, [SINGLE_USE_POLICY]);
  });

  it('lets one registration through, then refuses the token as RFC 6750 invalid_token', async () => {
    const { token } = await createInitialAccessToken(server.fedgate.provider(), 600);
    const first = await register(token, client);
    assert.equal(first.status, 201);
    const again = await register(token, client);
    assert.equal(again.status, 401);
    assert.equal((await again.json() as { error: string }).error, 'invalid_token');
    assert.match(again.headers.get('www-authenticate') ?? '', /^Bearer .*error="invalid_token"/);
  });

  it('gives the token back when the metadata is refused, and a client update with the registration access token uses nothing up', async () => {
    const { token } = await createInitialAccessToken(server.fedgate.provider(), 600);
    const bad = await register(token, { ...client, token_endpoint_auth_method: 'no-such-method' });
    assert.equal(bad.status, 400);
    const created = await register(token, client);
    assert.equal(created.status, 201);
    const registered = await created.json() as Record<string, unknown> & { registration_client_uri: string; registration_access_token: string; client_id: string };
    const { registration_client_uri: uri, registration_access_token: rat, client_secret_expires_at: _e, client_id_issued_at: _i, ...metadata } = registered;
    const update = (accessToken: string) => fetch(uri, {
      method: 'PUT',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${accessToken}` },
      body: JSON.stringify({ ...metadata, client_name: 'renamed' }),
    });
    const updated = await update(rat);
    assert.equal(updated.status, 200, await updated.clone().text());
    const rotated = (await updated.json() as { registration_access_token: string; client_name: string });
    assert.equal(rotated.client_name, 'renamed');
    assert.equal((await update(rotated.registration_access_token)).status, 200, 'the rotated registration access token still updates');
  });
});
