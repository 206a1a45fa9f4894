/**
 * The one storage interface of fedgate.
 *
 * The store knows no protocol and no policy: it holds JSON values under
 * string keys, optionally with a time to live, plus a few primitives that
 * callers compose (sets, counters, a capped stream, pub/sub). Every part of
 * fedgate talks to storage only through this interface; the Redis and the
 * embedded memory implementation pass the same contract tests
 * (test/store/contract.ts).
 *
 * Keys are plain strings such as `oidc:AccessToken:abc`. Every operation
 * touches exactly one key, so the Redis implementation can give each key
 * its own hash tag and run unchanged on Redis Cluster; callers that ever
 * need several keys in one slot put a `{tag}` in the key themselves and the
 * Redis store keeps it.
 */
export interface Store {
  /** `redis` or `memory`, for logs and readiness output. */
  readonly kind: 'redis' | 'memory';

  /** The JSON value at `key`, or undefined when absent or expired. */
  get<T = unknown>(key: string): Promise<T | undefined>;

  /**
   * Writes `value` (JSON-serialisable) at `key`. With `ttlSeconds` the key
   * expires after that many seconds (must be a positive integer); without it,
   * it never expires.
   */
  set(key: string, value: unknown, ttlSeconds?: number): Promise<void>;

  /** Like set, but only when `key` does not exist. True when written. */
  setIfAbsent(key: string, value: unknown, ttlSeconds?: number): Promise<boolean>;

  /**
   * Replaces the value of an existing key and keeps its remaining time to
   * live. False (and nothing written) when the key does not exist.
   */
  replace(key: string, value: unknown): Promise<boolean>;

  /** Deletes `key`. True when something was deleted. */
  delete(key: string): Promise<boolean>;

  /** Remaining time to live in seconds; -1 for no expiry; undefined when absent. */
  ttl(key: string): Promise<number | undefined>;

  /**
   * Adds `member` to the set at `key`. With `ttlSeconds` the set lives at
   * least that long from now (its expiry is only ever extended); without it
   * the set no longer expires.
   */
  addToSet(key: string, member: string, ttlSeconds?: number): Promise<void>;

  /** Removes `member` from the set at `key`. */
  removeFromSet(key: string, member: string): Promise<void>;

  /** All members of the set at `key` (empty when absent). */
  setMembers(key: string): Promise<string[]>;

  /**
   * Increments the counter at `key` and returns the new value. With
   * `ttlSeconds`, the first increment starts a window of that length; later
   * increments do not extend it (a fixed-window counter). Without it, the
   * counter never expires (a version number).
   */
  increment(key: string, ttlSeconds?: number): Promise<number>;

  /**
   * Appends entries, in order, to the capped stream at `key`, keeping about
   * the last `maxLength` entries; one round trip for the whole batch.
   * Returns the entry ids.
   */
  appendToStream(key: string, entries: ReadonlyArray<Record<string, string>>, maxLength: number): Promise<string[]>;

  /** The newest `count` entries of the stream at `key`, newest first. */
  readStream(key: string, count: number): Promise<Array<{ id: string; fields: Record<string, string> }>>;

  /** Publishes `message` on `channel` to every subscriber, on every replica. */
  publish(channel: string, message: string): Promise<void>;

  /**
   * Calls `handler` for each message published on `channel` from now on.
   * Resolves once the subscription is active; the returned function ends it.
   */
  subscribe(channel: string, handler: (message: string) => void): Promise<() => Promise<void>>;

  /** Resolves when the backing store answers; rejects otherwise. */
  ping(): Promise<void>;

  /** Releases connections and timers. */
  close(): Promise<void>;
}
