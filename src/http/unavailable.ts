import type { Context } from 'koa';
import { respondWithError } from './error-response.ts';
import { FedgateError } from '../util/errors.ts';

/** The OAuth error code of a temporary outage (RFC 6749 §4.1.2.1, §5.2 usage by extension). */
export const TEMPORARILY_UNAVAILABLE = 'temporarily_unavailable';
const DESCRIPTION = 'The service is temporarily unable to handle the request; try again shortly.';

/**
 * The one answer to a request that failed because the store is unavailable
 * ({@link StoreUnavailable}): 503 with `Retry-After`, never 500 and never a
 * 401 for a token that could not be checked. Browsers get the error page,
 * everything else the OAuth JSON error `temporarily_unavailable`. Resource
 * endpoints (userinfo, admin API, gateway) send no `WWW-Authenticate`
 * challenge: RFC 6750 §3 challenges are for credentials that were checked
 * and refused, which these were not.
 */
export function sendUnavailable(ctx: Context, retryAfterSeconds: number): void {
  ctx.remove('WWW-Authenticate');
  ctx.remove('Location');
  respondWithError(ctx, new FedgateError(TEMPORARILY_UNAVAILABLE, DESCRIPTION, {
    status: 503, expose: true, headers: { 'Retry-After': String(retryAfterSeconds) }, title: 'Temporarily unavailable',
  }), { format: 'json-or-page' });
}
