/**
 * Assembly step 5: the app's outermost layer, one per request (request id,
 * client address, the error boundary, latency and status), and what Koa
 * reports on its error event.
 */
import { randomUUID } from 'node:crypto';
import type Koa from 'koa';
import type { Context, Next } from 'koa';
import type { Config } from '../config/schema.ts';
import { clientAddressResolver } from '../http/client-address.ts';
import { respondWithError } from '../http/error-response.ts';
import { FedgateError } from '../util/errors.ts';
import { routeLabel } from '../http/route-label.ts';
import { sendUnavailable } from '../http/unavailable.ts';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import { isStoreUnavailable } from '../store/index.ts';

/** What Koa's cookies module throws when a Secure cookie would go out on a request it sees as plain HTTP. */
const INSECURE_COOKIE = 'Cannot send secure cookie over unencrypted connection';
const CLIENT_CONNECTION_CODES = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ERR_STREAM_PREMATURE_CLOSE']);

/**
 * Errors of the client's connection rather than of fedgate: Node's HTTP
 * parser refusing what followed a request on a keep-alive connection
 * (`HPE_*`), and connections the client reset or closed mid-answer. Koa
 * reports them on the app's error event when the response cannot finish.
 */
function isClientConnectionError(err: Error): boolean {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && (code.startsWith('HPE_') || CLIENT_CONNECTION_CODES.has(code));
}

/** Logs what Koa reports on its error event (errors no response could carry); the app stays silent otherwise. */
export function logAppErrors(app: Koa, logger: Logger): void {
  app.silent = true;
  app.on('error', (err: Error, ctx?: Context) => {
    if ((err as { expose?: boolean }).expose) return;
    if (isClientConnectionError(err)) {
      // The client's side of the connection failed (bytes that are no HTTP after a request on a keep-alive
      // connection, a reset): nothing went wrong here.
      logger.debug({ err: { message: err.message, code: (err as { code?: string }).code }, requestId: ctx?.state?.requestId }, 'client connection error');
      return;
    }
    logger.error({ err: { message: err.message, name: err.name, stack: err.stack }, requestId: ctx?.state?.requestId }, 'unhandled application error');
  });
}

/** Whether the replica is stopping (set by close()): it takes no new work. */
export interface Draining {
  draining: boolean;
}

/**
 * The outermost middleware: request id, the error boundary, latency and
 * status (one async frame instead of two on the hot path), around `inner`
 * (the dispatch to fedgate's parts and oidc-provider), which it calls itself
 * rather than through Koa's chain: one step less per request.
 */
export function requestBoundary(config: Config, logger: Logger, metrics: Metrics, state: Draining, inner: Koa.Middleware): Koa.Middleware {
  // The one client address (login throttling, audit, oidc-provider's events): right-most untrusted X-Forwarded-For hop.
  const clientAddress = clientAddressResolver(config);

  /** Anything that escapes a handler: a store outage is a 503, the rest goes to the one error writer (a generic server_error for what is not exposed). */
  const answerError = (ctx: Context, err: unknown) => {
    if (isStoreUnavailable(err)) return sendUnavailable(ctx, config.store.retryAfterSeconds);
    if (err instanceof Error && err.message === INSECURE_COOKIE) {
      // An https issuer's cookies are Secure, and Koa will not set one on what it sees as plain HTTP: the request
      // came over HTTP, or through a proxy that does not say it was HTTPS (X-Forwarded-Proto with trustProxy).
      logger.warn({ requestId: ctx.state.requestId, path: ctx.path, trustProxy: config.trustProxy }, 'a page of the https issuer was asked for over plain HTTP: the proxy in front must send X-Forwarded-Proto: https, with trustProxy set');
      const description = `This page must be opened over HTTPS (${config.issuer}). Behind a proxy, the proxy must tell fedgate so (X-Forwarded-Proto: https, with trustProxy set).`;
      return respondWithError(ctx, new FedgateError('invalid_request', description, { status: 400 }), { format: 'json-or-page' });
    }
    respondWithError(ctx, err, { format: 'json-or-page' });
  };

  return async (ctx: Context, next: Next) => {
    const start = performance.now();
    const requestId = randomUUID();
    ctx.state.requestId = requestId;
    // Koa would take the left-most X-Forwarded-For entry, which the client writes.
    if (config.trustProxy) ctx.request.ip = clientAddress(ctx.req);
    try {
      await inner(ctx, next);
    } catch (err) {
      answerError(ctx, err);
    }
    // Draining for a stop: the client opens its next connection elsewhere (no race with closing an idle one).
    if (state.draining && !ctx.headerSent) ctx.set('Connection', 'close');
    const ms = performance.now() - start;
    const route = routeLabel(ctx);
    const status = ctx.status;
    // The id goes out where someone may need to quote it: on failures (and in their log line and error page).
    // Sending it on every success measurably slowed the token endpoint (docs/performance.md).
    if (status >= 400 && !ctx.headerSent) ctx.set('X-Request-Id', requestId);
    metrics.observeRequest(route, ctx.method, status, ms / 1000);
    // The log entry is only built when it will be written (this runs on every request).
    if (status >= 500 || logger.isLevelEnabled('debug')) {
      const entry = { requestId, method: ctx.method, route, path: ctx.path, status, ms: Math.round(ms * 10) / 10 };
      if (status >= 500) logger.warn(entry, 'request failed');
      else logger.debug(entry, 'request');
    }
  };
}
