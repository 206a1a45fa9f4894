/**
 * The one writer of error answers and the error middleware built on it
 * (the error model: src/util/errors.ts): OAuth-style JSON `{error,
 * error_description}` (RFC 6749 §5.2, RFC 6750 §3) or, for browsers, the
 * error page with the headers of every fedgate page (nonce CSP, no framing,
 * no caching). Anything that is not an exposed error is answered as a
 * generic `server_error` 500 without its message or stack, and reported
 * once on the app's `error` event (which logs it).
 */
import type { Context, Middleware, Next } from 'koa';
import * as pages from '../views/pages.ts';
import { FedgateError, isExposed } from '../util/errors.ts';
import { sendPage } from './page.ts';

/** The generic answer to anything that is not an exposed error. */
export const SERVER_ERROR = 'server_error';
const SERVER_ERROR_DESCRIPTION = 'The server could not complete the request.';

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
