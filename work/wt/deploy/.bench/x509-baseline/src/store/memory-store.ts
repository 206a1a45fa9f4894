import { EventEmitter } from 'node:events';
import type { Store } from './store.ts';
import { assertPositiveInteger, encode } from './values.ts';

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
  | { type: 'stream'; entries: StreamEntry[]; lastMs: number; lastSeq: number; expiresAt?: number };

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

  async addToSet(key: string, member: string, ttlSeconds?: number): Promise<void> {
    const wanted = this.#expiry(ttlSeconds);
    const entry = this.#live(key, 'set');
    if (entry === undefined) {
      this.#entries.set(key, { type: 'set', members: new Set([member]), expiresAt: wanted });
      return;
    }
    entry.members.add(member);
    if (wanted === undefined) {
      entry.expiresAt = undefined;
    } else if (entry.expiresAt !== undefined && entry.expiresAt < wanted) {
      // A persistent set stays persistent: the ttl is a lower bound only.
      entry.expiresAt = wanted;
    }
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

  async readStream(key: string, count: number): Promise<Array<{ id: string; fields: Record<string, string> }>> {
    assertPositiveInteger(count, 'count');
    const entry = this.#live(key, 'stream');
    if (entry === undefined) return [];
    return entry.entries
      .slice(-count)
      .reverse()
      .map(({ id, fields }) => ({ id, fields: { ...fields } }));
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
  }
}
