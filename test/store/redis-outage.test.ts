import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { RedisStore, StoreUnavailable } from '../../src/store/index.ts';
import type { Store } from '../../src/store/store.ts';
import { PrivateRedis } from '../support/private-redis.ts';
import { within } from '../support/poll.ts';

const DEADLINE_MS = 400;
// Scheduling noise on a shared 2-core machine, not a second deadline.
const SLACK_MS = 250;

/** Every Store method that talks to Redis, called once. */
const calls: Record<string, (store: Store) => Promise<unknown>> = {
  get: (s) => s.get('k'),
  set: (s) => s.set('k', 1),
  'set with ttl': (s) => s.set('k', 1, 60),
  setIfAbsent: (s) => s.setIfAbsent('k2', 1, 60),
  replace: (s) => s.replace('k', 2),
  delete: (s) => s.delete('k'),
  compareAndSet: (s) => s.compareAndSet('k', 1, 2),
  acquireLock: (s) => s.acquireLock('lock', 'me', 60),
  renewLock: (s) => s.renewLock('lock', 'me', 60),
  releaseLock: (s) => s.releaseLock('lock', 'me'),
  ttl: (s) => s.ttl('k'),
  consume: (s) => s.consume('k', 1),
  addToSet: (s) => s.addToSet('set', 'm', 60),
  drainSet: (s) => s.drainSet('set', 60),
  removeFromSet: (s) => s.removeFromSet('set', 'm'),
  setMembers: (s) => s.setMembers('set'),
  increment: (s) => s.increment('n'),
  'increment with ttl': (s) => s.increment('w', 60),
  appendToStream: (s) => s.appendToStream('stream', [{ a: 'b' }], 10),
  readStream: (s) => s.readStream('stream', 10),
  publish: (s) => s.publish('channel', 'x'),
  subscribe: (s) => s.subscribe(`channel-${Math.random()}`, () => {}),
  addToIndex: (s) => s.addToIndex('index', ['m']),
  removeFromIndex: (s) => s.removeFromIndex('index', ['m']),
  indexSize: (s) => s.indexSize('index'),
  scanIndex: (s) => s.scanIndex('index', { limit: 10 }),
  ping: (s) => s.ping(),
};

async function timed(call: () => Promise<unknown>): Promise<{ ms: number; error: unknown }> {
  const start = performance.now();
  try {
    await call();
    return { ms: performance.now() - start, error: undefined };
  } catch (error) {
    return { ms: performance.now() - start, error };
  }
}


describe('RedisStore under a Redis outage (its own redis-server)', () => {
  it('exercises every method of the store below (a new method must be added here)', () => {
    const methods = Object.getOwnPropertyNames(RedisStore.prototype).filter((name) => name !== 'constructor' && name !== 'close');
    const covered = new Set(Object.keys(calls).map((name) => name.split(' ')[0]));
    assert.deepEqual(methods.filter((m) => !covered.has(m)), []);
  });

  let redis: PrivateRedis;
  let store: RedisStore;
  const errors: Error[] = [];
  before(async () => {
    redis = await PrivateRedis.start();
    store = new RedisStore({ url: redis.url, keyPrefix: 'outage:', deadlineMs: DEADLINE_MS, onError: (err) => errors.push(err) });
    await store.ping();
  });
  after(async () => {
    redis.thaw();
    await store.close();
    await redis.kill();
  });

  it('while frozen (SIGSTOP), the first call fails at its deadline and every later one at once, each as StoreUnavailable', async () => {
    await store.set('k', 1);
    redis.freeze();
    try {
      const first = await timed(() => store.get('k'));
      assert.ok(first.error instanceof StoreUnavailable, `got ${String(first.error)}`);
      assert.ok(first.ms >= DEADLINE_MS - 20, `waited the deadline (${first.ms} ms)`);
      assert.ok(first.ms < DEADLINE_MS + SLACK_MS, `no longer than the deadline (${first.ms} ms)`);
      for (const [name, call] of Object.entries(calls)) {
        const { ms, error } = await timed(() => call(store));
        assert.ok(error instanceof StoreUnavailable, `${name}: ${String(error)}`);
        assert.ok(ms < 50, `${name} fails at once while the store is known unavailable (${ms} ms)`);
      }
      assert.ok(errors.some((e) => e instanceof StoreUnavailable), 'the outage is reported once to onError');
    } finally {
      redis.thaw();
    }
    await within(10_000, () => store.ping().then(() => true), 'the store to answer', 50);
    assert.equal(await store.get('k'), 1, 'back after SIGCONT');
  });

  it('calls made concurrently with the stall each end within one deadline', async () => {
    redis.freeze();
    try {
      const results = await Promise.all(Object.values(calls).map((call) => timed(() => call(store))));
      for (const { ms, error } of results) {
        assert.ok(error instanceof StoreUnavailable, String(error));
        assert.ok(ms < DEADLINE_MS + SLACK_MS, `${ms} ms`);
      }
    } finally {
      redis.thaw();
    }
    await within(10_000, () => store.ping().then(() => true), 'the store to answer', 50);
  });

  it('a call queued behind another one during the stall still ends within its own deadline', async () => {
    redis.freeze();
    try {
      const first = timed(() => store.get('k'));
      await new Promise((r) => setTimeout(r, 50));
      // Auto-pipelined behind the first call's pipeline, which Redis has not answered.
      const second = await timed(() => store.set('k2', 1));
      assert.ok(second.error instanceof StoreUnavailable, String(second.error));
      assert.ok(second.ms < DEADLINE_MS + SLACK_MS, `${second.ms} ms`);
      assert.ok((await first).error instanceof StoreUnavailable);
    } finally {
      redis.thaw();
    }
    await within(10_000, () => store.ping().then(() => true), 'the store to answer', 50);
  });

  it('while down, calls fail as StoreUnavailable within the deadline, and it recovers when Redis is back', async () => {
    await redis.kill();
    for (const [name, call] of Object.entries(calls)) {
      const { ms, error } = await timed(() => call(store));
      assert.ok(error instanceof StoreUnavailable, `${name}: ${String(error)}`);
      assert.ok(ms < DEADLINE_MS + SLACK_MS, `${name} took ${ms} ms`);
    }
    await redis.restart();
    await within(10_000, () => store.ping().then(() => true), 'the store to answer', 50);
    await store.set('k', 3);
    assert.equal(await store.get('k'), 3);
  });

  it('keeps errors of the call itself as they are', async () => {
    await store.set('string', 'x');
    await assert.rejects(store.addToSet('string', 'm'), (err: Error) => !(err instanceof StoreUnavailable) && /WRONGTYPE/.test(err.message));
    assert.equal(await store.get('string'), 'x', 'and the store stays available');
  });
});
