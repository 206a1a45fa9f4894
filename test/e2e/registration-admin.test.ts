import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as oidc from 'openid-client';
import { adminToken as obtainAdminToken, authorizationCodeFlow, rp, startServer, type TestServer } from '../support/harness.ts';

describe('dynamic client registration and the admin API', () => {
  let server: TestServer;
  let portal: oidc.Configuration;
  let adminToken: string;

  const admin = (path: string, init: RequestInit = {}, token = adminToken) => fetch(`${server.issuer}/admin/api${path}`, {
    ...init,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...(init.headers as Record<string, string> | undefined) },
  });

  before(async () => {
    server = await startServer({ redis: true });
    portal = await rp(server.issuer, 'demo-portal', 'demo-portal-secret');
    adminToken = await obtainAdminToken(server.issuer);
  });
  after(() => server.cleanup());

  it('refuses registration without an initial access token', async () => {
    const res = await fetch(`${server.issuer}/reg`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ redirect_uris: ['https://app.example/cb'] }),
    });
    assert.equal(res.status, 401);
    assert.equal((await res.json() as { error: string }).error, 'invalid_token');
  });

  it('registers a client with a token an admin created, and the client then gets tokens', async () => {
    const created = await admin('/initial-access-tokens', { method: 'POST', body: JSON.stringify({ ttl: 600 }) });
    assert.equal(created.status, 201);
    const { initial_access_token: iat } = await created.json() as { initial_access_token: string };

    const registered = await oidc.dynamicClientRegistration(new URL(server.issuer), {
      client_name: 'Analysis pipeline', grant_types: ['client_credentials'], response_types: [], redirect_uris: [], token_endpoint_auth_method: 'client_secret_basic',
    }, undefined, { initialAccessToken: iat, execute: [oidc.allowInsecureRequests] });
    const metadata = registered.clientMetadata();
    assert.ok(metadata.client_id && metadata.client_secret);
    assert.ok(metadata.registration_access_token, 'RFC 7592 management token');

    const reused = await fetch(`${server.issuer}/reg`, {
      method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${iat}` },
      body: JSON.stringify({ grant_types: ['client_credentials'], response_types: [], redirect_uris: [] }),
    });
    assert.equal(reused.status, 401, 'an initial access token allows one registration');

    const tokens = await oidc.clientCredentialsGrant(registered, { resource: 'https://orchestrator.demo', scope: 'compute.read' });
    assert.ok(tokens.access_token);

    // RFC 7592 read with the registration access token.
    const read = await fetch(String(metadata.registration_client_uri), { headers: { authorization: `Bearer ${metadata.registration_access_token}` } });
    assert.equal(read.status, 200);
    assert.equal((await read.json() as { client_name: string }).client_name, 'Analysis pipeline');

    const events = await server.fedgate.audit.recent(50);
    assert.ok(events.some((e) => e.type === 'client.registered' && e.client === metadata.client_id));
    assert.ok(events.some((e) => e.type === 'admin.change' && e.target === 'initial-access-token'));
  });

  it('refuses registration with a forged initial access token', async () => {
    const res = await fetch(`${server.issuer}/reg`, {
      method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer not-a-real-token' },
      body: JSON.stringify({ redirect_uris: ['https://app.example/cb'] }),
    });
    assert.equal(res.status, 401);
    assert.equal((await res.json() as { error: string }).error, 'invalid_token');
  });

  it('keeps the admin API to members of /admins, with RFC 6750 errors', async () => {
    const none = await fetch(`${server.issuer}/admin/api/accounts`);
    assert.equal(none.status, 401);
    assert.match(none.headers.get('www-authenticate')!, /^Bearer /);
    const forged = await admin('/accounts', {}, 'forged-token');
    assert.equal(forged.status, 401);
    assert.match(forged.headers.get('www-authenticate')!, /error="invalid_token"/);
    // bob (who manages /atlas, no administrator) asks for an admin token the way an administrator does: /accounts stays closed to him.
    const bob = await admin('/accounts', {}, await obtainAdminToken(server.issuer, { username: 'bob', password: 'bob-password' }));
    assert.equal(bob.status, 403);
    assert.match(bob.headers.get('www-authenticate')!, /error="insufficient_scope", scope="fedgate.admin"/);
    const list = await admin('/accounts');
    assert.equal(list.status, 200);
    const { accounts } = await list.json() as { accounts: Array<{ username: string; effective_groups: string[] }> };
    assert.deepEqual(accounts.map((a) => a.username), ['admin', 'alice', 'bob']);
    assert.deepEqual(accounts.find((a) => a.username === 'alice')!.effective_groups, ['/cms', '/cms/production']);
  });

  it('answers malformed admin requests with 400, not 500', async () => {
    const badJson = await admin('/initial-access-tokens', { method: 'POST', body: '{not json' });
    assert.equal(badJson.status, 400);
    const badField = await admin('/accounts/bob', { method: 'PATCH', body: JSON.stringify({ disabled: 'yes' }) });
    assert.equal(badField.status, 400);
    assert.match((await badField.json() as { error_description: string }).error_description, /disabled/);
    const unknown = await admin('/accounts/nobody', { method: 'PATCH', body: JSON.stringify({ disabled: true }) });
    assert.equal(unknown.status, 404);
  });

  it('disabling an account stops its refresh tokens and access tokens, and re-enabling allows new logins', async () => {
    const cli = await rp(server.issuer, 'demo-cli');
    const tokens = await authorizationCodeFlow(cli, {
      redirectUri: 'http://127.0.0.1:50000/callback', scope: 'openid offline_access', username: 'bob', password: 'bob-password',
    });
    assert.equal((await oidc.tokenIntrospection(portal, tokens.access_token)).active, true);

    const disabled = await admin('/accounts/bob', { method: 'PATCH', body: JSON.stringify({ disabled: true }) });
    assert.equal(disabled.status, 200);
    assert.equal((await disabled.json() as { disabled: boolean }).disabled, true);

    await assert.rejects(oidc.refreshTokenGrant(cli, tokens.refresh_token!), (err: oidc.ResponseBodyError) => err.error === 'invalid_grant');
    assert.equal((await oidc.tokenIntrospection(portal, tokens.access_token)).active, false);
    await assert.rejects(
      authorizationCodeFlow(cli, { redirectUri: 'http://127.0.0.1:50000/callback', scope: 'openid', username: 'bob', password: 'bob-password' }),
      /401/,
    );

    await admin('/accounts/bob', { method: 'PATCH', body: JSON.stringify({ disabled: false }) });
    const again = await authorizationCodeFlow(cli, { redirectUri: 'http://127.0.0.1:50000/callback', scope: 'openid', username: 'bob', password: 'bob-password' });
    assert.ok(again.access_token);
    const events = await server.fedgate.audit.recent(100);
    const change = events.find((e) => e.type === 'account.disabled');
    assert.deepEqual(change?.detail, { before: { disabled: false }, after: { disabled: true } });
  });
});
