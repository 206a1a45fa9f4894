import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { membershipRequests, MAX_OPEN_PER_OWNER, RequestError } from '../../src/accounts/requests.ts';
import { MemoryStore, RedisStore } from '../../src/store/index.ts';
import type { Store } from '../../src/store/store.ts';
import { deleteRedisPrefix, REDIS_URL } from '../support/harness.ts';

/** Membership requests on both stores: asked once while pending, decided once however many decide at once. */
const redisPrefix = `fedgate-test-${randomBytes(6).toString('hex')}:`;
for (const [kind, make, prefix] of [
  ['memory', () => new MemoryStore(), undefined],
  ['redis', () => new RedisStore({ url: REDIS_URL, keyPrefix: redisPrefix }), redisPrefix],
] as Array<[string, () => Store, string | undefined]>) {
  describe(`membership requests (${kind} store)`, () => {
    const store = make();
    after(async () => {
      await store.close();
      if (prefix) await deleteRedisPrefix(prefix);
    });
    const book = membershipRequests(store);
    const ask = (accountId: string, group: string) => book.create({ accountId, username: accountId, group, reason: 'research' });
    const code = (c: RequestError['code']) => (err: unknown) => err instanceof RequestError && err.code === c;

    it('refuses the same request while it is pending, and takes it again once decided', async () => {
      const first = await ask('a1', '/atlas');
      await assert.rejects(ask('a1', '/atlas'), code('duplicate'));
      await book.decide(first.id, 'rejected', 'manager', 'not now');
      const second = await ask('a1', '/atlas');
      assert.notEqual(second.id, first.id);
      assert.deepEqual((await book.forOwner('a1')).map((r) => r.status).sort(), ['pending', 'rejected']);
    });

    it('decides a request once when ten deciders race', async () => {
      const request = await ask('a2', '/cms');
      let applied = 0;
      const results = await Promise.allSettled(Array.from({ length: 10 }, (_, i) =>
        book.decide(request.id, i % 2 ? 'approved' : 'rejected', `manager-${i}`, undefined, async () => { applied += 1; })));
      assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
      assert.ok(results.filter((r) => r.status === 'rejected').every((r) => code('not_pending')((r as PromiseRejectedResult).reason)));
      assert.equal(applied, 1, 'the membership is granted once');
      assert.equal((await book.list('pending')).some((r) => r.id === request.id), false);
      const decided = (await book.get(request.id))!;
      assert.ok(decided.status === 'approved' || decided.status === 'rejected');
      assert.ok(((await store.ttl(`membership-request:${request.id}`)) ?? 0) > 0, 'a decided request expires');
    });

    it('bounds the pending requests of one owner', async () => {
      for (let i = 0; i < MAX_OPEN_PER_OWNER; i += 1) await ask('a3', `/g${i}`);
      await assert.rejects(ask('a3', '/one-more'), code('duplicate'));
    });

    it('answers unknown and malformed ids with nothing', async () => {
      assert.equal(await book.get('../../etc'), undefined);
      await assert.rejects(book.decide('00000000-0000-0000-0000-000000000000', 'approved', 'x'), code('not_found'));
    });
  });
}
