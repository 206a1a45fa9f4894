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

  /**
   * Replaces the value at `key` with `value`, keeping its time to live, only
   * if it still is `expected` (as `get` returned it): a compare-and-set for
   * read-modify-write updates that must not lose a concurrent change. False,
   * writing nothing, when the value changed meanwhile or the key is gone.
   */
  compareAndSet(key: string, expected: unknown, value: unknown): Promise<boolean>;

  /**
   * Takes the lock `key` for `owner` (a token unique to this holder) for
   * `ttlSeconds`, unless someone holds it. True when taken.
   */
  acquireLock(key: string, owner: string, ttlSeconds: number): Promise<boolean>;

  /** Extends the lock to `ttlSeconds` from now, if `owner` still holds it. False when it does not (expired, taken by another). */
  renewLock(key: string, owner: string, ttlSeconds: number): Promise<boolean>;

  /** Releases the lock if `owner` holds it (compare-and-delete: never another holder's). True when released. */
  releaseLock(key: string, owner: string): Promise<boolean>;

  /** Deletes `key`. True when something was deleted. */
  delete(key: string): Promise<boolean>;

  /** Remaining time to live in seconds; -1 for no expiry; undefined when absent. */
  ttl(key: string): Promise<number | undefined>;

  /**
   * Marks the JSON object at `key` as consumed, once: in one atomic step, on
   * any number of replicas, the first call sets its `consumed` property to
   * `at` (keeping the key's time to live) and answers `consumed`; every
   * later or concurrent call changes nothing and answers `already`. Both
   * carry the object as it was before the call. `absent` when nothing is
   * stored. This is how one-time artifacts (codes, refresh tokens, device
   * codes, initial access tokens, request URIs) are used exactly once.
   * A value that is not a JSON object is a TypeError-class misuse (rejects).
   */
  consume<T = Record<string, unknown>>(key: string, at: number): Promise<ConsumeResult<T>>;

  /**
   * Adds `member` to the set at `key`. With `ttlSeconds` the set lives at
   * least that long from now (its expiry is only ever extended); without it
   * the set no longer expires. Resolves false, adding nothing, while the
   * set is sealed ({@link Store.drainSet}); true otherwise.
   */
  addToSet(key: string, member: string, ttlSeconds?: number): Promise<boolean>;

  /**
   * Empties the set at `key` and returns the members it had, in one atomic
   * step: a member added concurrently is either returned or stays in the
   * set, never lost between a read and a delete. With `sealSeconds` the set
   * is also sealed for that long (a later seal only ever extends it): then
   * {@link Store.addToSet} on it adds nothing and resolves false, so a
   * writer that adds after the seal learns it, and one that added before is
   * among the members returned.
   */
  drainSet(key: string, sealSeconds?: number): Promise<string[]>;

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

  /**
   * The newest `count` entries of the stream at `key`, newest first. With
   * `range`, only entries with ids in it: `before` (exclusive, for paging
   * on from the last id read), `newest` and `oldest` (inclusive; an id, or
   * a time in milliseconds as `"<ms>"`).
   */
  readStream(key: string, count: number, range?: StreamRange): Promise<Array<{ id: string; fields: Record<string, string> }>>;

  /**
   * Adds `members` to the sorted index at `key`: a set kept in the order of
   * the members' UTF-8 bytes (a Redis sorted set whose scores are all 0).
   * Indexes are how lists too long to read whole are paged and searched.
   */
  addToIndex(key: string, members: readonly string[]): Promise<void>;

  /** Removes `members` from the sorted index at `key`; an emptied index vanishes. */
  removeFromIndex(key: string, members: readonly string[]): Promise<void>;

  /** How many members the sorted index at `key` has (0 when absent); constant time. */
  indexSize(key: string): Promise<number>;

  /**
   * Members of the sorted index at `key`, in order, that come after
   * `query.after` (exclusive), start with `query.prefix` and contain
   * `query.contains` (plain bytes, no pattern), up to `query.limit` of them.
   * At most `query.budget` members are examined (default 10,000): the work
   * of one call is bounded however rare the matches. `next` is the member
   * to continue after when more may follow, undefined when the range is done.
   */
  scanIndex(key: string, query: IndexQuery): Promise<IndexPage>;

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

/** What {@link Store.consume} found. */
export type ConsumeResult<T> =
  | { outcome: 'consumed'; value: T }
  | { outcome: 'already'; value: T }
  | { outcome: 'absent' };

/** Which entries {@link Store.readStream} returns. */
export interface StreamRange {
  /** Only entries older than this id (exclusive). */
  before?: string | undefined;
  /** Only entries with ids up to this one (inclusive); `"<ms>"` means the whole millisecond. */
  newest?: string | undefined;
  /** Only entries with ids from this one (inclusive); `"<ms>"` means the whole millisecond. */
  oldest?: string | undefined;
}

/** What {@link Store.scanIndex} looks for. */
export interface IndexQuery {
  after?: string | undefined;
  prefix?: string | undefined;
  contains?: string | undefined;
  /** Positive integer. */
  limit: number;
  /** Positive integer; default {@link DEFAULT_INDEX_BUDGET}. */
  budget?: number | undefined;
}

/** One page of a sorted index. */
export interface IndexPage {
  members: string[];
  /** Pass as `after` to continue; undefined when nothing follows. */
  next: string | undefined;
}

/** Members {@link Store.scanIndex} examines per call unless told otherwise. */
export const DEFAULT_INDEX_BUDGET = 10_000;
