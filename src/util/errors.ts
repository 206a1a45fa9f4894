/**
 * fedgate's one error model: every error fedgate throws on purpose is a
 * {@link FedgateError} (its wire code, HTTP status, whether its message may
 * be shown to the caller, and the headers its answer carries), and every
 * error answer is written by respondWithError (src/http/error-response.ts): OAuth-style JSON
 * `{error, error_description}` (RFC 6749 §5.2, RFC 6750 §3) or, for
 * browsers, the error page with the headers of every fedgate page (nonce
 * CSP, no framing, no caching).
 *
 * As in oidc-provider, anything that is not an exposed error (a bug, a
 * library failing) is answered as a generic `server_error` 500 without its
 * message or stack, and reported once on the app's `error` event (which
 * logs it). oidc-provider's own errors stay oidc-provider's: it writes them.
 * (Its error handler reads `expose` too: an exposed FedgateError must not be
 * thrown inside oidc-provider's middleware, which would answer its message
 * as the error code.)
 *
 * This module imports nothing, so that every layer (the store, keys,
 * accounts) may derive its errors from it.
 */

/** Options of a {@link FedgateError}. */
export interface FedgateErrorOptions {
  /** The HTTP status of the answer; 500 by default. */
  status?: number;
  /** May the message be shown to the caller? By default when the status is a 4xx. */
  expose?: boolean;
  /** Headers the answer carries (`WWW-Authenticate`, `Retry-After`). */
  headers?: Readonly<Record<string, string>>;
  /** Members of the JSON body after `error` and `error_description` (`problems`, `reason`). */
  fields?: Readonly<Record<string, unknown>>;
  /** The heading of the error page. */
  title?: string;
  cause?: unknown;
}

/**
 * The root of fedgate's errors. `error` is the stable wire code (the
 * OAuth-style `error` member, `invalid_request`, `access_denied`, ...);
 * the message is the `error_description` and reaches the caller only when
 * `expose` is true (texts fedgate chose, never input echoed back or an
 * internal detail). Errors that only ever stay inside fedgate keep the
 * defaults: status 500, not exposed.
 */
export class FedgateError extends Error {
  /** The wire code. */
  readonly error: string;
  /** The HTTP status of the answer. */
  readonly status: number;
  readonly #expose: boolean | undefined;
  readonly #headers: Readonly<Record<string, string>> | undefined;
  readonly #fields: Readonly<Record<string, unknown>> | undefined;
  readonly title: string | undefined;

  constructor(error: string, description: string, options: FedgateErrorOptions = {}) {
    super(description, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.error = error;
    this.status = options.status ?? 500;
    this.#expose = options.expose;
    this.#headers = options.headers;
    this.#fields = options.fields;
    this.title = options.title;
  }

  /** Whether the message may be shown to the caller. */
  get expose(): boolean {
    return this.#expose ?? (this.status >= 400 && this.status < 500);
  }

  /** The `error_description`. */
  get description(): string {
    return this.message;
  }

  /** Headers of the answer (subclasses add a challenge computed late). */
  headers(): Readonly<Record<string, string>> | undefined {
    return this.#headers;
  }

  /** Members of the JSON body after `error` and `error_description`. */
  fields(): Readonly<Record<string, unknown>> | undefined {
    return this.#fields;
  }

  /** A page of its own for browsers, instead of the error page (`requestId` for support). */
  page?(nonce: string, requestId: string | undefined): string;
}

/** A refusal of a browser route, shown on the error page: its status, code and a description written for the user. */
export class PageError extends FedgateError {
  constructor(status: number, error: string, description: string) {
    super(error, description, { status, expose: true });
  }
}

/** True for an error fedgate threw on purpose with a message it may show. */
export function isExposed(err: unknown): err is FedgateError {
  return err instanceof FedgateError && err.expose;
}
