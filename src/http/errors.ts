/**
 * fedgate's one error model: every error fedgate throws on purpose is a
 * {@link FedgateError} (its wire code, HTTP status, whether its message may
 * be shown to the caller, and the headers its answer carries), and every
 * error answer is written by {@link respondWithError}: OAuth-style JSON
 * `{error, error_description}` (RFC 6749 §5.2, RFC 6750 §3) or, for
 * browsers, the error page with the headers of every fedgate page (nonce
 * CSP, no framing, no caching).
 *
 * As in oidc-provider, anything that is not an exposed error (a bug, a
 * library failing) is answered as a generic `server_error` 500 without its
 * message or stack, and reported once on the app's `error` event (which
 * logs it). oidc-provider's own errors stay oidc-provider's: it writes them.
 */
import type { Context, Middleware, Next } from 'koa';
import * as pages from '../views/pages.ts';
import { sendPage } from './page.ts';

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

/** The generic answer to anything that is not an exposed error. */
export const SERVER_ERROR = 'server_error';
const SERVER_ERROR_DESCRIPTION = 'The server could not complete the request.';

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

/**
 * How an answer is written: always JSON (APIs), always the page (browser
 * routes), or either by `Accept`, the first named winning a tie (`*∕*`).
 */
export type ErrorFormat = 'json' | 'page' | 'json-or-page' | 'page-or-json';

/** Options of {@link respondWithError} and {@link errorResponder}. */
export interface RespondOptions {
  format: ErrorFormat;
  /**
   * The description of an exposed 4xx error thrown by a library (a body
   * parser's "request entity too large"); its own message by default. Its
   * code is always `invalid_request`.
   */
  unreadable?: string;
}

/** True when this request gets the page. */
function wantsPage(ctx: Context, format: ErrorFormat): boolean {
  switch (format) {
    case 'json': return false;
    case 'page': return true;
    case 'json-or-page': return ctx.accepts('json', 'html') === 'html';
    case 'page-or-json': return ctx.accepts('html', 'json') !== 'json';
  }
}

/** A library's own client error (http-errors: `status` 4xx with `expose`), such as a body parser's refusal. */
function foreignClientError(err: unknown): { status: number; message: string } | undefined {
  if (err instanceof FedgateError || !(err instanceof Error)) return undefined;
  const { status, expose } = err as { status?: unknown; expose?: unknown };
  return expose && typeof status === 'number' && status >= 400 && status < 500 ? { status, message: err.message } : undefined;
}

/**
 * The error as it is answered: an exposed {@link FedgateError} as it is, a
 * library's client error as `invalid_request`, anything else as a generic
 * `server_error` 500 (reported once on the app's `error` event: logged with
 * its stack, which the answer never carries).
 */
function answerable(ctx: Context, err: unknown, unreadable: string | undefined): FedgateError {
  if (isExposed(err)) return err;
  const foreign = foreignClientError(err);
  if (foreign) return new FedgateError('invalid_request', unreadable ?? foreign.message, { status: foreign.status });
  ctx.app.emit('error', err, ctx);
  return new FedgateError(SERVER_ERROR, SERVER_ERROR_DESCRIPTION, { status: 500, expose: true });
}

/**
 * Writes the answer to `err`: status, `Cache-Control: no-store`, the
 * error's headers, and the JSON body or the error page. The one writer of
 * error answers.
 */
export function respondWithError(ctx: Context, err: unknown, options: RespondOptions): void {
  const answer = answerable(ctx, err, options.unreadable);
  const headers = answer.headers();
  if (headers) for (const [name, value] of Object.entries(headers)) ctx.set(name, value);
  const requestId = ctx.state?.requestId as string | undefined;
  if (wantsPage(ctx, options.format)) {
    sendPage(ctx, (nonce) => answer.page?.(nonce, requestId) ?? pages.errorPage({
      nonce, error: answer.error, description: answer.description,
      ...(answer.title ? { title: answer.title } : {}), ...(requestId ? { requestId } : {}),
    }), answer.status);
    return;
  }
  ctx.status = answer.status;
  ctx.set('Cache-Control', 'no-store');
  ctx.body = { error: answer.error, error_description: answer.description, ...answer.fields() };
}

/**
 * The error middleware of a part of fedgate: what the handlers after it
 * throw is answered in `format`. Exposed errors and libraries' client
 * errors are answered here; anything else goes on to the application's
 * boundary (src/app.ts), which answers store outages with 503 and the rest
 * with a generic 500, reported once.
 */
export function errorResponder(options: RespondOptions): Middleware {
  return async (ctx: Context, next: Next) => {
    try {
      await next();
    } catch (err) {
      if (!isExposed(err) && !foreignClientError(err)) throw err;
      respondWithError(ctx, err, options);
    }
  };
}
