import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { adminCall } from '../support/admin-api.ts';
import { adminToken as obtainAdminToken, startReplicas, type TestServer } from '../support/harness.ts';

type Json = Record<string, any>;

/** The clients and initial access token routes of the admin API, on two replicas sharing one Redis. */
describe('admin API: clients and initial access tokens', () => {
  let a: TestServer;
  let b: TestServer;
  let adminToken: string;
  const secrets: string[] = [];

  const call = (path: string, init: { method?: string; body?: unknown; server?: TestServer } = {}) => adminCall((init.server ?? a).issuer, adminToken, path, init);

  /** A client credentials request straight to a replica's token endpoint. */
  const token = async (server: TestServer, clientId: string, secret: string) => {
    const res = await fetch(`${server.issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(secret)}`).toString('base64')}` },
      body: new URLSearchParams({ grant_type: 'client_credentials', resource: 'https://orchestrator.demo', scope: 'compute.read' }),
    });
    return { status: res.status, json: await res.json() as Json };
  };

  before(async () => {
    [a, b] = await startReplicas();
    adminToken = await obtainAdminToken(a.issuer);
  });
  after(async () => {
    await b.stop();
    await a.cleanup();
  });

  it('lists the configured clients, read-only', async () => {
    const list = await call('/clients?limit=200');
    assert.equal(list.status, 200);
    const portal = list.json.clients.find((c: Json) => c.client_id === 'demo-portal');
    assert.equal(portal.configured, true);
    assert.equal(portal.public, false);
    assert.ok(!list.text.includes('demo-portal-secret'), 'no configured secret is shown');
    assert.ok(list.json.total >= list.json.clients.length);
    assert.equal((await call('/clients/demo-portal')).json.client_id, 'demo-portal');
    for (const [method, path, body] of [['PATCH', '/clients/demo-portal', { disabled: true }], ['DELETE', '/clients/demo-portal'], ['POST', '/clients/demo-portal/secret']] as const) {
      const res = await call(path, { method, ...(body ? { body } : {}) });
      assert.equal(res.status, 409, `${method} ${path}`);
      assert.equal(res.json.error, 'read_only');
    }
    assert.equal((await call('/clients/no-such-client')).status, 404);
  });

  it('creates a confidential client whose secret is shown once, disables it on every replica, rotates and deletes it', async () => {
    const created = await call('/clients', { method: 'POST', body: { client_name: 'Batch Robot', public: false, grant_types: ['client_credentials'], scope: 'compute.read' } });
    assert.equal(created.status, 201, created.text);
    const { client_id: id, client_secret: secret } = created.json;
    assert.match(id, /^client-/);
    assert.equal(typeof secret, 'string');
    assert.ok(secret.length >= 43);
    secrets.push(secret);
    assert.equal(created.json.public, false);
    assert.equal(created.json.configured, false);
    assert.equal((await token(a, id, secret)).status, 200);
    assert.equal((await token(b, id, secret)).status, 200);

    const read = await call(`/clients/${id}`, { server: b });
    assert.equal(read.status, 200);
    assert.equal(read.json.client_name, 'Batch Robot');
    assert.ok(!read.text.includes(secret) && !('client_secret' in read.json), 'the secret is never shown again');
    const found = await call('/clients?q=batch%20rob');
    assert.deepEqual(found.json.clients.map((c: Json) => c.client_id), [id]);

    const disabled = await call(`/clients/${id}`, { method: 'PATCH', body: { disabled: true } });
    assert.equal(disabled.status, 200);
    assert.equal(disabled.json.disabled, true);
    for (const server of [a, b]) {
      const refused = await token(server, id, secret);
      assert.equal(refused.status, 401, `replica ${server === a ? 'a' : 'b'}`);
      assert.equal(refused.json.error, 'invalid_client');
    }
    assert.equal((await call(`/clients/${id}`)).json.disabled, true, 'still listed, as disabled');
    assert.equal((await call(`/clients/${id}`, { method: 'PATCH', body: { disabled: false } })).status, 200);
    assert.equal((await token(b, id, secret)).status, 200, 'enabled again');

    const rotated = await call(`/clients/${id}/secret`, { method: 'POST' });
    assert.equal(rotated.status, 200);
    const fresh = rotated.json.client_secret as string;
    secrets.push(fresh);
    assert.notEqual(fresh, secret);
    assert.equal((await token(a, id, secret)).json.error, 'invalid_client', 'the old secret stops at once');
    assert.equal((await token(b, id, fresh)).status, 200);

    assert.equal((await call(`/clients/${id}`, { method: 'DELETE' })).status, 204);
    assert.equal((await call(`/clients/${id}`)).status, 404);
    assert.equal((await token(b, id, fresh)).json.error, 'invalid_client');
    assert.deepEqual((await call('/clients?q=batch%20rob')).json.clients, []);

    const events = await a.fedgate.audit.recent(200);
    const admin = (await a.fedgate.accounts.findByUsername('admin'))!;
    for (const type of ['client.created', 'client.disabled', 'client.enabled', 'client.secret_rotated', 'client.deleted']) {
      assert.ok(events.some((e) => e.type === type && e.target === id && e.actor === admin.id), `${type} audited with its actor`);
    }
    const trail = JSON.stringify(events) + a.logs.text + b.logs.text;
    for (const s of secrets) assert.ok(!trail.includes(s), 'no secret in the audit trail or the logs');
  });

  it('creates public clients without a secret, and refuses what registration refuses', async () => {
    const created = await call('/clients', { method: 'POST', body: { client_id: 'console-test-app', client_name: 'Notebook', public: true, redirect_uris: ['http://127.0.0.1:9999/cb'], grant_types: ['authorization_code', 'refresh_token'] } });
    assert.equal(created.status, 201, created.text);
    assert.equal(created.json.public, true);
    assert.equal(created.json.token_endpoint_auth_method, 'none');
    assert.ok(!('client_secret' in created.json));
    assert.equal((await call('/clients/console-test-app/secret', { method: 'POST' })).json.error, 'no_secret');
    assert.equal((await call('/clients', { method: 'POST', body: { client_id: 'console-test-app', client_name: 'Again', public: true, redirect_uris: ['http://127.0.0.1:9999/cb'] } })).status, 409);
    assert.equal((await call('/clients', { method: 'POST', body: { client_id: 'demo-portal', client_name: 'Clash', public: true, redirect_uris: ['http://127.0.0.1:9999/cb'] } })).json.error, 'client_exists');
    const admin = await call('/clients', { method: 'POST', body: { client_name: 'Sneaky', public: false, grant_types: ['client_credentials'], scope: 'fedgate.admin' } });
    assert.equal(admin.status, 400);
    assert.equal(admin.json.error, 'invalid_client_metadata');
    const badRedirect = await call('/clients', { method: 'POST', body: { client_name: 'Bad', public: true, redirect_uris: ['not a url'] } });
    assert.equal(badRedirect.status, 400);
    assert.match(badRedirect.json.error, /^invalid_/);
    const unknownScope = await call('/clients', { method: 'POST', body: { client_name: 'Scope', public: false, grant_types: ['client_credentials'], scope: 'made.up.scope' } });
    assert.equal(unknownScope.status, 400, unknownScope.text);
    for (const body of [{}, { client_name: 'x' }, { client_name: 'x', public: 'yes' }, { client_name: 'x', public: true, grant_types: ['implicit'] }, { client_name: 'x', public: true, extra: 1 }]) {
      const res = await call('/clients', { method: 'POST', body });
      assert.equal(res.status, 400, JSON.stringify(body));
      assert.equal(typeof res.json.error_description, 'string');
    }
  });

  it('lists clients registered dynamically, and initial access tokens without their secret', async () => {
    const first = await call('/initial-access-tokens', { method: 'POST', body: { ttl: 600 } });
    const second = await call('/initial-access-tokens', { method: 'POST', body: { ttl: 600 } });
    assert.equal(first.status, 201);
    const listed = await call('/initial-access-tokens', { server: b });
    assert.equal(listed.status, 200);
    const ids = listed.json.initial_access_tokens.map((t: Json) => t.id);
    assert.ok(ids.includes(first.json.id) && ids.includes(second.json.id));
    assert.ok(!listed.text.includes(first.json.initial_access_token) && !listed.text.includes(second.json.initial_access_token), 'never the token');
    const entry = listed.json.initial_access_tokens.find((t: Json) => t.id === first.json.id);
    assert.equal(entry.expires_at, first.json.expires_at);

    assert.equal((await call(`/initial-access-tokens/${second.json.id}`, { method: 'DELETE' })).status, 204);
    assert.equal((await call(`/initial-access-tokens/${second.json.id}`, { method: 'DELETE' })).status, 404);
    const register = (iat: string) => fetch(`${b.issuer}/reg`, {
      method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${iat}` },
      body: JSON.stringify({ client_name: 'Registered Pipeline', grant_types: ['client_credentials'], response_types: [], redirect_uris: [] }),
    });
    assert.equal((await register(second.json.initial_access_token)).status, 401, 'a revoked token registers nothing');
    const registered = await register(first.json.initial_access_token);
    assert.equal(registered.status, 201);
    const clientId = (await registered.json() as Json).client_id;
    const after = (await call('/initial-access-tokens')).json.initial_access_tokens.map((t: Json) => t.id);
    assert.ok(!after.includes(first.json.id) && !after.includes(second.json.id), 'used and revoked tokens are no longer listed');

    const clients = await call('/clients?q=registered%20pipeline');
    assert.deepEqual(clients.json.clients.map((c: Json) => [c.client_id, c.configured]), [[clientId, false]]);
    assert.equal((await call('/initial-access-tokens/not-a-handle', { method: 'DELETE' })).status, 404);
  });

  it('pages clients in id order, configured and stored together', async () => {
    for (let i = 0; i < 7; i += 1) {
      assert.equal((await call('/clients', { method: 'POST', body: { client_id: `page-client-${i}`, client_name: `Paged ${i}`, public: true, redirect_uris: ['http://127.0.0.1:9999/cb'] } })).status, 201);
    }
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: Json = (await call(`/clients?limit=3${cursor ? `&cursor=${cursor}` : ''}`)).json;
      assert.ok(page.clients.length <= 3);
      seen.push(...page.clients.map((c: Json) => c.client_id));
      cursor = page.next;
    } while (cursor);
    assert.equal(new Set(seen).size, seen.length, 'no client twice');
    assert.deepEqual(seen, [...seen].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y))));
    for (let i = 0; i < 7; i += 1) assert.ok(seen.includes(`page-client-${i}`));
    assert.ok(seen.includes('demo-portal') && seen.includes('demo-cli'));
    assert.equal(seen.length, (await call('/clients?limit=1')).json.total);
  });
});
