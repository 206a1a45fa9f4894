/**
 * Provider step: what fedgate hears from oidc-provider's events. Issued and
 * refused tokens and logouts are audited, refusals logged with their wire
 * error, and a store outage turns oidc-provider's 500 into a 503.
 */
import type Provider from 'oidc-provider';
import type { errors, KoaContextWithOIDC } from 'oidc-provider';
import { TOKEN_EXCHANGE_GRANT } from '../grants/token-types.ts';
import { sendUnavailable } from '../http/unavailable.ts';
import { isStoreUnavailable } from '../store/errors.ts';
import type { ProviderDeps } from './provider-parts.ts';

/** oidc-provider's events for requests it refused with an OAuth error (lib/helpers/initialize_app.js). */
const REFUSAL_EVENTS = [
  'authorization.error', 'grant.error', 'userinfo.error', 'device_authorization.error', 'code_verification.error',
  'device_resume.error', 'pushed_authorization_request.error', 'introspection.error', 'revocation.error',
  'registration_create.error', 'registration_read.error', 'registration_update.error', 'registration_delete.error',
  'end_session.error', 'end_session_confirm.error', 'backchannel.error',
] as const;

export function listenToProviderEvents(provider: Provider, deps: ProviderDeps): void {
  const { config, metrics, audit, logger } = deps;
  const clientIp = (ctx: KoaContextWithOIDC) => ctx.ip;
  provider.on('grant.success', (ctx: KoaContextWithOIDC) => {
    const grantType = String(ctx.oidc.params?.grant_type ?? 'unknown');
    metrics.tokenIssued(grantType);
    // Exchanges are audited in more detail (token.exchanged) by their handler.
    if (grantType === TOKEN_EXCHANGE_GRANT) return;
    const entities = ctx.oidc.entities as Record<string, { accountId?: string; scope?: string; resourceServer?: { audience?: string } } | undefined>;
    const token = entities.AccessToken ?? entities.ClientCredentials;
    const accountId = (entities.Account as { accountId?: string } | undefined)?.accountId ?? token?.accountId;
    // A routine event, written with the next batch (a busy token endpoint's events in large batches).
    audit.note({
      type: 'token.issued',
      actor: accountId ?? `client:${ctx.oidc.client?.clientId}`,
      outcome: 'success',
      ip: clientIp(ctx),
      client: ctx.oidc.client?.clientId,
      detail: { grant_type: grantType, scope: token?.scope, audience: token?.resourceServer?.audience },
    });
  });
  provider.on('grant.error', (ctx: KoaContextWithOIDC, err: errors.OIDCProviderError) => {
    void audit.record({
      type: 'token.failed',
      actor: ctx.oidc?.client ? `client:${ctx.oidc.client.clientId}` : 'anonymous',
      outcome: 'failure',
      ip: clientIp(ctx),
      client: ctx.oidc?.client?.clientId,
      detail: { grant_type: String(ctx.oidc?.params?.grant_type ?? ''), error: err.error },
    });
  });
  // Operators see why a client fails: every refusal is logged with its wire error and description (never
  // parameters or credentials). A device flow client polling before the user is done is not a refusal.
  const POLLING = new Set(['authorization_pending', 'slow_down']);
  const onRefusal = provider.on.bind(provider) as (event: string, listener: (ctx: KoaContextWithOIDC, err: errors.OIDCProviderError) => void) => unknown;
  for (const event of REFUSAL_EVENTS) {
    onRefusal(event, (ctx, err) => {
      const entry = {
        requestId: ctx.state?.requestId, route: ctx.oidc?.route, client: ctx.oidc?.client?.clientId,
        error: err.error, error_description: err.error_description,
      };
      if (POLLING.has(err.error)) logger.debug(entry, 'request refused');
      else logger.info(entry, 'request refused');
    });
  }
  provider.on('end_session.success', (ctx: KoaContextWithOIDC) => {
    void audit.record({ type: 'logout', actor: ctx.oidc.session?.accountId ?? 'anonymous', outcome: 'success', ip: clientIp(ctx), client: ctx.oidc.client?.clientId });
  });
  provider.on('server_error', (ctx: KoaContextWithOIDC, err: Error) => {
    // Emitted after oidc-provider wrote its generic 500 answer, before it is sent: the store's outage becomes a 503.
    if (isStoreUnavailable(err)) {
      sendUnavailable(ctx, config.store.retryAfterSeconds);
      logger.warn({ err: { message: err.message }, route: ctx.oidc?.route }, 'store unavailable: answered 503');
      return;
    }
    logger.error({ err: { message: err.message, name: err.name, stack: err.stack }, route: ctx.oidc?.route }, 'oidc-provider server_error');
  });
}
