/**
 * The lock every part uses (src/store/lock.ts), on the real Redis and the
 * memory store: held past its time to live while its holder works (renewal),
 * released only by its holder, and a holder that lost it is told so.
 */
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { tryLock, withLock } from '../../src/store/lock.ts';
import { MemoryStore, RedisStore } from '../../src/store/index.ts';
import type { Store } from '../../src/store/store.ts';
import { deleteRedisPrefix, REDIS_URL } from '../support/harness.ts';

const prefix = `fedgate-test-${randomBytes(6).toString('hex')}:`;

for (const [name, make, cleanup] of [
  ['Redis', () => new RedisStore({ url: REDIS_URL, keyPrefix: prefix }), () => deleteRedisPrefix(prefix)],
  ['memory', () => new MemoryStore(), async () => {}],
] as const) {
  describe(`the store lock (${name})`, { concurrency: true }, () => {
    const store: Store = make();
    after(async () => {
      await store.close();
      await cleanup();
    });

    it('stays held while work runs longer than its ttl, and is free after', async () => {
      const key = `lock:${randomUUID()}`;
      let othersGotIt = false;
      await withLock(store, key, { ttlSeconds: 1, waitMs: 0, busy: () => new Error('busy') }, async (lock) => {
        for (let i = 0; i < 5; i++) {
          await sleep(500);
          const other = await tryLock(store, key, { ttlSeconds: 1 });
          if (other) {
            othersGotIt = true;
            await other.release();
          }
        }
        assert.equal(lock.lost, false);
      });
      assert.equal(othersGotIt, false, 'nobody took the lock during 2.5 s of work on a 1 s ttl');
      const next = await tryLock(store, key);
      assert.ok(next, 'released at the end');
      await next.release();
    });

    it('waits for a held lock, then gives up with the caller\'s error', async () => {
      const key = `lock:${randomUUID()}`;
      const held = (await tryLock(store, key))!;
      const order: string[] = [];
      const waiting = withLock(store, key, { waitMs: 2000, busy: () => new Error('busy') }, async () => { order.push('second'); });
      await sleep(100);
      order.push('first done');
      await held.release();
      await waiting;
      assert.deepEqual(order, ['first done', 'second']);

      const again = (await tryLock(store, key))!;
      await assert.rejects(withLock(store, key, { waitMs: 100, busy: () => new Error('policy busy') }, async () => {}), /policy busy/);
      await again.release();
    });

    it('tells a holder that lost its lock, and its release leaves the new holder\'s alone', async () => {
      const key = `lock:${randomUUID()}`;
      let told = 0;
      const first = (await tryLock(store, key, { ttlSeconds: 1, onLost: () => { told += 1; } }))!;
      // As if the lock had expired while the store was unreachable: someone else holds it now.
      await store.delete(key);
      assert.equal(await store.acquireLock(key, 'someone-else', 60), true);
      await sleep(800);
      assert.equal(first.lost, true);
      assert.equal(told, 1);
      await first.release();
      assert.equal(await store.acquireLock(key, 'third', 60), false, 'the other holder still has it');
      assert.equal(await store.releaseLock(key, 'someone-else'), true);
    });
  });
}
