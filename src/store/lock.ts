/**
 * The one lock of fedgate, on the store: held by an owner token unique to
 * each holder, released by compare-and-delete (never another holder's lock,
 * even after this one's expired), and renewed while held, so that work
 * longer than the time to live (a large CSV import) keeps it. The time to
 * live only matters when a holder dies: its lock then frees itself.
 *
 * Store.acquireLock / renewLock / releaseLock are the primitives (one
 * atomic step each, in both store implementations); this module is how
 * every caller uses them.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Store } from './store.ts';

/** A lock this process holds. */
export interface HeldLock {
  readonly key: string;
  /** True once a renewal found the lock no longer ours (it expired while the store was unreachable, and another took it). */
  readonly lost: boolean;
  /** Stops renewing and releases the lock if still ours. Never throws: an unreleased lock expires. */
  release(): Promise<void>;
}

/** How long a lock lives without renewal (default 30 s); it is renewed every third of that while held. */
export interface LockOptions {
  ttlSeconds?: number;
  /** Called once when a renewal finds the lock taken by someone else. */
  onLost?: () => void;
}

const DEFAULT_TTL_SECONDS = 30;

/** Takes the lock `key` if free; undefined when another holder has it. */
export async function tryLock(store: Store, key: string, options: LockOptions = {}): Promise<HeldLock | undefined> {
  const ttlSeconds = options.ttlSeconds ?? DEFAULT_TTL_SECONDS;
  const owner = randomUUID();
  if (!(await store.acquireLock(key, owner, ttlSeconds))) return undefined;
  let lost = false;
  const renewal = setInterval(() => {
    store.renewLock(key, owner, ttlSeconds).then((ours) => {
      if (ours || lost) return;
      lost = true;
      clearInterval(renewal);
      options.onLost?.();
    }, () => {
      // The store did not answer: the next renewal tries again before the lock can expire.
    });
  }, Math.max(1, ttlSeconds * 1000 / 3));
  renewal.unref();
  let released = false;
  return {
    key,
    get lost() { return lost; },
    async release() {
      if (released) return;
      released = true;
      clearInterval(renewal);
      await store.releaseLock(key, owner).catch(() => {});
    },
  };
}

/**
 * Runs `work` holding the lock `key`, waiting up to `waitMs` for it
 * (polling every 25 ms); throws `busy()` when it stays taken.
 */
export async function withLock<T>(
  store: Store, key: string, options: LockOptions & { waitMs: number; busy: () => Error }, work: (lock: HeldLock) => Promise<T>,
): Promise<T> {
  const deadline = Date.now() + options.waitMs;
  let lock = await tryLock(store, key, options);
  while (!lock) {
    if (Date.now() >= deadline) throw options.busy();
    await sleep(25);
    lock = await tryLock(store, key, options);
  }
  try {
    return await work(lock);
  } finally {
    await lock.release();
  }
}
