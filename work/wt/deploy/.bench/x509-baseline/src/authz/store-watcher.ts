import { randomUUID } from 'node:crypto';
import type { Model, Watcher, WatcherEx } from 'casbin';
import type { Store } from '../store/store.ts';
import type { PolicyLine } from './types.ts';

/** The pub/sub channel policy changes travel on. */
export const POLICY_CHANNEL = 'policy:changes';
/** A counter raised by every change: a replica that sees a gap reloads. */
export const POLICY_VERSION_KEY = 'policy:version';

/** Above this many lines a change is announced as a reload rather than a delta. */
const MAX_DELTA_LINES = 1000;

/**
 * One announced change:
 * - `delta`: lines added and removed (apply them);
 * - `reload`: the stored policy changed wholesale (load it again);
 * - `groups`: groups were created, renamed or deleted (the hierarchy changed);
 * - `invalidate`: memberships or account states changed (drop cached decisions and identities).
 */
export interface PolicyChange {
  origin: string;
  version: number;
  kind: 'delta' | 'reload' | 'groups' | 'invalidate';
  add?: PolicyLine[];
  remove?: PolicyLine[];
}

function parseChange(message: string): PolicyChange | undefined {
  try {
    const change = JSON.parse(message) as PolicyChange;
    if (typeof change.origin !== 'string' || !Number.isInteger(change.version)) return undefined;
    if (!['delta', 'reload', 'groups', 'invalidate'].includes(change.kind)) return undefined;
    return change;
  } catch {
    return undefined;
  }
}

/**
 * A Casbin watcher on fedgate's store pub/sub (Redis through ioredis, or
 * the embedded store). Written for fedgate because the published Redis
 * watcher pins an old ioredis major. It implements both Casbin interfaces:
 * `Watcher` (any change → the update callback reloads) and `WatcherEx`
 * (deltas), and fedgate's own `onChange` for deltas with versions.
 */
export class StoreWatcher implements Watcher, WatcherEx {
  /** This replica's id: its own announcements are not applied twice. */
  readonly origin = randomUUID();
  readonly #store: Store;
  #updateCallback: (() => void) | undefined;
  #changeHandler: ((change: PolicyChange) => void) | undefined;
  #unsubscribe: (() => Promise<void>) | undefined;

  constructor(store: Store) {
    this.#store = store;
  }

  /** Subscribes to the channel; resolves once messages are being received. */
  async start(): Promise<void> {
    this.#unsubscribe ??= await this.#store.subscribe(POLICY_CHANNEL, (message) => {
      const change = parseChange(message);
      if (!change || change.origin === this.origin) return;
      if (this.#changeHandler) this.#changeHandler(change);
      else this.#updateCallback?.();
    });
  }

  /** Ends the subscription; a store that is already gone has nothing left to end. */
  async close(): Promise<void> {
    const unsubscribe = this.#unsubscribe;
    this.#unsubscribe = undefined;
    await unsubscribe?.().catch(() => {});
  }

  /** fedgate's handler for changes made on other replicas. */
  onChange(handler: (change: PolicyChange) => void): void {
    this.#changeHandler = handler;
  }

  /** The version in the store now. */
  async currentVersion(): Promise<number> {
    return Number((await this.#store.get<number>(POLICY_VERSION_KEY)) ?? 0);
  }

  /** Raises the version and announces a change; returns the new version. */
  async announce(kind: PolicyChange['kind'], add: PolicyLine[] = [], remove: PolicyLine[] = []): Promise<number> {
    const version = await this.#store.increment(POLICY_VERSION_KEY);
    const tooBig = add.length + remove.length > MAX_DELTA_LINES;
    const change: PolicyChange = kind === 'delta' && !tooBig
      ? { origin: this.origin, version, kind, add, remove }
      : { origin: this.origin, version, kind: kind === 'delta' ? 'reload' : kind };
    await this.#store.publish(POLICY_CHANNEL, JSON.stringify(change));
    return version;
  }

  // Casbin's Watcher interface.

  setUpdateCallback(cb: () => void): void {
    this.#updateCallback = cb;
  }

  async update(): Promise<boolean> {
    await this.announce('reload');
    return true;
  }

  // Casbin's WatcherEx interface.

  async updateForAddPolicy(_sec: string, ptype: string, ...params: string[]): Promise<void> {
    await this.announce('delta', [{ ptype: ptype as PolicyLine['ptype'], values: params }]);
  }

  async updateForRemovePolicy(_sec: string, ptype: string, ...params: string[]): Promise<void> {
    await this.announce('delta', [], [{ ptype: ptype as PolicyLine['ptype'], values: params }]);
  }

  async updateForRemoveFilteredPolicy(): Promise<void> {
    await this.announce('reload');
  }

  async updateForSavePolicy(_model: Model): Promise<boolean> {
    await this.announce('reload');
    return true;
  }

  async updateForAddPolicies(_sec: string, ptype: string, ...rules: string[][]): Promise<void> {
    await this.announce('delta', rules.map((values) => ({ ptype: ptype as PolicyLine['ptype'], values })));
  }

  async updateForRemovePolicies(_sec: string, ptype: string, ...rules: string[][]): Promise<void> {
    await this.announce('delta', [], rules.map((values) => ({ ptype: ptype as PolicyLine['ptype'], values })));
  }
}
