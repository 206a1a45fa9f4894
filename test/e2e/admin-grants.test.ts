import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as oidc from 'openid-client';
import { adminCall } from '../support/admin-api.ts';
import { adminToken as obtainAdminToken, authorizationCodeFlow, rp, startServer, type TestServer } from '../support/harness.ts';

type Json = Record<string, any>;

const CLI_REDIRECT = 'http://127.0.0.1:49152/callback';

/** An account's live grants in the admin API, and their revocation. */
describe('admin API: account details and grants', () => {
  let server: TestServer;
  let adminToken: string;

  const call = (path: string, init: { method?: string } = {}) => adminCall(server.issuer, adminToken, path, init);

  before(async () => {
    server = await startServer({ redis: true });
    adminToken = await obtainAdminToken(server.issuer);
  });
  after(() => server.cleanup());

  it('shows an account with its identities and its direct and effective groups', async () => {
    const alice = (await server.fedgate.accounts.findByUsername('alice'))!;
    await server.fedgate.accounts.link(alice.id, { type: 'saml', issuer: 'https://idp.example.org/idp', subject: 'alice@example.org' });
    const res = await call('/accounts/alice');
    assert.equal(res.status, 200);
    assert.deepEqual(res.json.groups, alice.groups);
    assert.ok(res.json.groups.includes('/cms/production'));
    assert.deepEqual(res.json.effective_groups, ['/cms', '/cms/production']);
    assert.equal(res.json.identities.length, 1);
    assert.deepEqual(Object.keys(res.json.identities[0]).sort(), ['issuer', 'linked_at', 'subject', 'type']);
    assert.equal(res.json.identities[0].subject, 'alice@example.org');
    assert.ok(!JSON.stringify(res.json).includes('passwordHash') && !JSON.stringify(res.json).includes('argon2'));
  });

  it('lists the live grants of an account and revokes one with its tokens', async () => {
    const cli = await rp(server.issuer, 'demo-cli');
    const first = await authorizationCodeFlow(cli, { redirectUri: CLI_REDIRECT, scope: 'openid profile offline_access', username: 'alice', password: 'alice-password' });
    assert.ok(first.refresh_token);
    const listed = await call('/accounts/alice/grants');
    assert.equal(listed.status, 200);
    assert.equal(listed.json.username, 'alice');
    const grant = listed.json.grants.find((g: Json) => g.client_id === 'demo-cli');
    assert.ok(grant, 'the grant to demo-cli is listed');
    assert.match(grant.scope, /offline_access/);
    assert.ok(grant.created_at <= Date.now() / 1000 && (grant.expires_at === null || grant.expires_at > Date.now() / 1000));
    assert.deepEqual((await call('/accounts/bob/grants')).json.grants, [], 'bob has none');

    // Another account's grant id is not alice's to revoke.
    assert.equal((await call(`/accounts/bob/grants/${grant.id}`, { method: 'DELETE' })).status, 404);
    assert.equal((await call('/accounts/alice/grants/..%2F..%2Fsomething', { method: 'DELETE' })).status, 404);
    assert.equal((await call('/accounts/nobody/grants')).status, 404);

    assert.equal((await call(`/accounts/alice/grants/${grant.id}`, { method: 'DELETE' })).status, 204);
    await assert.rejects(oidc.refreshTokenGrant(cli, first.refresh_token!), (err: Json) => err.error === 'invalid_grant', 'the refresh token died with its grant');
    const userinfo = await fetch(`${server.issuer}/me`, { headers: { authorization: `Bearer ${first.access_token}` } });
    assert.equal(userinfo.status, 401, 'so did the opaque access token');
    assert.ok(!(await call('/accounts/alice/grants')).json.grants.some((g: Json) => g.id === grant.id));
    assert.equal((await call(`/accounts/alice/grants/${grant.id}`, { method: 'DELETE' })).status, 404, 'once');

    const admin = (await server.fedgate.accounts.findByUsername('admin'))!;
    const alice = (await server.fedgate.accounts.findByUsername('alice'))!;
    const events = await server.fedgate.audit.recent(50);
    const revoked = events.find((e) => e.type === 'grant.revoked' && e.detail?.grant === grant.id);
    assert.ok(revoked, 'audited');
    assert.equal(revoked.actor, admin.id);
    assert.equal(revoked.target, alice.id);
    assert.equal(revoked.client, 'demo-cli');
  });
});
