import type { Context } from 'koa';

/**
 * The route label of a request for metrics and logs: a fixed set of values,
 * never the raw path (no label explosion). Endpoints that are not
 * @koa/router routes (the gateway's /api and /authz, the RFC 9728 metadata)
 * name theirs with `setRouteLabel`; router routes get @koa/router's
 * documented `ctx.routerPath`; oidc-provider's endpoints their `ctx.oidc.route`.
 */
export function setRouteLabel(ctx: Context, label: string): void {
  ctx.state.routeLabel = label;
}

export function routeLabel(ctx: Context): string {
  const own = ctx.state.routeLabel as string | undefined;
  if (own) return own;
  const oidcRoute = (ctx as unknown as { oidc?: { route?: string } }).oidc?.route;
  if (oidcRoute) return oidcRoute;
  const routerPath = (ctx as unknown as { routerPath?: string }).routerPath;
  return routerPath ?? 'unmatched';
}
