import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Store } from '../../src/store/store.ts';
import { within } from '../support/poll.ts';

/** Options of {@link storeContract}. */
export interface StoreContractOptions {
  /**
   * A clock the store under test reads. When given, expiry tests advance it
   * instead of sleeping, and the tests run one after another (they share
   * the clock); without it they sleep in real time and run concurrently.
   */
  pinnedClock?: { advance(ms: number): void };
}

/**
 * Registers the behaviour every {@link Store} implementation must have, as
 * one `describe(name)` with one test per behaviour. Every test works on its
 * own random keys, so the suite can share a store with others.
 */
export function storeContract(
  name: string,
  makeStore: () => Promise<Store> | Store,
  options: StoreContractOptions = {},
): void {
  const { pinnedClock } = options;
  const elapse = async (ms: number): Promise<void> => {
    if (pinnedClock === undefined) await sleep(ms);
    else pinnedClock.advance(ms);
  };

  describe(name, { concurrency: pinnedClock === undefined }, () => {
    let store: Store;

    before(async () => {
      store = await makeStore();
    });

    after(async () => {
      await store?.close();
    });

    it('round-trips nested JSON values', async () => {
      const value = {
        list: [1, 'two', { three: [3] }, [], null],
        empty: [],
        emptyObject: {},
        numbers: { zero: 0, negative: -42, fraction: 3.25, big: 2 ** 52 },
        text: 'grüße, 日本語, emoji 🔐, quote " and backslash \\',
        missing: null,
        flag: false,
      };
      const key = randomKey('json');
      await store.set(key, value);
      assert.deepEqual(await store.get(key), value);

      for (const scalar of ['plain', 7, true, null, [], ['a']]) {
        const scalarKey = randomKey('scalar');
        await store.set(scalarKey, scalar);
        assert.deepEqual(await store.get(scalarKey), scalar);
      }
    });

    it('never shares stored objects with the caller', async () => {
      const key = randomKey('copy');
      const value = { nested: { list: [1] } };
      await store.set(key, value);
      value.nested.list.push(2);
      const read = await store.get<typeof value>(key);
      assert.deepEqual(read, { nested: { list: [1] } });
      read!.nested.list.push(3);
      assert.deepEqual(await store.get(key), { nested: { list: [1] } });
    });

    it('reports an absent key as undefined', async () => {
      const key = randomKey('absent');
      assert.equal(await store.get(key), undefined);
      assert.equal(await store.ttl(key), undefined);
      assert.equal(await store.delete(key), false);
    });

    it('expires a key after its ttl', async () => {
      const key = randomKey('expiry');
      await store.set(key, { a: 1 }, 1);
      assert.deepEqual(await store.get(key), { a: 1 });
      await elapse(2100);
      assert.equal(await store.get(key), undefined);
      assert.equal(await store.ttl(key), undefined);
      assert.equal(await store.setIfAbsent(key, 'again'), true, 'an expired key counts as absent');
    });

    it('rejects a ttl that is not a positive integer', async () => {
      const key = randomKey('bad-ttl');
      await assert.rejects(store.set(key, 1, 0));
      await assert.rejects(store.set(key, 1, 1.5));
      await assert.rejects(store.setIfAbsent(key, 1, -1));
      assert.equal(await store.get(key), undefined);
    });

    it('writes with setIfAbsent only once', async () => {
      const key = randomKey('nx');
      assert.equal(await store.setIfAbsent(key, 'first', 100), true);
      assert.equal(await store.setIfAbsent(key, 'second', 100), false);
      assert.equal(await store.get(key), 'first');
      assertTtlNear(await store.ttl(key), 100);

      const persistent = randomKey('nx-persistent');
      assert.equal(await store.setIfAbsent(persistent, 1), true);
      assert.equal(await store.ttl(persistent), -1);
    });

    it('replaces an existing value, keeps its ttl, and fails on an absent key', async () => {
      const absent = randomKey('replace-absent');
      assert.equal(await store.replace(absent, 'x'), false);
      assert.equal(await store.get(absent), undefined);

      const key = randomKey('replace');
      await store.set(key, 'old', 100);
      assert.equal(await store.replace(key, { new: true }), true);
      assert.deepEqual(await store.get(key), { new: true });
      assertTtlNear(await store.ttl(key), 100);

      const persistent = randomKey('replace-persistent');
      await store.set(persistent, 'old');
      assert.equal(await store.replace(persistent, 'new'), true);
      assert.equal(await store.ttl(persistent), -1);
    });

    it('deletes a key', async () => {
      const key = randomKey('delete');
      await store.set(key, 1);
      assert.equal(await store.delete(key), true);
      assert.equal(await store.get(key), undefined);
      assert.equal(await store.delete(key), false);
    });

    it('reports ttl values', async () => {
      const key = randomKey('ttl');
      await store.set(key, 1);
      assert.equal(await store.ttl(key), -1);
      await store.set(key, 1, 100);
      assertTtlNear(await store.ttl(key), 100);
      await store.set(key, 2);
      assert.equal(await store.ttl(key), -1, 'set without ttl makes the key persistent again');
    });

    it('adds to, removes from and lists a set', async () => {
      const key = randomKey('set');
      assert.deepEqual(await store.setMembers(key), []);
      await store.addToSet(key, 'a');
      await store.addToSet(key, 'b');
      await store.addToSet(key, 'a');
      assert.deepEqual((await store.setMembers(key)).sort(), ['a', 'b']);
      await store.removeFromSet(key, 'a');
      await store.removeFromSet(key, 'missing');
      assert.deepEqual(await store.setMembers(key), ['b']);
      await store.removeFromSet(key, 'b');
      assert.deepEqual(await store.setMembers(key), []);
      assert.equal(await store.ttl(key), undefined, 'an emptied set is gone');
      await store.removeFromSet(randomKey('set-absent'), 'x');
    });

    it('only ever extends the ttl of a set', async () => {
      const key = randomKey('set-ttl');
      await store.addToSet(key, 'a', 100);
      assertTtlNear(await store.ttl(key), 100);
      await store.addToSet(key, 'b', 10);
      assertTtlNear(await store.ttl(key), 100, 'a shorter ttl does not shorten the set');
      await store.addToSet(key, 'c', 1000);
      assertTtlNear(await store.ttl(key), 1000);
      assert.deepEqual((await store.setMembers(key)).sort(), ['a', 'b', 'c']);
    });

    it('makes a set persistent when added to without ttl', async () => {
      const key = randomKey('set-persist');
      await store.addToSet(key, 'a', 100);
      await store.addToSet(key, 'b');
      assert.equal(await store.ttl(key), -1);
      await store.addToSet(key, 'c', 10);
      assert.equal(await store.ttl(key), -1, 'a persistent set lives longer than any ttl');
    });

    it('expires a set after its ttl', async () => {
      const key = randomKey('set-expiry');
      await store.addToSet(key, 'a', 1);
      assert.deepEqual(await store.setMembers(key), ['a']);
      await elapse(2100);
      assert.deepEqual(await store.setMembers(key), []);
      await store.addToSet(key, 'b', 100);
      assert.deepEqual(await store.setMembers(key), ['b'], 'a new set starts empty after expiry');
      assertTtlNear(await store.ttl(key), 100);
    });

    it('consumes a JSON object exactly once, keeping its value and ttl', async () => {
      const key = randomKey('consume');
      const value = { jti: 'abc', list: [], nested: { empty: {} }, n: 1 };
      await store.set(key, value, 100);
      assert.deepEqual(await store.consume(key, 1_700_000_000), { outcome: 'consumed', value });
      assert.deepEqual(await store.get(key), { ...value, consumed: 1_700_000_000 }, 'empty arrays and objects stay what they were');
      assertTtlNear(await store.ttl(key), 100);
      assert.deepEqual(await store.consume(key, 1_700_000_001), { outcome: 'already', value: { ...value, consumed: 1_700_000_000 } });
      assert.equal((await store.get<{ consumed: number }>(key))!.consumed, 1_700_000_000, 'a later use changes nothing');

      const empty = randomKey('consume-empty');
      await store.set(empty, {});
      assert.equal((await store.consume(empty, 5)).outcome, 'consumed');
      assert.deepEqual(await store.get(empty), { consumed: 5 });
      assert.equal(await store.ttl(empty), -1);

      assert.deepEqual(await store.consume(randomKey('consume-absent'), 1), { outcome: 'absent' });
      const scalar = randomKey('consume-scalar');
      await store.set(scalar, ['not', 'an', 'object']);
      await assert.rejects(store.consume(scalar, 1));
      await assert.rejects(store.consume(key, -1));
      await assert.rejects(store.consume(key, 1.5));
    });

    it('lets exactly one of many concurrent consumers win', async () => {
      for (let round = 0; round < 20; round++) {
        const key = randomKey('consume-race');
        await store.set(key, { round }, 100);
        const results = await Promise.all(Array.from({ length: 10 }, (_, i) => store.consume(key, 1000 + i)));
        assert.equal(results.filter((r) => r.outcome === 'consumed').length, 1);
        assert.equal(results.filter((r) => r.outcome === 'already').length, 9);
        const winner = results.findIndex((r) => r.outcome === 'consumed');
        assert.deepEqual(await store.get(key), { round, consumed: 1000 + winner }, 'the value records the winner only');
      }
    });

    it('drains a set: returns and removes its members in one step', async () => {
      const key = randomKey('drain');
      await store.addToSet(key, 'a', 100);
      await store.addToSet(key, 'b', 100);
      assert.deepEqual((await store.drainSet(key)).sort(), ['a', 'b']);
      assert.deepEqual(await store.setMembers(key), []);
      assert.equal(await store.ttl(key), undefined, 'the emptied set is gone');
      assert.deepEqual(await store.drainSet(key), []);
      assert.equal(await store.addToSet(key, 'c', 100), true, 'without a seal the set takes members again');
      assert.deepEqual(await store.setMembers(key), ['c']);
    });

    it('seals a drained set: refuses additions while sealed', async () => {
      const key = randomKey('seal');
      assert.equal(await store.addToSet(key, 'a', 100), true);
      assert.equal(await store.addToSet(key, 'b', 100), true);
      assert.deepEqual((await store.drainSet(key, 2)).sort(), ['a', 'b']);
      assert.deepEqual(await store.setMembers(key), []);
      assert.equal(await store.addToSet(key, 'c', 100), false);
      assert.equal(await store.addToSet(key, 'c'), false);
      assert.deepEqual(await store.setMembers(key), [], 'nothing joins a sealed set');
      assert.deepEqual(await store.drainSet(key, 1), [], 'sealing again is harmless and does not shorten the seal');
      assert.deepEqual(await store.drainSet(key), [], 'nor does draining without a seal end it');
      await elapse(1100);
      assert.equal(await store.addToSet(key, 'd', 100), false, 'still sealed: the longer seal holds');
      await elapse(1100);
      assert.equal(await store.addToSet(key, 'e', 100), true, 'the seal ends after its ttl');
      assert.deepEqual(await store.setMembers(key), ['e']);

      const never = randomKey('seal-absent');
      assert.deepEqual(await store.drainSet(never, 100), [], 'an absent set can be sealed ahead');
      assert.equal(await store.addToSet(never, 'x'), false);
      await assert.rejects(store.drainSet(never, 0));
    });

    it('loses no concurrent addition to a drain, sealed or not', async () => {
      for (let round = 0; round < 20; round++) {
        const seal = round % 2 === 0 ? 100 : undefined;
        const key = randomKey('drain-race');
        const adds = Array.from({ length: 20 }, (_, i) => store.addToSet(key, `m${i}`, 100));
        const drained = store.drainSet(key, seal);
        const more = Array.from({ length: 20 }, (_, i) => store.addToSet(key, `n${i}`, 100));
        const [added, members, late] = await Promise.all([Promise.all(adds), drained, Promise.all(more)]);
        const accepted = [...added.map((ok, i) => (ok ? `m${i}` : '')), ...late.map((ok, i) => (ok ? `n${i}` : ''))].filter(Boolean).sort();
        const left = await store.setMembers(key);
        assert.deepEqual([...members, ...left].sort(), accepted, 'every accepted addition was drained or is still there');
        if (seal) assert.deepEqual(left, [], 'nothing joins after a seal');
        else assert.equal(accepted.length, 40, 'without a seal every addition is accepted');
      }
    });

    it('compares and sets: writes only over the value it was given, keeping the ttl', async () => {
      const key = randomKey('cas');
      await store.set(key, { n: 1, list: [] }, 100);
      assert.equal(await store.compareAndSet(key, { n: 1, list: [] }, { n: 2, list: ['a'] }), true);
      assert.deepEqual(await store.get(key), { n: 2, list: ['a'] });
      assertTtlNear(await store.ttl(key), 100);
      assert.equal(await store.compareAndSet(key, { n: 1, list: [] }, { n: 3 }), false, 'a stale expectation writes nothing');
      assert.deepEqual(await store.get(key), { n: 2, list: ['a'] });
      assert.equal(await store.compareAndSet(randomKey('cas-absent'), { n: 1 }, { n: 2 }), false);
    });

    it('loses no update of concurrent read-modify-write loops on compareAndSet', async () => {
      const key = randomKey('cas-race');
      await store.set(key, { count: 0, by: [] as number[] });
      await Promise.all(Array.from({ length: 20 }, async (_, i) => {
        for (;;) {
          const current = (await store.get<{ count: number; by: number[] }>(key))!;
          if (await store.compareAndSet(key, current, { count: current.count + 1, by: [...current.by, i] })) return;
        }
      }));
      const final = (await store.get<{ count: number; by: number[] }>(key))!;
      assert.equal(final.count, 20);
      assert.deepEqual([...final.by].sort((a, b) => a - b), Array.from({ length: 20 }, (_, i) => i));
    });

    it('locks for one owner at a time, renews and releases only for that owner', async () => {
      const key = randomKey('lock');
      assert.equal(await store.acquireLock(key, 'alpha', 100), true);
      assert.equal(await store.acquireLock(key, 'beta', 100), false, 'held');
      assert.equal(await store.renewLock(key, 'beta', 100), false, 'only the owner renews');
      assert.equal(await store.releaseLock(key, 'beta'), false, 'only the owner releases');
      assert.equal(await store.acquireLock(key, 'beta', 100), false, 'still held by alpha');
      assert.equal(await store.renewLock(key, 'alpha', 200), true);
      assertTtlNear(await store.ttl(key), 200);
      assert.equal(await store.releaseLock(key, 'alpha'), true);
      assert.equal(await store.releaseLock(key, 'alpha'), false, 'released once');
      assert.equal(await store.acquireLock(key, 'beta', 100), true, 'free again');
      await assert.rejects(store.renewLock(key, 'beta', 0));
    });

    it('frees an unrenewed lock after its ttl, and the late owner cannot release the new holder\'s', async () => {
      const key = randomKey('lock-expiry');
      assert.equal(await store.acquireLock(key, 'alpha', 1), true);
      await elapse(2100);
      assert.equal(await store.acquireLock(key, 'beta', 100), true, 'expired: another takes it');
      assert.equal(await store.renewLock(key, 'alpha', 100), false, 'the late owner learns it lost the lock');
      assert.equal(await store.releaseLock(key, 'alpha'), false, 'and cannot release it');
      assert.equal(await store.acquireLock(key, 'gamma', 100), false, 'beta still holds it');
    });

    it('counts in a fixed window', async () => {
      const key = randomKey('counter');
      assert.equal(await store.increment(key, 2), 1);
      assert.equal(await store.increment(key, 2), 2);
      await elapse(1100);
      assert.equal(await store.increment(key, 2), 3);
      const ttl = await store.ttl(key);
      assert.ok(ttl !== undefined && ttl >= 0 && ttl <= 1, `later increments do not extend the window (ttl ${ttl})`);
      await elapse(1200);
      assert.equal(await store.increment(key, 2), 1, 'a new window starts after expiry');
      assertTtlNear(await store.ttl(key), 2);

      const other = randomKey('counter-other');
      assert.equal(await store.increment(other, 100), 1, 'counters are independent');
    });

    it('counts without expiry when no window is given (a version number)', async () => {
      const key = randomKey('version');
      assert.equal(await store.increment(key), 1);
      assert.equal(await store.increment(key), 2);
      assert.equal(await store.ttl(key), -1, 'a version counter never expires');
      assert.equal(await store.get(key), 2, 'the counter reads back as a number');
    });

    it('appends to a stream and reads it newest first', async () => {
      const key = randomKey('stream');
      assert.deepEqual(await store.readStream(key, 10), []);
      const ids: string[] = [];
      for (let n = 0; n < 3; n++) {
        ids.push(...await store.appendToStream(key, [{ n: String(n), kind: 'test' }], 100));
      }
      for (const id of ids) assert.match(id, /^\d+-\d+$/);
      for (let i = 1; i < ids.length; i++) {
        assert.ok(compareStreamIds(ids[i - 1]!, ids[i]!) < 0, `ids increase: ${ids[i - 1]} < ${ids[i]}`);
      }
      assert.deepEqual(await store.readStream(key, 10), [
        { id: ids[2], fields: { n: '2', kind: 'test' } },
        { id: ids[1], fields: { n: '1', kind: 'test' } },
        { id: ids[0], fields: { n: '0', kind: 'test' } },
      ]);
      assert.deepEqual(
        (await store.readStream(key, 2)).map((entry) => entry.id),
        [ids[2], ids[1]],
      );
    });

    it('appends a batch in order with increasing ids, and refuses empty entries', async () => {
      const key = randomKey('stream-batch');
      const ids = await store.appendToStream(key, [{ n: '0' }, { n: '1', extra: 'x' }, { n: '2' }], 100);
      assert.equal(ids.length, 3);
      for (let i = 1; i < ids.length; i++) assert.ok(compareStreamIds(ids[i - 1]!, ids[i]!) < 0);
      assert.deepEqual(await store.readStream(key, 10), [
        { id: ids[2], fields: { n: '2' } },
        { id: ids[1], fields: { n: '1', extra: 'x' } },
        { id: ids[0], fields: { n: '0' } },
      ]);
      await assert.rejects(store.appendToStream(key, [], 100), TypeError);
      await assert.rejects(store.appendToStream(key, [{ n: '3' }, {}], 100), TypeError);
      assert.equal((await store.readStream(key, 10)).length, 3, 'a refused batch writes nothing');
    });

    it('caps a stream at about maxLength entries', async () => {
      const key = randomKey('stream-cap');
      const total = 300;
      const maxLength = 10;
      await Promise.all(
        Array.from({ length: total }, (_, n) => store.appendToStream(key, [{ n: String(n) }], maxLength)),
      );
      const entries = await store.readStream(key, 1000);
      // Redis trims approximately (whole macro nodes), so only bounds hold.
      assert.ok(entries.length >= maxLength, `keeps at least maxLength entries (kept ${entries.length})`);
      assert.ok(entries.length < total, `drops old entries (kept ${entries.length})`);
      assert.deepEqual(
        entries.map((entry) => Number(entry.fields.n)),
        Array.from({ length: entries.length }, (_, i) => total - 1 - i),
        'keeps the newest entries, newest first',
      );
    });

    it('reads a stream page by page and within a time range', async () => {
      const key = randomKey('stream-range');
      const ids = await store.appendToStream(key, Array.from({ length: 25 }, (_, n) => ({ n: String(n) })), 1000);
      const pages: string[][] = [];
      let before: string | undefined;
      for (;;) {
        const page = await store.readStream(key, 10, { before });
        if (page.length === 0) break;
        pages.push(page.map((e) => e.fields.n!));
        before = page.at(-1)!.id;
      }
      assert.deepEqual(pages.map((p) => p.length), [10, 10, 5]);
      assert.deepEqual(pages.flat(), Array.from({ length: 25 }, (_, i) => String(24 - i)), 'every entry once, newest first');
      const inclusive = await store.readStream(key, 100, { newest: ids[20], oldest: ids[5] });
      assert.deepEqual(inclusive.map((e) => e.id), ids.slice(5, 21).reverse(), 'newest and oldest are inclusive');
      const both = await store.readStream(key, 100, { newest: ids[20], before: ids[10], oldest: ids[5] });
      assert.deepEqual(both.map((e) => e.id), ids.slice(5, 10).reverse(), 'before narrows newest');
      const firstMs = ids[0]!.split('-')[0]!;
      const lastMs = ids[24]!.split('-')[0]!;
      assert.equal((await store.readStream(key, 100, { oldest: firstMs, newest: lastMs })).length, 25, 'a bare millisecond covers all its ids');
      assert.deepEqual(await store.readStream(key, 100, { newest: String(Number(firstMs) - 1) }), []);
      await assert.rejects(store.readStream(key, 10, { before: 'not-an-id' }), RangeError);
    });

    it('keeps a sorted index in UTF-8 byte order and pages through it', async () => {
      const key = randomKey('index');
      assert.equal(await store.indexSize(key), 0);
      assert.deepEqual(await store.scanIndex(key, { limit: 5 }), { members: [], next: undefined });
      const members = ['beta', 'alpha', 'alp', 'gamma', 'Zulu', 'ä-umlaut', '\uE000-private', '😀-astral', 'delta', 'alpha/child'];
      await store.addToIndex(key, members.slice(0, 5));
      await store.addToIndex(key, members.slice(5));
      await store.addToIndex(key, ['alpha']);
      assert.equal(await store.indexSize(key), members.length, 'members are unique');
      const byBytes = [...members].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
      const seen: string[] = [];
      let after: string | undefined;
      for (let pages = 0; pages < 10; pages += 1) {
        const page = await store.scanIndex(key, { limit: 3, after });
        seen.push(...page.members);
        assert.ok(page.members.length <= 3);
        if (page.next === undefined) break;
        assert.equal(page.next, page.members.at(-1));
        after = page.next;
      }
      assert.deepEqual(seen, byBytes, 'every member once, in byte order');
      const all = await store.scanIndex(key, { limit: 100 });
      assert.deepEqual(all, { members: byBytes, next: undefined });
      const exact = await store.scanIndex(key, { limit: members.length });
      assert.equal(exact.next, undefined, 'no next when the page ends the index');

      assert.deepEqual((await store.scanIndex(key, { limit: 10, prefix: 'alp' })).members, ['alp', 'alpha', 'alpha/child']);
      assert.deepEqual(await store.scanIndex(key, { limit: 2, prefix: 'alp' }), { members: ['alp', 'alpha'], next: 'alpha' });
      assert.deepEqual(await store.scanIndex(key, { limit: 2, prefix: 'alp', after: 'alpha' }), { members: ['alpha/child'], next: undefined });
      assert.deepEqual((await store.scanIndex(key, { limit: 10, prefix: 'alp', after: 'a' })).members, ['alp', 'alpha', 'alpha/child'], 'after before the prefix');
      assert.deepEqual(await store.scanIndex(key, { limit: 10, prefix: 'omega' }), { members: [], next: undefined });
      assert.deepEqual((await store.scanIndex(key, { limit: 10, contains: 'lph' })).members, ['alpha', 'alpha/child']);
      assert.deepEqual((await store.scanIndex(key, { limit: 10, contains: 'a', prefix: 'ga' })).members, ['gamma']);
      assert.deepEqual((await store.scanIndex(key, { limit: 10, contains: 'umlaut' })).members, ['ä-umlaut']);
      assert.deepEqual((await store.scanIndex(key, { limit: 10, contains: '%' })).members, [], 'contains is plain text, not a pattern');

      await store.removeFromIndex(key, ['alpha', 'nothing']);
      assert.equal(await store.indexSize(key), members.length - 1);
      assert.ok(!(await store.scanIndex(key, { limit: 100 })).members.includes('alpha'));
      await store.removeFromIndex(key, members);
      assert.equal(await store.indexSize(key), 0);
      await store.set(key, 'a string now');
      assert.equal(await store.get(key), 'a string now', 'an emptied index is gone');
    });

    it('bounds the members one index search examines', async () => {
      const key = randomKey('index-budget');
      const members = Array.from({ length: 3000 }, (_, i) => `m${String(i).padStart(5, '0')}${i % 1000 === 999 ? '-match' : ''}`);
      await store.addToIndex(key, members);
      const first = await store.scanIndex(key, { limit: 10, contains: 'match', budget: 1500 });
      assert.deepEqual(first.members, ['m00999-match'], 'only the first 1,500 members were examined');
      assert.equal(first.next, 'm01499', 'continues after the last member examined');
      const second = await store.scanIndex(key, { limit: 10, contains: 'match', budget: 1500, after: first.next });
      assert.deepEqual(second.members, ['m01999-match', 'm02999-match']);
      const rest = second.next === undefined ? [] : (await store.scanIndex(key, { limit: 10, contains: 'match', after: second.next })).members;
      assert.deepEqual(rest, [], 'nothing after the range');
      const limited = await store.scanIndex(key, { limit: 2, contains: 'match' });
      assert.deepEqual(limited, { members: ['m00999-match', 'm01999-match'], next: 'm01999-match' });
      assert.deepEqual(await store.scanIndex(key, { limit: 2, contains: 'match', after: limited.next }), { members: ['m02999-match'], next: undefined });
      await assert.rejects(store.scanIndex(key, { limit: 0 }), RangeError);
    });

    it('keeps one type per key', async () => {
      const key = randomKey('type');
      await store.set(key, 'text');
      await assert.rejects(store.addToSet(key, 'a'));
      await assert.rejects(store.setMembers(key));
      await assert.rejects(store.appendToStream(key, [{ a: 'b' }], 10));
      await assert.rejects(store.addToIndex(key, ['a']));
      await assert.rejects(store.scanIndex(key, { limit: 1 }));
      assert.equal(await store.get(key), 'text');

      const setKey = randomKey('type-set');
      await store.addToSet(setKey, 'a');
      await assert.rejects(store.get(setKey));
      await assert.rejects(store.increment(setKey, 10));
      await store.set(setKey, 'now a string');
      assert.equal(await store.get(setKey), 'now a string', 'set overwrites any type');
    });

    it('publishes to every subscriber until they unsubscribe', async () => {
      const channel = randomKey('channel');
      const first: string[] = [];
      const second: string[] = [];
      const elsewhere: string[] = [];
      const unsubscribeFirst = await store.subscribe(channel, (message) => first.push(message));
      const unsubscribeSecond = await store.subscribe(channel, (message) => second.push(message));
      const unsubscribeElsewhere = await store.subscribe(randomKey('channel-other'), (message) =>
        elsewhere.push(message),
      );

      await store.publish(channel, 'one');
      await within(2000, () => first.length === 1 && second.length === 1);
      assert.deepEqual(first, ['one']);
      assert.deepEqual(second, ['one']);

      await unsubscribeFirst();
      await unsubscribeFirst();
      await store.publish(channel, 'two');
      await within(2000, () => second.length === 2);
      assert.deepEqual(second, ['one', 'two']);

      await unsubscribeSecond();
      await store.publish(channel, 'three');
      await sleep(150);
      assert.deepEqual(first, ['one']);
      assert.deepEqual(second, ['one', 'two']);
      assert.deepEqual(elsewhere, []);
      await unsubscribeElsewhere();
    });

    it('answers ping', async () => {
      await store.ping();
    });
  });
}

function randomKey(label: string): string {
  return `test:${label}:${randomUUID()}`;
}

/** Asserts a ttl is a little below `expected` (time passes between set and ttl). */
function assertTtlNear(actual: number | undefined, expected: number, message?: string): void {
  assert.ok(
    actual !== undefined && actual <= expected && actual >= expected - 2,
    `${message ?? 'ttl'}: expected about ${expected}, got ${actual}`,
  );
}

function compareStreamIds(a: string, b: string): number {
  const [aMs, aSeq] = a.split('-').map(Number) as [number, number];
  const [bMs, bSeq] = b.split('-').map(Number) as [number, number];
  return aMs - bMs || aSeq - bSeq;
}
