/**
 * How data source changes reach every replica: the store's change feed
 * (`datasource:version`, channel `datasource:changes`), applied in order,
 * with a full reload on a gap and a version check every
 * `policies.pollSeconds` as the safety net.
 */
import type { Logger } from '../observability/logger.ts';
import { ChangeFeed, type Announced } from '../store/change-feed.ts';
import type { Store } from '../store/store.ts';
import type { AppliedDataSources } from './applied.ts';
import type { DataSourceRecords, StoredDataSource } from './records.ts';

/** The channel data source changes travel on: `{origin, version, id}`, the record with id `id` was written or deleted. */
export const DATA_SOURCE_CHANNEL = 'datasource:changes';
/** Raised by every change. */
export const DATA_SOURCE_VERSION_KEY = 'datasource:version';

/** Keeps this replica's applied data sources in step with the store. */
export class DataSourceSync {
  readonly #feed: ChangeFeed<{ id: string }>;
  readonly #records: DataSourceRecords;
  readonly #applied: AppliedDataSources;
  readonly #logger: Logger;
  #seenVersion = 0;
  #reloading: Promise<void> | undefined;

  constructor(store: Store, records: DataSourceRecords, applied: AppliedDataSources, logger: Logger) {
    this.#feed = new ChangeFeed(store, {
      channel: DATA_SOURCE_CHANNEL,
      versionKey: DATA_SOURCE_VERSION_KEY,
      parse: (message) => (typeof message.id === 'string' ? { id: message.id } : undefined),
    });
    this.#records = records;
    this.#applied = applied;
    this.#logger = logger;
  }

  /** Starts hearing other replicas' changes. */
  listen(): Promise<void> {
    return this.#feed.start((change) => this.#onChange(change));
  }

  /** Starts the periodic version check. */
  poll(intervalMs: number): void {
    this.#feed.pollVersion(intervalMs, () => this.#seenVersion, () => this.reload(),
      (err) => this.#logger.warn({ err: { message: err.message } }, 'data source version check failed; keeping the current data sources'));
  }

  close(): Promise<void> {
    return this.#feed.close();
  }

  /** Loads every stored record again and applies the differences. */
  reload(): Promise<void> {
    // Concurrent triggers (a gap and the poll) share one reload.
    this.#reloading ??= (async () => {
      try {
        const version = await this.#feed.currentVersion();
        const loaded = await this.#records.readAll();
        const next = new Map<string, StoredDataSource>();
        for (const record of loaded) if (record?.id && record.spec) next.set(record.id, record);
        this.#applied.replaceAll(next);
        this.#seenVersion = Math.max(this.#seenVersion, version);
      } finally {
        this.#reloading = undefined;
      }
    })();
    return this.#reloading;
  }

  /** Announces a local change to the record with id `id`; reloads when other changes came in between. */
  async commit(id: string): Promise<void> {
    const version = await this.#feed.announce({ id });
    if (version === this.#seenVersion + 1) this.#seenVersion = version;
    else await this.reload();
  }

  #onChange(change: { id: string } & Announced): void {
    if (change.version <= this.#seenVersion) return;
    if (change.version !== this.#seenVersion + 1) {
      this.reload().catch((err: Error) => this.#logger.error({ err: { message: err.message } }, 'data source reload failed; keeping the current data sources'));
      return;
    }
    this.#seenVersion = change.version;
    this.#records.read(change.id).then((record) => {
      if (record?.spec) this.#applied.apply(record);
      else this.#applied.withdrawId(change.id);
    }).catch((err: Error) => {
      this.#logger.warn({ err: { message: err.message } }, 'data source change could not be read; reloading');
      this.reload().catch(() => {});
    });
  }
}
