import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { loadOrCreateKeys, rotateKeys } from '../../src/keys/index.ts';
import { adminCall } from '../support/admin-api.ts';
import { adminToken as obtainAdminToken, startReplicas, type TestServer } from '../support/harness.ts';
import { within } from '../support/poll.ts';

type Json = Record<string, any>;

/** `GET /admin/api/overview` on two replicas sharing one Redis. */
describe('admin API: overview', () => {
  let a: TestServer;
  let b: TestServer;
  let adminToken: string;
  let bStopped = false;

  const call = (path: string, init: { method?: string; body?: unknown; server?: TestServer } = {}) => adminCall((init.server ?? a).issuer, adminToken, path, init);

  before(async () => {
    [a, b] = await startReplicas();
    adminToken = await obtainAdminToken(a.issuer);
  });
  after(async () => {
    if (!bStopped) await b.stop();
    await a.cleanup();
  });

  it('reports the store, both replicas, counts that match the lists, and the latest events', async () => {
    assert.equal((await call('/groups', { method: 'POST', body: { path: '/overview-check' } })).status, 201);
    const res = await call('/overview', { server: b });
    assert.equal(res.status, 200);
    const { store, replicas, counts, audit } = res.json;
    assert.equal(store.ok, true);
    assert.equal(store.kind, 'redis');
    assert.equal(typeof store.latencyMs, 'number');
    assert.ok(store.latencyMs >= 0 && store.latencyMs < 2000);
    assert.equal(replicas.length, 2, 'a heartbeat from each replica');
    assert.ok(replicas.every((r: Json) => r.pid === process.pid && typeof r.id === 'string' && Date.parse(r.seenAt) > Date.now() - 60_000));
    assert.equal(new Set(replicas.map((r: Json) => r.id)).size, 2);
    assert.equal(counts.accounts, (await call('/accounts?limit=1')).json.total);
    assert.equal(counts.groups, (await call('/groups?limit=1')).json.total);
    assert.equal(counts.clients, (await call('/clients?limit=1')).json.total);
    assert.equal(counts.dataSources, (await call('/resource-servers')).json.resource_servers.length);
    assert.ok(audit.length > 0 && audit.length <= 10);
    assert.ok(audit.some((e: Json) => e.type === 'group.created' && e.target === '/overview-check'), 'the newest events');
  });

  it('shows the signing keys: active, prepublished for a scheduled rotation, and when it happens', async () => {
    const before = (await call('/overview')).json.keys;
    assert.deepEqual(before.active.map((k: Json) => k.alg).sort(), ['ES256', 'RS256']);
    assert.deepEqual(before.published, []);
    assert.deepEqual(before.retiring, []);
    await rotateKeys(a.keysDir, { prepublishSeconds: 3600, maxTokenLifetimeSeconds: 3600 });
    a.fedgate.reloadKeys(await loadOrCreateKeys(a.keysDir));
    const after = (await call('/overview')).json.keys;
    assert.equal(after.published.length, 2, 'the new keys are published before they sign');
    assert.deepEqual(after.active.map((k: Json) => k.kid).sort(), before.active.map((k: Json) => k.kid).sort(), 'the old keys still sign');
    const activation = Date.parse(after.published[0].activates_at);
    assert.ok(Math.abs(activation - (Date.now() + 3600_000)) < 120_000);
    assert.equal(after.nextRotation, after.published[0].activates_at);
    assert.ok(after.active.every((k: Json) => k.retires_at === after.published[0].activates_at));
  });

  it('drops a replica that stopped', async () => {
    await b.stop();
    bStopped = true;
    await within(5000, async () => (await call('/overview')).json.replicas.length === 1);
  });
});
