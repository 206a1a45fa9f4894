import type { Logger } from 'pino';
import { randomUUID } from 'node:crypto';
import { isStoreUnavailable } from '../store/errors.ts';
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
  /**
   * Unique per recorded event. A write that timed out may still have been
   * applied, and its retry then stores the event again: readers keep one
   * entry per eventId.
   */
  eventId: string;
}

export const AUDIT_STREAM = 'audit:events';

/** What {@link Audit.page} returns. */
export interface AuditFilter {
  type?: string | undefined;
  /** Any of these actors (an account id and the username it has, say). */
  actor?: readonly string[] | undefined;
  /** Any of these targets. */
  target?: readonly string[] | undefined;
  /** Milliseconds since the epoch, inclusive. */
  since?: number | undefined;
  until?: number | undefined;
  /** A stream id: only older events. */
  before?: string | undefined;
  limit: number;
  /** Events examined at most (default 20,000). */
  budget?: number | undefined;
}

/** Stream entries read per round trip while paging. */
const PAGE_CHUNK = 500;

function parseEvent(id: string, fields: Record<string, string>): StoredAuditEvent | undefined {
  try {
    return { id, ...JSON.parse(fields.event ?? '') as Omit<StoredAuditEvent, 'id'> };
  } catch {
    return undefined;
  }
}

function matches(event: StoredAuditEvent, filter: AuditFilter): boolean {
  if (filter.type !== undefined && event.type !== filter.type && !(filter.type.endsWith('.') && event.type.startsWith(filter.type))) return false;
  if (filter.actor !== undefined && !filter.actor.includes(event.actor)) return false;
  if (filter.target !== undefined && (event.target === undefined || !filter.target.includes(event.target))) return false;
  return true;
}

let lastMs = 0;
let lastIso = '';
/** The current time as an ISO string, formatted once per millisecond (a token endpoint under load records several events a millisecond). */
function isoNow(): string {
  const ms = Date.now();
  if (ms !== lastMs) {
    lastMs = ms;
    lastIso = new Date(ms).toISOString();
  }
  return lastIso;
}

/** Events wait at most this long before they are written. */
const FLUSH_INTERVAL_MS = 20;
/**
 * Routine events ({@link Audit.note}: a token issued) may wait this long, so
 * that a busy token endpoint writes them in large batches: the write's fixed
 * cost (the script call, the socket write and its reply) is most of what an
 * audit event costs the token endpoint at moderate rates (docs/performance.md).
 */
const ROUTINE_FLUSH_MS = 250;
/** A batch is written at once when it reaches this size. */
const MAX_BATCH = 256;
/** Default of {@link AuditOptions.bufferBytes}. */
export const DEFAULT_AUDIT_BUFFER_BYTES = 4 * 1024 * 1024;
const MAX_RETRY_MS = 2000;

/** Why events were dropped (the `reason` label of the metric). */
export type AuditDropReason = 'buffer_full' | 'refused' | 'shutdown';

/** Options of {@link Audit}. */
export interface AuditOptions {
  /**
   * Serialised events (bytes) kept in memory for retry while the store is
   * unavailable; events recorded past this bound are dropped.
   */
  bufferBytes?: number;
  /** Counts dropped events (fedgate_audit_events_dropped_total). */
  onDropped?: (count: number, reason: AuditDropReason) => void;
  /** The first retry delay in milliseconds; it doubles up to 2 s. Default 250. */
  retryMs?: number;
  /** How long a routine event ({@link Audit.note}) may wait to be written, in milliseconds. Default {@link ROUTINE_FLUSH_MS}. */
  routineFlushMs?: number;
}

interface Entry {
  fields: { event: string };
  bytes: number;
}

/**
 * The audit trail every feature writes to: logged at once, and appended to a
 * capped stream in the store in small batches (one round trip per batch
 * instead of one per event: at thousands of tokens a second the per-event
 * write was the largest cost on the token endpoint). Writing never throws
 * into the request that caused it.
 *
 * While the store is unavailable the events stay in memory, in order, up to
 * `bufferBytes`, and are written again with backoff until the store takes
 * them. An event that cannot be kept (the buffer is full, the store refuses
 * it for good, or fedgate stops during the outage) is counted and logged
 * whole at error level, so the log still holds it.
 */
export class Audit {
  readonly #store: Store;
  readonly #logger: Logger;
  readonly #maxEvents: number;
  readonly #bufferBytes: number;
  readonly #onDropped: (count: number, reason: AuditDropReason) => void;
  readonly #firstRetryMs: number;
  readonly #routineFlushMs: number;
  /** Events not yet stored, oldest first (those being written included). */
  #buffer: Entry[] = [];
  #bytes = 0;
  /** Events recorded since the last flush; a flush is due at MAX_BATCH. */
  #unflushed = 0;
  /** Settles when the queued batch is written; one promise per batch, not per event. */
  #queued: { promise: Promise<void>; settle: () => void } | undefined;
  #timer: NodeJS.Timeout | undefined;
  /** When #timer fires (performance.now()). */
  #timerAt = 0;
  /** Set while the store is unavailable: the next attempt. */
  #retry: NodeJS.Timeout | undefined;
  #retryMs: number;
  /** The last write failed because the store is unavailable; the retry timer drives writes. */
  #outage = false;
  /** The last write in flight; batches are chained so they land in order. */
  #writing: Promise<void> = Promise.resolve();

  constructor(store: Store, logger: Logger, maxEvents: number, options: AuditOptions = {}) {
    this.#store = store;
    this.#logger = logger.child({ component: 'audit' });
    this.#maxEvents = maxEvents;
    this.#bufferBytes = options.bufferBytes ?? DEFAULT_AUDIT_BUFFER_BYTES;
    this.#onDropped = options.onDropped ?? (() => {});
    this.#firstRetryMs = options.retryMs ?? 250;
    this.#routineFlushMs = options.routineFlushMs ?? ROUTINE_FLUSH_MS;
    this.#retryMs = this.#firstRetryMs;
  }

  /** Events kept in memory, not yet stored. */
  get pending(): number {
    return this.#buffer.length;
  }

  /**
   * Records an event; resolves once its batch is stored, or kept for retry
   * (the store is unavailable), or dropped and logged. Written within
   * 20 ms, with whatever is buffered before it.
   */
  record(event: AuditEvent): Promise<void> {
    if (!this.#enqueue(event)) return Promise.resolve();
    if (!this.#queued) {
      let settle!: () => void;
      const promise = new Promise<void>((resolve) => { settle = resolve; });
      this.#queued = { promise, settle };
    }
    const { promise } = this.#queued;
    this.#due(FLUSH_INTERVAL_MS);
    return promise;
  }

  /**
   * Records a routine event that nothing waits for (a token issued): kept,
   * retried and dropped as {@link record}'s, in the same order, but written
   * within {@link ROUTINE_FLUSH_MS} (`routineFlushMs`), or sooner with the
   * next batch. Reading the trail ({@link page}, {@link recent}) writes it first.
   */
  note(event: AuditEvent): void {
    if (this.#enqueue(event)) this.#due(this.#routineFlushMs);
  }

  /** Buffers an event (logged at once); false when it needs no write of its own (dropped, or the store is out). */
  #enqueue(event: AuditEvent): boolean {
    const time = isoNow();
    const eventId = randomUUID();
    if (this.#logger.isLevelEnabled('info')) this.#logger.info({ audit: { time, eventId, ...event } }, `audit ${event.type} ${event.outcome}`);
    // The stored JSON is the event's own with `time` and `eventId` first, as `{ time, eventId, ...event }` would
    // give, without building that object: this runs for every token issued. (An AuditEvent always has fields.)
    const event_ = `{"time":"${time}","eventId":"${eventId}",${JSON.stringify(event).slice(1)}`;
    const entry: Entry = { fields: { event: event_ }, bytes: Buffer.byteLength(event_) };
    if (this.#bytes + entry.bytes > this.#bufferBytes) {
      this.#drop([entry], 'buffer_full');
      return false;
    }
    this.#buffer.push(entry);
    this.#bytes += entry.bytes;
    // During an outage the retry timer writes it; nothing waits for the store.
    return !this.#outage;
  }

  /** A flush at once when the batch is full, otherwise within `delayMs` (an earlier one already set stands). */
  #due(delayMs: number): void {
    this.#unflushed += 1;
    if (this.#unflushed >= MAX_BATCH) {
      void this.flush();
      return;
    }
    const at = performance.now() + delayMs;
    if (this.#timer && this.#timerAt <= at) return;
    clearTimeout(this.#timer);
    this.#timerAt = at;
    this.#timer = setTimeout(() => void this.flush(), delayMs);
    this.#timer.unref();
  }

  /** Writes every buffered event; resolves when all writes so far have finished (or failed and are kept). */
  flush(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    clearTimeout(this.#retry);
    this.#retry = undefined;
    this.#unflushed = 0;
    const queued = this.#queued;
    this.#queued = undefined;
    this.#writing = this.#writing.then(() => this.#drain()).finally(() => queued?.settle());
    return this.#writing;
  }

  /** A last attempt to store what is buffered (at shutdown); what remains is dropped and logged. */
  async close(): Promise<void> {
    await this.flush();
    clearTimeout(this.#retry);
    this.#retry = undefined;
    if (this.#buffer.length) this.#drop(this.#buffer.splice(0), 'shutdown');
    this.#bytes = 0;
  }

  async #drain(): Promise<void> {
    while (this.#buffer.length) {
      const batch = this.#buffer.slice(0, MAX_BATCH);
      try {
        await this.#store.appendToStream(AUDIT_STREAM, batch.map((e) => e.fields), this.#maxEvents);
      } catch (err) {
        if (isStoreUnavailable(err)) {
          this.#scheduleRetry();
          return;
        }
        // Refused for good (not a stream, a script error): retrying would not help.
        this.#logger.error({ err: { message: (err as Error).message }, events: batch.length }, 'audit events could not be stored');
        this.#take(batch.length);
        this.#drop(batch, 'refused');
        continue;
      }
      this.#take(batch.length);
      if (this.#outage) {
        this.#logger.info({ pending: this.#buffer.length }, 'the store is back: buffered audit events are being stored');
        this.#outage = false;
        this.#retryMs = this.#firstRetryMs;
      }
    }
  }

  #take(count: number): void {
    for (const entry of this.#buffer.splice(0, count)) this.#bytes -= entry.bytes;
  }

  #scheduleRetry(): void {
    if (!this.#outage) {
      this.#outage = true;
      this.#logger.warn({ pending: this.#buffer.length, bufferBytes: this.#bufferBytes }, 'the store is unavailable: audit events are kept in memory and retried');
    }
    this.#retry = setTimeout(() => void this.flush(), this.#retryMs);
    this.#retry.unref();
    this.#retryMs = Math.min(this.#retryMs * 2, MAX_RETRY_MS);
  }

  #drop(entries: Entry[], reason: AuditDropReason): void {
    this.#onDropped(entries.length, reason);
    // The event itself, so the log keeps what the store could not (events never carry secrets).
    for (const entry of entries) this.#logger.error({ audit: JSON.parse(entry.fields.event) as unknown, reason }, 'audit event dropped');
  }

  /**
   * One page of events, newest first, that match every filter given
   * (`type` exactly or, ending in `.`, as a prefix; `actor`, `target`
   * one of those given; `since`/`until` in milliseconds, inclusive), older than the
   * event id `before`. Reads the stream in chunks and stops after examining
   * `budget` events or about 50 ms, so a rare filter costs bounded time:
   * `next` is the id to continue before, undefined when the trail is done.
   */
  async page(filter: AuditFilter): Promise<{ events: StoredAuditEvent[]; next: string | undefined }> {
    await this.flush();
    const started = performance.now();
    const budget = filter.budget ?? 20_000;
    const events: StoredAuditEvent[] = [];
    const seen = new Set<string>();
    let before = filter.before;
    let examined = 0;
    for (;;) {
      const chunk = await this.#store.readStream(AUDIT_STREAM, PAGE_CHUNK, {
        before,
        newest: filter.until === undefined ? undefined : String(filter.until),
        oldest: filter.since === undefined ? undefined : String(filter.since),
      });
      for (const { id, fields } of chunk) {
        examined += 1;
        before = id;
        const event = parseEvent(id, fields);
        if (!event || !matches(event, filter)) continue;
        if (event.eventId && seen.has(event.eventId)) continue;
        if (event.eventId) seen.add(event.eventId);
        events.push(event);
        if (events.length === filter.limit) return { events, next: id };
      }
      if (chunk.length < PAGE_CHUNK) return { events, next: undefined };
      if (examined >= budget || performance.now() - started > 50) return { events, next: before };
    }
  }

  /** The newest events, newest first (after writing what is queued). */
  async recent(count = 100): Promise<StoredAuditEvent[]> {
    await this.flush();
    const entries = await this.#store.readStream(AUDIT_STREAM, count);
    const events = entries.flatMap(({ id, fields }) => {
      try {
        return [{ id, ...JSON.parse(fields.event ?? '') as Omit<StoredAuditEvent, 'id'> }];
      } catch {
        return [];
      }
    });
    // Delivery is at least once (see eventId): the oldest copy stands, as the event happened then.
    const seen = new Set<string>();
    return events.reverse().filter((e) => !e.eventId || (!seen.has(e.eventId) && !!seen.add(e.eventId))).reverse();
  }
}
