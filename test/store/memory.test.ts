import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStore } from '../../src/store/memory-store.ts';
import { createStore } from '../../src/store/index.ts';
import { storeContract } from './contract.ts';

let now = Date.now();
storeContract('MemoryStore', () => new MemoryStore({ now: () => now }), {
  pinnedClock: {
    advance(ms) {
      now += ms;
    },
  },
});

describe('MemoryStore specifics', () => {
  it('delivers published messages asynchronously', async () => {
    const store = new MemoryStore();
    try {
      const received: string[] = [];
      await store.subscribe('channel', (message) => received.push(message));
      await store.publish('channel', 'hello');
      // publish has resolved, yet the handler may only run on a later tick.
      const seenSynchronously = received.length;
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(seenSynchronously, 0);
      assert.deepEqual(received, ['hello']);
    } finally {
      await store.close();
    }
  });

  it('keeps other subscribers going when a handler throws', async () => {
    const errors: Error[] = [];
    const store = new MemoryStore({ onError: (err) => errors.push(err) });
    try {
      const received: string[] = [];
      await store.subscribe('channel', () => {
        throw new Error('handler failed');
      });
      await store.subscribe('channel', (message) => received.push(message));
      await store.publish('channel', 'hello');
      await new Promise((resolve) => setImmediate(resolve));
      assert.deepEqual(received, ['hello']);
      assert.equal(errors[0]?.message, 'handler failed');
    } finally {
      await store.close();
    }
  });

  it('is what createStore returns without a Redis URL', async () => {
    const store = createStore({});
    try {
      assert.ok(store instanceof MemoryStore);
      assert.equal(store.kind, 'memory');
    } finally {
      await store.close();
    }
  });
});
