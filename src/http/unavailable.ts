import type { Context } from 'koa';
import * as pages from '../views/pages.ts';
import { sendPage } from './page.ts';

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
  ctx.set('Retry-After', String(retryAfterSeconds));
  if (ctx.accepts('json', 'html') === 'html') {
    const requestId = ctx.state?.requestId as string | undefined;
    sendPage(ctx, (nonce) => pages.errorPage({
      nonce, title: 'Temporarily unavailable', error: TEMPORARILY_UNAVAILABLE, description: DESCRIPTION, ...(requestId ? { requestId } : {}),
    }), 503);
    return;
  }
  ctx.status = 503;
  ctx.set('Cache-Control', 'no-store');
  ctx.body = { error: TEMPORARILY_UNAVAILABLE, error_description: DESCRIPTION };
}
