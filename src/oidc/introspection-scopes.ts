/**
 * Introspection (RFC 7662) shows a token's scopes as its audience reads
 * them, exactly as the token's JWT carries them: for a storage with a base
 * path, relative to it (WLCG profile §2.2.3). oidc-provider answers with the
 * stored scope, which stays in fedgate's absolute terms (grants, policies and
 * refreshes use those), and has no hook for that field, so its JSON answer is
 * rewritten here. (Signed introspection answers, `features.jwtIntrospection`,
 * are not enabled; turning them on must move this before the signing.)
 */
import type { Context, Next } from 'koa';
import type { ResourceServers } from '../resource-servers/resource-servers.ts';

/** The middleware, for `provider.use()`: acts on requests to `path` (the introspection endpoint) only. */
export function introspectionScopes(path: string, resourceServers: Pick<ResourceServers, 'audienceScope'>): (ctx: Context, next: Next) => Promise<void> {
  const rewrite = (ctx: Context) => {
    const body = ctx.body as { active?: unknown; aud?: unknown; scope?: unknown } | undefined;
    if (body && typeof body === 'object' && body.active === true && typeof body.scope === 'string') {
      body.scope = resourceServers.audienceScope(body.aud, body.scope);
    }
  };
  // Every request to oidc-provider passes here: the others go on without an async frame of their own.
  return (ctx, next) => (ctx.path === path ? next().then(() => rewrite(ctx)) : next());
}
