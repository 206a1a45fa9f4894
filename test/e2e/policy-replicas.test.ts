import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { POLICY_VERSION_KEY } from '../../src/authz/store-watcher.ts';
import { adminToken as obtainAdminToken, authorizationCodeFlow, rawRequest, rp, startReplicas, within, type TestServer } from '../support/harness.ts';

const PORTAL_REDIRECT = 'http://localhost:3000/callback';

/**
 * Two fedgate instances sharing one Redis (and one keys directory, as
 * replicas behind a load balancer do): a change made through the admin API
 * of one is enforced by the other within a second.
 */
describe('policy changes across replicas', () => {
  let a: TestServer;
  let b: TestServer;
  let adminToken: string;
  let bobOrchestrator: string;

  before(async () => {
    [a, b] = await startReplicas();
    const portal = await rp(a.issuer, 'demo-portal', 'demo-portal-secret');
    adminToken = await obtainAdminToken(a.issuer);
    bobOrchestrator = (await authorizationCodeFlow(portal, {
      redirectUri: PORTAL_REDIRECT, scope: 'openid compute.read', resource: 'https://orchestrator.demo', username: 'bob', password: 'bob-password',
    })).access_token;
  });
  after(async () => {
    await b.stop();
    await a.cleanup();
  });

  const admin = (path: string, method: string, body?: unknown) => fetch(`${a.issuer}/admin/api${path}`, {
    method, headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' }, ...(body ? { body: JSON.stringify(body) } : {}),
  });
  // Replica B decides; B never saw the admin request.
  const decideOnB = async (uri: string) => (await rawRequest(b.issuer, '/authz?service=orchestrator', {
    headers: { authorization: `Bearer ${bobOrchestrator}`, 'x-original-method': 'GET', 'x-original-uri': uri },
  })).status;

  it('enforces a rule added on replica A at replica B within a second, and its removal too', async () => {
    assert.equal(await decideOnB('/queues/atlas'), 403);
    const rule = { type: 'p', subject: '/atlas', domain: 'orchestrator', object: '/queues/atlas/**', action: 'read', effect: 'allow', scope: '' };
    const added = await admin('/policies', 'POST', { rules: [rule] });
    assert.equal(added.status, 201);
    const took = await within(1000, async () => (await decideOnB('/queues/atlas')) === 200);
    assert.ok(took < 1000, `took ${took} ms`);

    assert.equal((await admin('/policies', 'DELETE', { rules: [rule] })).status, 200);
    await within(1000, async () => (await decideOnB('/queues/atlas')) === 403);
  });

  it('applies a membership change made on A at B within a second (cached identities refreshed)', async () => {
    // /cms may read deployments; bob is not in /cms.
    assert.equal(await decideOnB('/deployments/7'), 403);
    assert.equal((await admin('/groups/cms/members/bob', 'PUT')).status, 200);
    await within(1000, async () => (await decideOnB('/deployments/7')) === 200);
    assert.equal((await admin('/groups/cms/members/bob', 'DELETE')).status, 200);
    await within(1000, async () => (await decideOnB('/deployments/7')) === 403);
  });

  it('reports the store\'s policy version on every replica, not a per-replica counter', async () => {
    const rule = { type: 'p', subject: '/atlas', domain: 'orchestrator', object: '/versioned/**', action: 'read', effect: 'allow', scope: '' };
    const added = await admin('/policies', 'POST', { rules: [rule] });
    assert.equal(added.status, 201);
    const stored = Number(await a.store.get(POLICY_VERSION_KEY));
    assert.equal((await added.json() as { version: number }).version, stored);
    // Announced changes raise the store's version; each replica's own counter also moves with its reloads and caches.
    assert.equal((await admin('/groups/cms/members/bob', 'PUT')).status, 200);
    assert.equal((await admin('/groups/cms/members/bob', 'DELETE')).status, 200);
    // What a version check or a missed message makes a replica do: its own counter moves, the policy does not change.
    await b.fedgate.policy.reload();
    const now = Number(await a.store.get(POLICY_VERSION_KEY));
    for (const replica of [a, b]) {
      const listed = await fetch(`${replica.issuer}/admin/api/policies`, { headers: { authorization: `Bearer ${adminToken}` } });
      assert.equal((await listed.json() as { version: number }).version, now, `${replica.issuer} reports the store's version`);
    }
    assert.equal((await admin('/policies', 'DELETE', { rules: [rule] })).status, 200);
  });

  it('catches up after a missed announcement: a version gap, or the periodic version check', async () => {
    const service = a.fedgate.policy;
    await service.adapter.addLines([{ ptype: 'p', values: ['/atlas', 'orchestrator', '/gap/**', 'read', 'allow', ''] }]);
    await a.store.increment(POLICY_VERSION_KEY); // the announcement pub/sub lost
    await service.watcher.announce('invalidate'); // the next one arrives: B sees the gap and reloads
    await within(1000, async () => (await decideOnB('/gap/x')) === 200);

    await service.adapter.addLines([{ ptype: 'p', values: ['/atlas', 'orchestrator', '/quiet/**', 'read', 'allow', ''] }]);
    await a.store.increment(POLICY_VERSION_KEY); // lost, and nothing follows: the poll (0.5 s here) notices
    await within(2000, async () => (await decideOnB('/quiet/x')) === 200);
  });
});
