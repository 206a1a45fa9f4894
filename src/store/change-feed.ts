/**
 * How replicas hear of each other's changes to shared state (the policy, the
 * data sources): a version counter in the store raised by every change, and
 * an announcement on a pub/sub channel carrying the new version and what
 * changed. A follower applies an announcement whose version is the next one
 * it has seen, reloads everything on a gap, and compares versions on a
 * timer, because pub/sub does not replay what a reconnecting subscriber
 * missed. One feed per kind of state; what a change says is the caller's.
 */
import { randomUUID } from 'node:crypto';
import type { Store } from './store.ts';

/** What every announcement carries besides the caller's fields. */
export interface Announced {
  /** The replica that made the change (its own announcements are not applied twice). */
  origin: string;
  /** The store's version after the change. */
  version: number;
}

/** Where a feed lives and how its announcements read. */
export interface ChangeFeedOptions<T extends object> {
  channel: string;
  versionKey: string;
  /** The caller's fields of an announcement, or undefined when they are malformed (the message is ignored). */
  parse(message: Record<string, unknown>): T | undefined;
}

/** A version counter and channel of changes in the store. */
export class ChangeFeed<T extends object> {
  /** This replica's id. */
  readonly origin = randomUUID();
  readonly #store: Store;
  readonly #options: ChangeFeedOptions<T>;
  #unsubscribe: (() => Promise<void>) | undefined;
  #poll: NodeJS.Timeout | undefined;

  constructor(store: Store, options: ChangeFeedOptions<T>) {
    this.#store = store;
    this.#options = options;
  }

  /** Subscribes; `handler` gets other replicas' changes. Resolves once messages are being received. */
  async start(handler: (change: T & Announced) => void): Promise<void> {
    this.#unsubscribe ??= await this.#store.subscribe(this.#options.channel, (message) => {
      const change = this.#parse(message);
      if (change && change.origin !== this.origin) handler(change);
    });
  }

  /**
   * Every `intervalMs`, compares the store's version with `seen()` and
   * calls `reload` when they differ (the safety net under pub/sub);
   * `onError` hears a failed check.
   */
  pollVersion(intervalMs: number, seen: () => number, reload: () => Promise<void>, onError: (err: Error) => void): void {
    if (this.#poll) clearInterval(this.#poll);
    this.#poll = setInterval(() => {
      this.currentVersion().then((version) => (version !== seen() ? reload() : undefined)).catch(onError);
    }, intervalMs);
    this.#poll.unref();
  }

  /** Ends the subscription and the version checks; a store that is already gone has nothing left to end. */
  async close(): Promise<void> {
    if (this.#poll) clearInterval(this.#poll);
    this.#poll = undefined;
    const unsubscribe = this.#unsubscribe;
    this.#unsubscribe = undefined;
    await unsubscribe?.().catch(() => {});
  }

  /** The version in the store now. */
  async currentVersion(): Promise<number> {
    return Number((await this.#store.get<number>(this.#options.versionKey)) ?? 0);
  }

  /** Raises the version and announces `change`; returns the new version. */
  async announce(change: T): Promise<number> {
    const version = await this.#store.increment(this.#options.versionKey);
    await this.#store.publish(this.#options.channel, JSON.stringify({ ...change, origin: this.origin, version }));
    return version;
  }

  #parse(message: string): (T & Announced) | undefined {
    let raw: unknown;
    try {
      raw = JSON.parse(message);
    } catch {
      return undefined;
    }
    if (raw === null || typeof raw !== 'object') return undefined;
    const { origin, version } = raw as Record<string, unknown>;
    if (typeof origin !== 'string' || !Number.isInteger(version)) return undefined;
    const own = this.#options.parse(raw as Record<string, unknown>);
    return own ? { ...own, origin, version: version as number } : undefined;
  }
}
