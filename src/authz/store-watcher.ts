import type { Model, Watcher, WatcherEx } from 'casbin';
import { ChangeFeed } from '../store/change-feed.ts';
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

/** The policy's fields of an announcement, or undefined. */
function parseChange(message: Record<string, unknown>): Omit<PolicyChange, 'origin' | 'version'> | undefined {
  const kind = message.kind as PolicyChange['kind'];
  if (!['delta', 'reload', 'groups', 'invalidate'].includes(kind)) return undefined;
  return { kind, ...(Array.isArray(message.add) ? { add: message.add as PolicyLine[] } : {}), ...(Array.isArray(message.remove) ? { remove: message.remove as PolicyLine[] } : {}) };
}

/**
 * A Casbin watcher on fedgate's store pub/sub (Redis through ioredis, or
 * the embedded store), over the store's change feed (src/store/change-feed.ts).
 * Written for fedgate because the published Redis watcher pins an old
 * ioredis major. It implements both Casbin interfaces: `Watcher` (any
 * change → the update callback reloads) and `WatcherEx` (deltas), and
 * fedgate's own `onChange` for deltas with versions.
 */
export class StoreWatcher implements Watcher, WatcherEx {
  readonly feed: ChangeFeed<Omit<PolicyChange, 'origin' | 'version'>>;
  #updateCallback: (() => void) | undefined;
  #changeHandler: ((change: PolicyChange) => void) | undefined;

  constructor(store: Store) {
    this.feed = new ChangeFeed(store, { channel: POLICY_CHANNEL, versionKey: POLICY_VERSION_KEY, parse: parseChange });
  }

  /** This replica's id: its own announcements are not applied twice. */
  get origin(): string {
    return this.feed.origin;
  }

  /** Subscribes to the channel; resolves once messages are being received. */
  async start(): Promise<void> {
    await this.feed.start((change) => {
      if (this.#changeHandler) this.#changeHandler(change);
      else this.#updateCallback?.();
    });
  }

  /** Ends the subscription. */
  async close(): Promise<void> {
    await this.feed.close();
  }

  /** fedgate's handler for changes made on other replicas. */
  onChange(handler: (change: PolicyChange) => void): void {
    this.#changeHandler = handler;
  }

  /** The version in the store now. */
  currentVersion(): Promise<number> {
    return this.feed.currentVersion();
  }

  /** Raises the version and announces a change (a large delta as a reload); returns the new version. */
  announce(kind: PolicyChange['kind'], add: PolicyLine[] = [], remove: PolicyLine[] = []): Promise<number> {
    const tooBig = add.length + remove.length > MAX_DELTA_LINES;
    return this.feed.announce(kind === 'delta' && !tooBig ? { kind, add, remove } : { kind: kind === 'delta' ? 'reload' : kind });
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
