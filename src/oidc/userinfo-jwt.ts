/**
 * Userinfo (OpenID Connect Core §5.3) with a JWT access token of fedgate's.
 *
 * Userinfo answers for the access token issued without a resource (opaque,
 * the one carrying `openid`). A JWT access token is issued for a resource
 * server (its `aud`) and carries that server's scopes, never `openid`;
 * oidc-provider, which does not store JWTs, answers such a token only with
 * "invalid token provided". This middleware, in front of the userinfo
 * endpoint, says why, and what to ask for instead (RFC 6750 §3.1).
 */
import { decodeJwt } from 'jose';
import type { Context, Next } from 'koa';
import type Provider from 'oidc-provider';
import { respondWithError } from '../http/error-response.ts';
import { FedgateError } from '../util/errors.ts';
import type { Logger } from '../observability/logger.ts';
import { isCompactJws, MAX_TOKEN_LENGTH } from '../tokens/own-tokens.ts';

/** The audience of a fedgate JWT access token in `value`, undefined for anything else (exchanged tokens are stored and answered by oidc-provider). */
function ownJwtAudience(value: string, issuer: string): string | undefined {
  if (value.length > MAX_TOKEN_LENGTH || !isCompactJws(value)) return undefined;
  try {
    const payload = decodeJwt(value);
    if (payload.iss !== issuer || payload.exchanged === true) return undefined;
    return Array.isArray(payload.aud) ? payload.aud.join(' ') : String(payload.aud ?? '');
  } catch {
    return undefined;
  }
}

/** The middleware, for `provider.use()`. */
export function userinfoJwtRefusal(provider: Provider, logger: Logger): (ctx: Context, next: Next) => Promise<void> {
  const path = provider.pathFor('userinfo');
  // Every request to oidc-provider passes here: the others go on without an async frame of their own.
  return (ctx, next) => (ctx.path === path ? refuseResourceJwt(ctx, next) : next());

  async function refuseResourceJwt(ctx: Context, next: Next): Promise<void> {
    const [scheme, token] = (ctx.headers.authorization ?? '').split(' ');
    const audience = scheme?.toLowerCase() === 'bearer' && token ? ownJwtAudience(token, provider.issuer) : undefined;
    if (audience === undefined) return next();
    const description = `this access token is a JWT for ${audience || 'a resource server'}; userinfo takes the access token issued with openid and without a resource (ask without resource or audience)`;
    logger.info({ requestId: ctx.state.requestId, route: 'userinfo', error: 'invalid_token', error_description: description }, 'request refused');
    respondWithError(ctx, new FedgateError('invalid_token', description, {
      status: 401,
      headers: { 'WWW-Authenticate': `Bearer realm="${provider.issuer}", error="invalid_token", error_description="${description.replace(/["\\]/g, '')}"` },
    }), { format: 'json' });
  }
}
