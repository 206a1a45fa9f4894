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

/**
 * The audit trail every feature writes to: appended to a capped stream in the
 * store and logged. Writing never throws into the request that caused it.
 */
export class Audit {
  readonly #store: Store;
  readonly #logger: Logger;
  readonly #maxEvents: number;

  constructor(store: Store, logger: Logger, maxEvents: number) {
    this.#store = store;
    this.#logger = logger.child({ component: 'audit' });
    this.#maxEvents = maxEvents;
  }

  /** Records an event; resolves once stored (or once the failure is logged). */
  async record(event: AuditEvent): Promise<void> {
    const stored = { time: new Date().toISOString(), ...event };
    this.#logger.info({ audit: stored }, `audit ${event.type} ${event.outcome}`);
    try {
      // One JSON field per entry: a single argument is far cheaper to encode than one per attribute.
      await this.#store.appendToStream(AUDIT_STREAM, { event: JSON.stringify(stored) }, this.#maxEvents);
    } catch (err) {
      this.#logger.error({ err: { message: (err as Error).message }, type: event.type }, 'audit event could not be stored');
    }
  }

  /** The newest events, newest first. */
  async recent(count = 100): Promise<StoredAuditEvent[]> {
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
