import type { Logger } from 'pino';
import type { Store } from '../store/store.ts';

/** What happened; later features add their own types. */
export type AuditType =
  | 'login' | 'login.failed' | 'logout'
  | 'token.issued' | 'token.revoked'
  | 'client.registered' | 'client.updated' | 'client.deleted'
  | 'admin.change' | 'account.disabled' | 'account.enabled'
  | (string & {});

/** One audit event: who, what, when, from where, outcome. Never a token or secret. */
export interface AuditEvent {
  type: AuditType;
  /** Who acted: an account id, `client:<id>`, or `system`. */
  actor: string;
  outcome: 'success' | 'failure';
  /** Client address as seen by fedgate (after trusted proxies). */
  ip?: string | undefined;
  /** The OAuth client involved, if any. */
  client?: string | undefined;
  /** What was acted on (account, client, group, token id hash...). */
  target?: string | undefined;
  /** A short reason for failures, or details of the change (before/after). */
  detail?: Record<string, unknown> | undefined;
}

export interface StoredAuditEvent extends AuditEvent {
  id: string;
  time: string;
}

export const AUDIT_STREAM = 'audit:events';

/** Events wait at most this long before they are written. */
const FLUSH_INTERVAL_MS = 20;
/** A batch is written at once when it reaches this size. */
const MAX_BATCH = 256;

/**
 * The audit trail every feature writes to: logged at once, and appended to a
 * capped stream in the store in small batches (one round trip per batch
 * instead of one per event: at thousands of tokens a second the per-event
 * write was the largest cost on the token endpoint). Writing never throws
 * into the request that caused it.
 */
export class Audit {
  readonly #store: Store;
  readonly #logger: Logger;
  readonly #maxEvents: number;
  #queue: Array<Record<string, string>> = [];
  /** Settles when the queued batch is written; one promise per batch, not per event. */
  #queued: { promise: Promise<void>; settle: () => void } | undefined;
  #timer: NodeJS.Timeout | undefined;
  /** The last write in flight; batches are chained so they land in order. */
  #writing: Promise<void> = Promise.resolve();

  constructor(store: Store, logger: Logger, maxEvents: number) {
    this.#store = store;
    this.#logger = logger.child({ component: 'audit' });
    this.#maxEvents = maxEvents;
  }

  /** Records an event; resolves once its batch is stored (or its failure logged). */
  record(event: AuditEvent): Promise<void> {
    const stored = { time: new Date().toISOString(), ...event };
    if (this.#logger.isLevelEnabled('info')) this.#logger.info({ audit: stored }, `audit ${event.type} ${event.outcome}`);
    this.#queue.push({ event: JSON.stringify(stored) });
    if (!this.#queued) {
      let settle!: () => void;
      const promise = new Promise<void>((resolve) => { settle = resolve; });
      this.#queued = { promise, settle };
    }
    const { promise } = this.#queued;
    if (this.#queue.length >= MAX_BATCH) void this.flush();
    else if (!this.#timer) {
      this.#timer = setTimeout(() => void this.flush(), FLUSH_INTERVAL_MS);
      this.#timer.unref();
    }
    return promise;
  }

  /** Writes every queued event; resolves when all writes so far have finished. */
  flush(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const batch = this.#queue;
    const queued = this.#queued;
    if (batch.length === 0 || !queued) return this.#writing;
    this.#queue = [];
    this.#queued = undefined;
    this.#writing = this.#writing.then(async () => {
      try {
        await this.#store.appendToStream(AUDIT_STREAM, batch, this.#maxEvents);
      } catch (err) {
        this.#logger.error({ err: { message: (err as Error).message }, events: batch.length }, 'audit events could not be stored');
      } finally {
        queued.settle();
      }
    });
    return this.#writing;
  }

  /** The newest events, newest first (after writing what is queued). */
  async recent(count = 100): Promise<StoredAuditEvent[]> {
    await this.flush();
    const entries = await this.#store.readStream(AUDIT_STREAM, count);
    return entries.flatMap(({ id, fields }) => {
      try {
        return [{ id, ...JSON.parse(fields.event ?? '') as Omit<StoredAuditEvent, 'id'> }];
      } catch {
        return [];
      }
    });
  }
}
