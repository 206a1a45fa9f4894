/**
 * One registration per initial access token (RFC 7591 §3), decided in the
 * store. oidc-provider finds the token and lets the registration run; it
 * has no notion of using one up, and deleting it after a success leaves two
 * concurrent registrations with one token both through. So this middleware,
 * in front of the registration endpoint only, consumes the token in one
 * atomic store step before oidc-provider sees the request: of concurrent
 * registrations exactly one goes on. A registration that fails (bad
 * metadata) gives the token back; a successful one deletes it.
 */
import type { Context, Next } from 'koa';
import type { Store } from '../store/store.ts';
import { artifactKey } from '../grants/grants.ts';

/** oidc-provider's opaque token values: base64url, far shorter than this. */
const TOKEN_SHAPE = /^[A-Za-z0-9_-]{1,256}$/;

/** The middleware, for `provider.use()`: acts on POSTs to `registrationPath` with a bearer token. */
export function singleUseInitialAccessTokens(store: Store, registrationPath: string): (ctx: Context, next: Next) => Promise<void> {
  return async (ctx, next) => {
    if (ctx.method !== 'POST' || ctx.path !== registrationPath) return next();
    const [scheme, token, ...rest] = (ctx.get('authorization') || '').split(' ');
    // Anything else is oidc-provider's to refuse, with its own error.
    if (scheme?.toLowerCase() !== 'bearer' || !token || rest.length || !TOKEN_SHAPE.test(token)) return next();
    const key = artifactKey('InitialAccessToken', token);
    const used = await store.consume(key, Math.floor(Date.now() / 1000));
    if (used.outcome === 'absent') return next();
    if (used.outcome === 'already') {
      // RFC 6750 §3.1, as oidc-provider answers for an unknown initial access token.
      ctx.status = 401;
      ctx.set('WWW-Authenticate', 'Bearer realm="registration", error="invalid_token", error_description="initial access token already used"');
      ctx.set('Cache-Control', 'no-store');
      ctx.body = { error: 'invalid_token', error_description: 'initial access token already used' };
      return;
    }
    let registered = false;
    try {
      await next();
      registered = ctx.status === 201;
    } finally {
      if (registered) await store.delete(key);
      // Back to unused, with the time to live it had.
      else await store.replace(key, used.value);
    }
  };
}
