import { EventEmitter } from 'node:events';
import { DEFAULT_INDEX_BUDGET, type ConsumeResult, type IndexPage, type IndexQuery, type Store, type StreamRange } from './store.ts';
import { assertPositiveInteger, assertStreamId, assertTimestamp, compareStreamIds, compareUtf8, encode } from './values.ts';

/** Options of {@link MemoryStore}. */
export interface MemoryStoreOptions {
  /** Clock in milliseconds since the epoch; defaults to `Date.now`. Tests pin it. */
  now?: () => number;
  /** Called when a subscriber's handler throws; defaults to a no-op. */
  onError?: (err: Error) => void;
}

interface StreamEntry {
  id: string;
  fields: Record<string, string>;
}

type Entry =
  | { type: 'string'; value: string; expiresAt?: number }
  | { type: 'set'; members: Set<string>; expiresAt?: number }
  | { type: 'stream'; entries: StreamEntry[]; lastMs: number; lastSeq: number; expiresAt?: number }
  | { type: 'index'; index: SortedIndex; expiresAt?: number };

/**
 * A set kept in UTF-8 byte order. Changes are collected and applied on the
 * next read: a few by binary-search insertion, many by one sort, so that
 * seeding many members costs one sort, not one array shift each.
 */
class SortedIndex {
  readonly members = new Set<string>();
  #sorted: string[] = [];
  #added = new Set<string>();
  #removed = new Set<string>();

  add(member: string): void {
    if (this.members.has(member)) return;
    this.members.add(member);
    if (!this.#removed.delete(member)) this.#added.add(member);
  }

  remove(member: string): void {
    if (!this.members.delete(member)) return;
    if (!this.#added.delete(member)) this.#removed.add(member);
  }

  /** The members in order. */
  sorted(): string[] {
    if (this.#added.size + this.#removed.size > 64) {
      this.#sorted = [...this.members].sort(compareUtf8);
    } else {
      for (const member of this.#removed) this.#sorted.splice(this.firstAtOrAfter(member), 1);
      for (const member of this.#added) this.#sorted.splice(this.firstAtOrAfter(member), 0, member);
    }
    this.#added.clear();
    this.#removed.clear();
    return this.#sorted;
  }

  /** Index in the sorted array of the first member not before `member` (call after sorted()). */
  firstAtOrAfter(member: string): number {
    let low = 0;
    let high = this.#sorted.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if (compareUtf8(this.#sorted[mid]!, member) < 0) low = mid + 1;
      else high = mid;
    }
    return low;
  }
}

const SWEEP_INTERVAL_MS = 30_000;

/**
 * The embedded, in-process {@link Store}: one replica only, nothing survives
 * a restart. It mirrors the Redis semantics the Redis store relies on (one
 * type per key, lazy expiry, empty sets vanish, approximate stream ids) so
 * both pass the same contract tests.
 */
export class MemoryStore implements Store {
  readonly kind = 'memory' as const;

  readonly #entries = new Map<string, Entry>();
  /** Sealed sets: key to the end of the seal (ms). */
  readonly #seals = new Map<string, number>();
  readonly #bus = new EventEmitter();
  readonly #now: () => number;
  readonly #onError: (err: Error) => void;
  #sweepTimer: NodeJS.Timeout | undefined;

  constructor(options: MemoryStoreOptions = {}) {
    this.#now = options.now ?? Date.now;
    this.#onError = options.onError ?? (() => {});
    this.#bus.setMaxListeners(0);
    this.#sweepTimer = setInterval(() => this.#sweep(), SWEEP_INTERVAL_MS);
    this.#sweepTimer.unref();
  }

  async get<T = unknown>(key: string): Promise<T | undefined> {
    const entry = this.#live(key, 'string');
    return entry === undefined ? undefined : (JSON.parse(entry.value) as T);
  }

  async set(key: string, value: unknown, ttlSeconds?: number): Promise<void> {
    const encoded = encode(value);
    this.#entries.set(key, { type: 'string', value: encoded, expiresAt: this.#expiry(ttlSeconds) });
  }

  async setIfAbsent(key: string, value: unknown, ttlSeconds?: number): Promise<boolean> {
    const encoded = encode(value);
    const expiresAt = this.#expiry(ttlSeconds);
    if (this.#live(key) !== undefined) return false;
    this.#entries.set(key, { type: 'string', value: encoded, expiresAt });
    return true;
  }

  async replace(key: string, value: unknown): Promise<boolean> {
    const encoded = encode(value);
    const entry = this.#live(key);
    if (entry === undefined) return false;
    // Like SET XX KEEPTTL: overwrites whatever type was there.
    this.#entries.set(key, { type: 'string', value: encoded, expiresAt: entry.expiresAt });
    return true;
  }

  async compareAndSet(key: string, expected: unknown, value: unknown): Promise<boolean> {
    const before = encode(expected);
    const after = encode(value);
    const entry = this.#live(key);
    if (entry?.type !== 'string' || entry.value !== before) return false;
    entry.value = after;
    return true;
  }

  async acquireLock(key: string, owner: string, ttlSeconds: number): Promise<boolean> {
    return this.setIfAbsent(key, owner, ttlSeconds);
  }

  async renewLock(key: string, owner: string, ttlSeconds: number): Promise<boolean> {
    const expiresAt = this.#expiry(ttlSeconds);
    const entry = this.#live(key);
    if (entry?.type !== 'string' || entry.value !== encode(owner)) return false;
    entry.expiresAt = expiresAt;
    return true;
  }

  async releaseLock(key: string, owner: string): Promise<boolean> {
    const entry = this.#live(key);
    if (entry?.type !== 'string' || entry.value !== encode(owner)) return false;
    this.#entries.delete(key);
    return true;
  }

  async delete(key: string): Promise<boolean> {
    const existed = this.#live(key) !== undefined;
    this.#entries.delete(key);
    return existed;
  }

  async ttl(key: string): Promise<number | undefined> {
    const entry = this.#live(key);
    if (entry === undefined) return undefined;
    if (entry.expiresAt === undefined) return -1;
    // Rounded like Redis's TTL.
    return Math.round((entry.expiresAt - this.#now()) / 1000);
  }

  async consume<T = Record<string, unknown>>(key: string, at: number): Promise<ConsumeResult<T>> {
    assertTimestamp(at);
    const entry = this.#live(key, 'string');
    if (entry === undefined) return { outcome: 'absent' };
    const value: unknown = JSON.parse(entry.value);
    if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new TypeError(`the value at ${key} is not a JSON object`);
    const before = JSON.parse(entry.value) as T;
    if (Object.hasOwn(value, 'consumed')) return { outcome: 'already', value: before };
    // Property order as the Redis store's textual append leaves it.
    entry.value = encode({ ...value, consumed: at });
    return { outcome: 'consumed', value: before };
  }

  async addToSet(key: string, member: string, ttlSeconds?: number): Promise<boolean> {
    const wanted = this.#expiry(ttlSeconds);
    if (this.#sealed(key)) return false;
    const entry = this.#live(key, 'set');
    if (entry === undefined) {
      this.#entries.set(key, { type: 'set', members: new Set([member]), expiresAt: wanted });
      return true;
    }
    entry.members.add(member);
    if (wanted === undefined) {
      entry.expiresAt = undefined;
    } else if (entry.expiresAt !== undefined && entry.expiresAt < wanted) {
      // A persistent set stays persistent: the ttl is a lower bound only.
      entry.expiresAt = wanted;
    }
    return true;
  }

  async drainSet(key: string, sealSeconds?: number): Promise<string[]> {
    const until = this.#expiry(sealSeconds);
    const entry = this.#live(key, 'set');
    this.#entries.delete(key);
    if (until !== undefined && (this.#seals.get(key) ?? 0) < until) this.#seals.set(key, until);
    return entry === undefined ? [] : [...entry.members];
  }

  async removeFromSet(key: string, member: string): Promise<void> {
    const entry = this.#live(key, 'set');
    if (entry === undefined) return;
    entry.members.delete(member);
    // Redis deletes a set when its last member goes.
    if (entry.members.size === 0) this.#entries.delete(key);
  }

  async setMembers(key: string): Promise<string[]> {
    const entry = this.#live(key, 'set');
    return entry === undefined ? [] : [...entry.members];
  }

  async increment(key: string, ttlSeconds?: number): Promise<number> {
    const expiresAt = ttlSeconds === undefined ? undefined : this.#expiry(ttlSeconds);
    const entry = this.#live(key, 'string');
    if (entry === undefined) {
      this.#entries.set(key, { type: 'string', value: '1', expiresAt });
      return 1;
    }
    const current = Number(entry.value);
    if (!/^-?\d+$/.test(entry.value) || !Number.isSafeInteger(current + 1)) {
      throw new RangeError(`value at ${key} is not an integer or out of range`);
    }
    entry.value = String(current + 1);
    // A counter left without expiry (e.g. written by set) gets its window now.
    if (entry.expiresAt === undefined) entry.expiresAt = expiresAt;
    return current + 1;
  }

  async appendToStream(key: string, entries: ReadonlyArray<Record<string, string>>, maxLength: number): Promise<string[]> {
    assertPositiveInteger(maxLength, 'maxLength');
    if (entries.length === 0 || entries.some((fields) => Object.keys(fields).length === 0)) {
      throw new TypeError('a stream entry needs at least one field');
    }
    let stream = this.#live(key, 'stream');
    if (stream === undefined) {
      stream = { type: 'stream', entries: [], lastMs: 0, lastSeq: -1 };
      this.#entries.set(key, stream);
    }
    const ids: string[] = [];
    for (const fields of entries) {
      const now = this.#now();
      // Ids must increase even when the clock stands still or goes back.
      if (now > stream.lastMs) {
        stream.lastMs = now;
        stream.lastSeq = 0;
      } else {
        stream.lastSeq += 1;
      }
      const id = `${stream.lastMs}-${stream.lastSeq}`;
      stream.entries.push({ id, fields: { ...fields } });
      ids.push(id);
    }
    if (stream.entries.length > maxLength) stream.entries.splice(0, stream.entries.length - maxLength);
    return ids;
  }

  async readStream(key: string, count: number, range: StreamRange = {}): Promise<Array<{ id: string; fields: Record<string, string> }>> {
    assertPositiveInteger(count, 'count');
    const { before, newest, oldest } = range;
    if (before !== undefined) assertStreamId(before, 'before');
    if (newest !== undefined) assertStreamId(newest, 'newest');
    if (oldest !== undefined) assertStreamId(oldest, 'oldest');
    const entry = this.#live(key, 'stream');
    if (entry === undefined) return [];
    const found: Array<{ id: string; fields: Record<string, string> }> = [];
    for (let i = entry.entries.length - 1; i >= 0 && found.length < count; i -= 1) {
      const { id, fields } = entry.entries[i]!;
      if (before !== undefined && compareStreamIds(id, before, 'min') >= 0) continue;
      if (newest !== undefined && compareStreamIds(id, newest, 'max') > 0) continue;
      if (oldest !== undefined && compareStreamIds(id, oldest, 'min') < 0) break;
      found.push({ id, fields: { ...fields } });
    }
    return found;
  }

  async addToIndex(key: string, members: readonly string[]): Promise<void> {
    if (members.length === 0) return;
    let entry = this.#live(key, 'index');
    if (entry === undefined) {
      entry = { type: 'index', index: new SortedIndex() };
      this.#entries.set(key, entry);
    }
    for (const member of members) entry.index.add(member);
  }

  async removeFromIndex(key: string, members: readonly string[]): Promise<void> {
    const entry = this.#live(key, 'index');
    if (entry === undefined) return;
    for (const member of members) entry.index.remove(member);
    // Redis deletes a sorted set when its last member goes.
    if (entry.index.members.size === 0) this.#entries.delete(key);
  }

  async indexSize(key: string): Promise<number> {
    return this.#live(key, 'index')?.index.members.size ?? 0;
  }

  async scanIndex(key: string, query: IndexQuery): Promise<IndexPage> {
    const { after, prefix, contains, limit } = query;
    const budget = query.budget ?? DEFAULT_INDEX_BUDGET;
    assertPositiveInteger(limit, 'limit');
    assertPositiveInteger(budget, 'budget');
    const entry = this.#live(key, 'index');
    if (entry === undefined) return { members: [], next: undefined };
    const sorted = entry.index.sorted();
    let i = 0;
    if (prefix) i = entry.index.firstAtOrAfter(prefix);
    if (after !== undefined) {
      const afterAt = entry.index.firstAtOrAfter(after);
      i = Math.max(i, sorted[afterAt] === after ? afterAt + 1 : afterAt);
    }
    const members: string[] = [];
    // Without a filter every member examined is a match: the budget only bounds searches, as in the Redis store.
    const end = contains ? Math.min(sorted.length, i + budget) : sorted.length;
    for (; i < end; i += 1) {
      const member = sorted[i]!;
      if (prefix && !member.startsWith(prefix)) return { members, next: undefined };
      if (contains && !member.includes(contains)) continue;
      members.push(member);
      if (members.length === limit) {
        const following = sorted[i + 1];
        return { members, next: following !== undefined && (!prefix || following.startsWith(prefix)) ? member : undefined };
      }
    }
    return { members, next: i < sorted.length && (!prefix || sorted[i]!.startsWith(prefix)) ? sorted[i - 1] : undefined };
  }

  async publish(channel: string, message: string): Promise<void> {
    // On a later tick, like Redis: the publisher carries on before subscriber code runs.
    setImmediate(() => this.#bus.emit(channel, message));
  }

  async subscribe(channel: string, handler: (message: string) => void): Promise<() => Promise<void>> {
    // A wrapper per call, so the same handler subscribed twice is two subscriptions.
    const listener = (message: string): void => {
      try {
        handler(message);
      } catch (err) {
        this.#onError(err instanceof Error ? err : new Error(String(err)));
      }
    };
    this.#bus.on(channel, listener);
    let active = true;
    return async () => {
      if (!active) return;
      active = false;
      this.#bus.off(channel, listener);
    };
  }

  async ping(): Promise<void> {}

  async close(): Promise<void> {
    if (this.#sweepTimer !== undefined) clearInterval(this.#sweepTimer);
    this.#sweepTimer = undefined;
    this.#bus.removeAllListeners();
  }

  /** The unexpired entry at `key`; with `type`, a TypeError when it holds another type. */
  #live(key: string): Entry | undefined;
  #live<K extends Entry['type']>(key: string, type: K): Extract<Entry, { type: K }> | undefined;
  #live(key: string, type?: Entry['type']): Entry | undefined {
    const entry = this.#entries.get(key);
    if (entry === undefined) return undefined;
    if (entry.expiresAt !== undefined && entry.expiresAt <= this.#now()) {
      this.#entries.delete(key);
      return undefined;
    }
    if (type !== undefined && entry.type !== type) {
      throw new TypeError(`WRONGTYPE key ${key} holds a ${entry.type}, not a ${type}`);
    }
    return entry;
  }

  #sealed(key: string): boolean {
    const until = this.#seals.get(key);
    if (until === undefined) return false;
    if (until > this.#now()) return true;
    this.#seals.delete(key);
    return false;
  }

  #expiry(ttlSeconds: number | undefined): number | undefined {
    if (ttlSeconds === undefined) return undefined;
    assertPositiveInteger(ttlSeconds, 'ttlSeconds');
    return this.#now() + ttlSeconds * 1000;
  }

  #sweep(): void {
    const now = this.#now();
    for (const [key, entry] of this.#entries) {
      if (entry.expiresAt !== undefined && entry.expiresAt <= now) this.#entries.delete(key);
    }
    for (const [key, until] of this.#seals) {
      if (until <= now) this.#seals.delete(key);
    }
  }
}
