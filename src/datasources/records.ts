/**
 * Where data source records live in the store, and the lock that serialises
 * changes to them across replicas. Each operation touches one key, so Redis
 * Cluster needs no cross-slot commands:
 * - `datasource:ids`: set of record ids;
 * - `datasource:<id>`: the record (its validated spec, the policy lines it
 *   added, its introspection client id, timestamps);
 * - `datasource:lock`: serialises changes across replicas;
 * - `datasource:seeded`: names of configuration seeds already written once.
 */
import type { PolicyLine } from '../authz/types.ts';
import type { DataSourceSpec } from '../config/datasource-schema.ts';
import { withLock } from '../store/lock.ts';
import type { Store } from '../store/store.ts';
import { DataSourceError } from './errors.ts';

const IDS_KEY = 'datasource:ids';
const recordKey = (id: string) => `datasource:${id}`;
const LOCK_KEY = 'datasource:lock';
const SEEDED_KEY = 'datasource:seeded';
const LOCK_TTL_SECONDS = 30;
const LOCK_WAIT_MS = 10_000;

/** A data source as stored. */
export interface StoredDataSource {
  /** Stable id: a rename keeps the record. */
  id: string;
  spec: DataSourceSpec;
  /** The policy lines this data source added (update and delete change exactly these). */
  lines: PolicyLine[];
  introspectionClientId?: string;
  /** How it was created. */
  createdVia: ChangeContext['via'];
  createdAt: string;
  updatedAt: string;
}

/** Who makes a change, for the audit trail. */
export interface ChangeContext {
  /** An account id, `client:<id>`, `cli` or `config`. */
  actor: string;
  ip?: string | undefined;
  via: 'api' | 'cli' | 'config';
}

/** The data source records in the store. */
export class DataSourceRecords {
  readonly #store: Store;

  constructor(store: Store) {
    this.#store = store;
  }

  /** The record with id `id`, if any. */
  read(id: string): Promise<StoredDataSource | undefined> {
    return this.#store.get<StoredDataSource>(recordKey(id));
  }

  /** Every record listed in the id set, as stored (entries without a record read as undefined). */
  async readAll(): Promise<(StoredDataSource | undefined)[]> {
    const ids = await this.#store.setMembers(IDS_KEY);
    return Promise.all(ids.map((id) => this.read(id)));
  }

  /** Writes a new record and lists its id. */
  async insert(record: StoredDataSource): Promise<void> {
    await this.#store.set(recordKey(record.id), record);
    await this.#store.addToSet(IDS_KEY, record.id);
  }

  /** Overwrites an existing record. */
  async save(record: StoredDataSource): Promise<void> {
    await this.#store.set(recordKey(record.id), record);
  }

  /** Deletes a record and its id. */
  async drop(id: string): Promise<void> {
    await this.#store.delete(recordKey(id));
    await this.#store.removeFromSet(IDS_KEY, id);
  }

  /** Names of the configuration's seeds written before. */
  async seeded(): Promise<Set<string>> {
    return new Set(await this.#store.setMembers(SEEDED_KEY));
  }

  async markSeeded(name: string): Promise<void> {
    await this.#store.addToSet(SEEDED_KEY, name);
  }

  /** Runs `work` holding the cross-replica change lock; a busy lock is a `temporarily_unavailable` data source error. */
  locked<T>(work: () => Promise<T>): Promise<T> {
    const busy = () => new DataSourceError('temporarily_unavailable', 'another data source change is in progress; try again');
    return withLock(this.#store, LOCK_KEY, { ttlSeconds: LOCK_TTL_SECONDS, waitMs: LOCK_WAIT_MS, busy }, work);
  }
}

/** The stored data source records, read directly (the `keys rotate` command needs their token lifetimes). */
export async function readStoredDataSources(store: Store): Promise<StoredDataSource[]> {
  const records = await new DataSourceRecords(store).readAll();
  return records.filter((r): r is StoredDataSource => !!r?.spec);
}
