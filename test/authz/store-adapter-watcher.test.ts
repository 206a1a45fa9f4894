import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { newEnforcer, newModelFromString } from 'casbin';
import { loadModelText } from '../../src/authz/engine.ts';
import { objectMatch, actionMatch, scopeMatch } from '../../src/authz/functions.ts';
import { POLICY_LINES_KEY, StorePolicyAdapter } from '../../src/authz/store-adapter.ts';
import { POLICY_CHANNEL, StoreWatcher, type PolicyChange } from '../../src/authz/store-watcher.ts';
import { MemoryStore, RedisStore } from '../../src/store/index.ts';
import type { Store } from '../../src/store/store.ts';
import { deleteRedisPrefix, REDIS_URL } from '../support/harness.ts';
import { within } from '../support/poll.ts';

async function enforcerOn(store: Store) {
  const enforcer = await newEnforcer(newModelFromString(loadModelText()), new StorePolicyAdapter(store));
  enforcer.addFunction('objectMatch', objectMatch);
  enforcer.addFunction('actionMatch', actionMatch);
  enforcer.addFunction('scopeMatch', scopeMatch);
  return enforcer;
}


for (const kind of ['memory', 'redis'] as const) {
  describe(`Casbin adapter and watcher on the ${kind} store`, () => {
    const prefix = `fedgate-test-${randomBytes(6).toString('hex')}:`;
    const stores: Store[] = [];
    // Two replicas: two connections to one Redis, or one shared embedded store.
    const shared = kind === 'memory' ? new MemoryStore() : undefined;
    const open = () => {
      const store = shared ?? new RedisStore({ url: REDIS_URL, keyPrefix: prefix });
      if (!shared) stores.push(store);
      return store;
    };
    after(async () => {
      for (const s of stores) await s.close();
      await shared?.close();
      if (kind === 'redis') await deleteRedisPrefix(prefix);
    });

    it('persists what a Casbin Enforcer adds and removes, and loads it back', async () => {
      const store = open();
      const enforcer = await enforcerOn(store);
      assert.equal(await enforcer.addPolicy('/cms', 'data', '/store/cms/**', 'GET', 'allow', ''), true);
      assert.equal(await enforcer.addNamedGroupingPolicy('g', 'user:alice', '/cms'), true);
      assert.equal(await enforcer.addNamedGroupingPolicy('g2', 'HEAD', 'GET', 'data'), true);
      assert.equal(enforcer.enforceSync('user:alice', 'data', '/store/cms/f', 'GET', ''), true);
      assert.equal((await store.setMembers(POLICY_LINES_KEY)).length, 3);

      const reloaded = await enforcerOn(store);
      assert.equal(reloaded.enforceSync('user:alice', 'data', '/store/cms/f', 'HEAD', ''), true, 'a second enforcer loads the same policy');
      await reloaded.removePolicy('/cms', 'data', '/store/cms/**', 'GET', 'allow', '');
      assert.equal((await store.setMembers(POLICY_LINES_KEY)).length, 2);
      await reloaded.removeFilteredNamedGroupingPolicy('g2', 2, 'data');
      assert.deepEqual(await new StorePolicyAdapter(store).loadLines(), [{ ptype: 'g', values: ['user:alice', '/cms'] }]);
      // savePolicy makes the store what the model holds.
      await reloaded.addPolicy('/atlas', 'data', '/store/atlas/**', 'GET', 'allow', '');
      await reloaded.savePolicy();
      assert.equal((await new StorePolicyAdapter(store).loadLines()).length, 2);
      await store.delete(POLICY_LINES_KEY);
    });

    it('tells another replica of a change within a second (Watcher: reload)', async () => {
      const storeA = open();
      const storeB = open();
      const a = await enforcerOn(storeA);
      const b = await enforcerOn(storeB);
      const watcherA = new StoreWatcher(storeA);
      const watcherB = new StoreWatcher(storeB);
      await watcherA.start();
      await watcherB.start();
      a.setWatcher(watcherA);
      b.setWatcher(watcherB);
      assert.equal(b.enforceSync('user:bob', 'data', '/store/x', 'GET', ''), false);
      await a.addPolicy('user:bob', 'data', '/store/**', 'GET', 'allow', '');
      const took = await within(1000, () => b.enforceSync('user:bob', 'data', '/store/x', 'GET', ''));
      assert.ok(took < 1000);
      await watcherA.close();
      await watcherB.close();
    });

    it('announces deltas with consecutive versions and ignores its own (WatcherEx)', async () => {
      const store = open();
      const publisher = new StoreWatcher(store);
      const listener = new StoreWatcher(open());
      const seen: PolicyChange[] = [];
      listener.onChange((c) => seen.push(c));
      await publisher.start();
      await listener.start();
      const own: PolicyChange[] = [];
      publisher.onChange((c) => own.push(c));
      const v1 = await publisher.currentVersion();
      await publisher.updateForAddPolicy('p', 'p', '/cms', 'data', '/x', 'GET', 'allow', '');
      await publisher.updateForRemovePolicies('p', 'p', ['/cms', 'data', '/x', 'GET', 'allow', '']);
      await within(1000, () => seen.length === 2);
      assert.deepEqual(seen.map((c) => c.version), [v1 + 1, v1 + 2]);
      assert.deepEqual(seen[0]!.add, [{ ptype: 'p', values: ['/cms', 'data', '/x', 'GET', 'allow', ''] }]);
      assert.deepEqual(seen[1]!.remove, [{ ptype: 'p', values: ['/cms', 'data', '/x', 'GET', 'allow', ''] }]);
      assert.equal(own.length, 0, 'a replica does not hear its own announcements');
      // Large changes travel as a reload, not a megabyte message.
      const many = Array.from({ length: 1500 }, (_, i) => ({ ptype: 'p' as const, values: [`/g${i}`, 'data', '/x', 'GET', 'allow', ''] }));
      await publisher.announce('delta', many);
      await within(1000, () => seen.length === 3);
      assert.equal(seen[2]!.kind, 'reload');
      assert.equal(seen[2]!.add, undefined);
      // Garbage on the channel is ignored.
      await store.publish(POLICY_CHANNEL, 'not json');
      await store.publish(POLICY_CHANNEL, JSON.stringify({ origin: 'x', version: 'nope', kind: 'delta' }));
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(seen.length, 3);
      await publisher.close();
      await listener.close();
    });
  });
}
