/**
 * How replicas hear of data source changes: a version counter in the store
 * raised by every change, and an announcement on a pub/sub channel naming
 * the changed record. A replica applies an announcement whose version is
 * the next one, reloads everything on a gap, and compares versions on a
 * timer, because pub/sub does not replay what a reconnecting subscriber
 * missed (the same scheme as the policy's StoreWatcher).
 */
import { randomUUID } from 'node:crypto';
import type { Store } from '../store/store.ts';

/** The channel data source changes travel on. */
export const DATA_SOURCE_CHANNEL = 'datasource:changes';
/** Raised by every change. */
export const DATA_SOURCE_VERSION_KEY = 'datasource:version';

/** One announced change: the record with id `id` was written or deleted. */
export interface DataSourceChange {
  origin: string;
  version: number;
  id: string;
}

function parseChange(message: string): DataSourceChange | undefined {
  try {
    const change = JSON.parse(message) as DataSourceChange;
    if (typeof change.origin !== 'string' || !Number.isInteger(change.version) || typeof change.id !== 'string') return undefined;
    return change;
  } catch {
    return undefined;
  }
}

/** The version counter and channel of data source changes. */
export class ChangeFeed {
  /** This replica's id: its own announcements are not applied twice. */
  readonly origin = randomUUID();
  readonly #store: Store;
  #unsubscribe: (() => Promise<void>) | undefined;

  constructor(store: Store) {
    this.#store = store;
  }

  /** Subscribes; `handler` gets other replicas' changes. Resolves once messages are being received. */
  async start(handler: (change: DataSourceChange) => void): Promise<void> {
    this.#unsubscribe ??= await this.#store.subscribe(DATA_SOURCE_CHANNEL, (message) => {
      const change = parseChange(message);
      if (change && change.origin !== this.origin) handler(change);
    });
  }

  async close(): Promise<void> {
    const unsubscribe = this.#unsubscribe;
    this.#unsubscribe = undefined;
    await unsubscribe?.().catch(() => {});
  }

  /** The version in the store now. */
  async currentVersion(): Promise<number> {
    return Number((await this.#store.get<number>(DATA_SOURCE_VERSION_KEY)) ?? 0);
  }

  /** Raises the version and announces that record `id` changed; returns the new version. */
  async announce(id: string): Promise<number> {
    const version = await this.#store.increment(DATA_SOURCE_VERSION_KEY);
    await this.#store.publish(DATA_SOURCE_CHANNEL, JSON.stringify({ origin: this.origin, version, id } satisfies DataSourceChange));
    return version;
  }
}
