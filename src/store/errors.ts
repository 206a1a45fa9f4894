/**
 * The store could not answer: it did not reply within the deadline, the
 * connection is down, or it refused for a transient reason (loading,
 * failover). The outcome of the call is unknown: a write may still be
 * applied once the store answers again. Callers must never read it as
 * "absent" or "invalid"; the HTTP layers answer 503 with `Retry-After`
 * (src/http/unavailable.ts).
 */
import { FedgateError } from '../util/errors.ts';
export class StoreUnavailable extends FedgateError {
  readonly code = 'ERR_FEDGATE_STORE_UNAVAILABLE';

  constructor(message: string, options?: { cause?: unknown }) {
    // Answered by sendUnavailable (503, Retry-After, a fixed description): the message stays in the logs.
    super('temporarily_unavailable', message, { status: 503, expose: false, cause: options?.cause });
  }
}

/** True for a {@link StoreUnavailable}, also when it is the `cause` of another error (a library wrapping it). */
export function isStoreUnavailable(err: unknown): boolean {
  for (let current = err, depth = 0; current instanceof Error && depth < 4; current = current.cause, depth += 1) {
    if (current instanceof StoreUnavailable) return true;
  }
  return false;
}

/**
 * For `.catch()` on a lookup whose failure means "not found": a lookup that
 * could not reach the store is not a miss, so {@link StoreUnavailable} is
 * thrown on (the request answers 503) and anything else reads as absent.
 */
export function absentUnlessUnavailable(err: unknown): undefined {
  if (isStoreUnavailable(err)) throw err;
  return undefined;
}
