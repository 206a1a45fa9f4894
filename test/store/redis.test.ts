import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { RedisStore } from '../../src/store/redis-store.ts';
import { createStore } from '../../src/store/index.ts';
import { storeContract } from './contract.ts';

const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const keyPrefix = `fedgate-test-${randomBytes(6).toString('hex')}:`;

// A plain client, to look at what the store really wrote and to clean up.
const raw = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 2 });

after(async () => {
  if (raw.status === 'wait') await raw.connect();
  let cursor = '0';
  do {
    const [next, keys] = await raw.scan(cursor, 'MATCH', `${keyPrefix}*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) await raw.unlink(...keys);
  } while (cursor !== '0');
  await raw.quit();
});

storeContract('RedisStore', () => new RedisStore({ url, keyPrefix }));

describe('RedisStore specifics', { concurrency: true }, () => {
  it('gives each key its own hash tag unless the key brings one', async () => {
    const store = new RedisStore({ url, keyPrefix });
    try {
      const plain = `oidc:Session:${randomUUID()}`;
      const tagged = `{user-${randomUUID()}}:sessions`;
      const setKey = `set:${randomUUID()}`;
      const counter = `rate:${randomUUID()}`;
      await store.set(plain, { a: 1 });
      await store.set(tagged, 'x', 100);
      await store.addToSet(setKey, 'm', 100);
      await store.increment(counter, 100);

      assert.equal(await raw.get(`${keyPrefix}{${plain}}`), '{"a":1}');
      assert.equal(await raw.get(`${keyPrefix}${tagged}`), '"x"');
      assert.equal(await raw.exists(`${keyPrefix}{${tagged}}`), 0);
      assert.deepEqual(await raw.smembers(`${keyPrefix}{${setKey}}`), ['m']);
      assert.equal(await raw.get(`${keyPrefix}{${counter}}`), '1');
      assert.equal(await raw.exists(plain), 0, 'nothing is written without the prefix');

      // A seal shares its set's hash tag (one slot, one script on Cluster).
      const sealed = `grant:${randomUUID()}`;
      await store.drainSet(sealed, 100);
      const sealKeys = await raw.keys(`${keyPrefix}{${sealed}}*`);
      assert.equal(sealKeys.length, 1);
      assert.ok(sealKeys[0]!.startsWith(`${keyPrefix}{${sealed}}`));
      const taggedSet = `{user-${randomUUID()}}:grants`;
      await store.drainSet(taggedSet, 100);
      assert.equal((await raw.keys(`${keyPrefix}${taggedSet}*`)).length, 1, 'a caller-tagged set keeps its tag for its seal');
    } finally {
      await store.close();
    }
  });

  it('prefixes channel names', async () => {
    const store = new RedisStore({ url, keyPrefix });
    try {
      const channel = `events:${randomUUID()}`;
      const received: string[] = [];
      const unsubscribe = await store.subscribe(channel, (message) => received.push(message));
      assert.equal(await raw.publish(`${keyPrefix}${channel}`, 'hi'), 1);
      const deadline = Date.now() + 2000;
      while (received.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      assert.deepEqual(received, ['hi']);
      await unsubscribe();
      assert.equal(await raw.publish(`${keyPrefix}${channel}`, 'gone'), 0, 'the last unsubscribe ends the subscription');
    } finally {
      await store.close();
    }
  });

  it('fails fast instead of hanging when Redis is unreachable', async () => {
    const errors: Error[] = [];
    const store = new RedisStore({ url: 'redis://127.0.0.1:1', keyPrefix, onError: (err) => errors.push(err) });
    try {
      const started = Date.now();
      await assert.rejects(store.ping());
      await assert.rejects(store.get('anything'));
      const elapsed = Date.now() - started;
      assert.ok(elapsed < 3000, `rejected after ${elapsed} ms`);
      assert.ok(errors.length > 0, 'connection errors reach onError');
    } finally {
      await store.close();
    }
  });

  it('is what createStore returns with a Redis URL', async () => {
    const store = createStore({ redisUrl: url, keyPrefix });
    try {
      assert.ok(store instanceof RedisStore);
      assert.equal(store.kind, 'redis');
      await store.ping();
    } finally {
      await store.close();
    }
  });

  it('rejects URLs it cannot use', () => {
    assert.throws(() => new RedisStore({ url: 'http://127.0.0.1:6379' }), TypeError);
    assert.throws(() => new RedisStore({ url: 'redis-sentinel://127.0.0.1:26379' }), TypeError);
    assert.throws(() => new RedisStore({ url: 'redis://a:1,b:2' }), TypeError);
  });
});
