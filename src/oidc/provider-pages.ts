/**
 * Provider configuration step: the pages oidc-provider renders itself,
 * fedgate's templates in its place (device flow, logout, error page).
 */
import type { Configuration } from 'oidc-provider';
import { respondWithError } from '../http/error-response.ts';
import { sendPage } from '../http/page.ts';
import { sendUnavailable } from '../http/unavailable.ts';
import { isStoreUnavailable } from '../store/errors.ts';
import { FedgateError } from '../util/errors.ts';
import * as pages from '../views/pages.ts';
import type { ProviderParts } from './provider-parts.ts';

type Features = NonNullable<Configuration['features']>;

/** The device flow (RFC 8628) with fedgate's user code, confirmation and success pages. */
export function deviceFlow(parts: ProviderParts): NonNullable<Features['deviceFlow']> {
  const { logger, config } = parts.deps;
  const lifetimes = config.lifetimes;
  return {
    enabled: true,
    charset: 'base-20',
    mask: '****-****',
    userCodeInputSource: async (ctx, form, _out, err) => {
      let error: pages.DeviceInputError | undefined;
      if (err && ('userCode' in err || err.name === 'NoCodeError')) error = 'invalid';
      else if (err && err.name === 'AbortedError') error = 'aborted';
      else if (err) error = 'other';
      // Koa's status is still its default 404 here; a re-rendered form with an error is a 400.
      const status = err ? Math.max(400, Math.min(499, (err as { statusCode?: number }).statusCode ?? 400)) : 200;
      sendPage(ctx, (nonce) => pages.deviceInputPage({ nonce, form, ...(error ? { error } : {}) }), status);
      const session = ctx.oidc.session;
      if (err && session && typeof session.exp !== 'number') {
        // oidc-provider's error path gives a session it never saved (a first visit) a new form secret and then
        // calls persist(), which throws for such a session (a 500). Saved here, the form shown also works.
        await session.save(lifetimes.session);
      }
      if (err && error === 'other') {
        logger.warn({ requestId: ctx.state?.requestId, route: ctx.oidc.route, error: (err as { error?: string }).error ?? err.name }, 'device verification request refused');
      }
    },
    userCodeConfirmSource: async (ctx, form, client, _deviceInfo, userCode) => {
      sendPage(ctx, (nonce) => pages.deviceConfirmPage({ nonce, form, clientName: client.clientName ?? client.clientId, userCode }));
    },
    successSource: async (ctx) => {
      const client = ctx.oidc.client;
      sendPage(ctx, (nonce) => pages.deviceSuccessPage({ nonce, clientName: client?.clientName ?? client?.clientId ?? 'your device' }));
    },
  };
}

/** RP-initiated logout with fedgate's confirmation and goodbye pages. */
export function rpInitiatedLogout(): NonNullable<Features['rpInitiatedLogout']> {
  return {
    enabled: true,
    logoutSource: async (ctx, form) => {
      sendPage(ctx, (nonce) => pages.logoutPage({ nonce, form, host: ctx.host }));
    },
    postLogoutSuccessSource: async (ctx) => {
      const client = ctx.oidc.client;
      const clientName = client?.clientName ?? client?.clientId;
      sendPage(ctx, (nonce) => pages.postLogoutPage({ nonce, ...(clientName ? { clientName } : {}) }));
    },
  };
}

/** oidc-provider's error page: fedgate's, and a 503 while the store is out. */
export function renderError(parts: ProviderParts): NonNullable<Configuration['renderError']> {
  const { config } = parts.deps;
  return async (ctx, out, err) => {
    if (isStoreUnavailable(err)) return sendUnavailable(ctx, config.store.retryAfterSeconds);
    // oidc-provider chose the code and description (generic for what it does not expose): fedgate's error page shows them.
    respondWithError(ctx, new FedgateError(out.error, out.error_description ?? '', { status: Math.max(ctx.status, 400), expose: true }), { format: 'page' });
  };
}
