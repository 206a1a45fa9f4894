import { MemoryStore } from './memory-store.ts';
import { RedisStore } from './redis-store.ts';
import type { Store } from './store.ts';

export type { Store } from './store.ts';
export { MemoryStore } from './memory-store.ts';
export type { MemoryStoreOptions } from './memory-store.ts';
export { RedisStore } from './redis-store.ts';
export type { RedisStoreOptions } from './redis-store.ts';

/** Options of {@link createStore}. */
export interface CreateStoreOptions {
  /** A Redis URL (see {@link RedisStoreOptions.url}); without it the store is in-process memory. */
  redisUrl?: string;
  /** Prefix of every Redis key and channel; default `fedgate:`. Ignored by the memory store. */
  keyPrefix?: string;
  /** Receives connection errors and errors thrown by subscribers. */
  onError?: (err: Error) => void;
}

/**
 * The store for this deployment: Redis when `redisUrl` is set (required
 * with more than one replica), else the embedded memory store.
 */
export function createStore(options: CreateStoreOptions): Store {
  if (options.redisUrl !== undefined && options.redisUrl !== '') {
    return new RedisStore({
      url: options.redisUrl,
      ...(options.keyPrefix === undefined ? {} : { keyPrefix: options.keyPrefix }),
      ...(options.onError === undefined ? {} : { onError: options.onError }),
    });
  }
  return new MemoryStore(options.onError === undefined ? {} : { onError: options.onError });
}
