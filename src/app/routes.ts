/**
 * Assembly step 6: which part answers a request. fedgate's own routes and
 * oidc-provider's never overlap, so requests are dispatched by path prefix:
 * the token endpoint's hot path runs no router.
 */
import { randomBytes } from 'node:crypto';
import Router from '@koa/router';
import type Koa from 'koa';
import type { Context } from 'koa';
import compose from 'koa-compose';
import type { Config } from '../config/schema.ts';
import { PROTECTED_RESOURCE_WELL_KNOWN } from '../datasources/index.ts';
import { sendPage } from '../http/page.ts';
import type { Audit } from '../observability/audit.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { Store } from '../store/store.ts';
import * as pages from '../views/pages.ts';
import type { Draining } from './boundary.ts';

const OPS_PATHS = new Set(['/', '/healthz', '/readyz', '/metrics']);
// oidc-provider's routes that may answer with a page of its own (authorization and its resume, device verification, logout).
const PROVIDER_PAGE_PATHS = ['/auth', '/device', '/session/end'];

/** Router middleware types ask for router context fields the router itself adds. */
export const asMiddleware = (mw: unknown) => mw as Koa.Middleware;

/** The operations routes: the root page, liveness, readiness (503 while draining or without the store) and metrics. */
export function opsRoutes(config: Config, store: Store, metrics: Metrics, state: Draining): Koa.Middleware {
  const ops = new Router();
  ops.get('/', (ctx) => sendPage(ctx, (nonce) => pages.messagePage({
    nonce,
    title: 'fedgate',
    message: `This is the fedgate identity service at ${config.issuer}. Applications find everything they need at ${config.issuer}/.well-known/openid-configuration.`,
  })));
  ops.get('/healthz', (ctx) => {
    ctx.set('Cache-Control', 'no-store');
    ctx.body = { status: 'ok' };
  });
  ops.get('/readyz', async (ctx) => {
    ctx.set('Cache-Control', 'no-store');
    if (state.draining) {
      ctx.status = 503;
      ctx.body = { status: 'draining', store: store.kind };
      return;
    }
    try {
      await store.ping();
      ctx.body = { status: 'ready', store: store.kind };
    } catch {
      ctx.status = 503;
      ctx.body = { status: 'unavailable', store: store.kind };
    }
  });
  ops.get('/metrics', async (ctx) => {
    ctx.type = metrics.registry.contentType;
    ctx.body = await metrics.registry.metrics();
  });
  return asMiddleware(compose([ops.routes(), ops.allowedMethods()] as Parameters<typeof compose>[0]));
}

/** fedgate's own parts, each answering its path prefix. */
export interface RouteTable {
  ops: Koa.Middleware;
  interaction: Koa.Middleware;
  account: Koa.Middleware;
  saml: Koa.Middleware;
  x509: Koa.Middleware;
  admin: Koa.Middleware;
  /** The admin console pages (`/admin`, `/admin/*` other than the API). */
  console: Koa.Middleware;
  gatewayProxy: Koa.Middleware;
  gatewayAuthz: Koa.Middleware;
  protectedResourceMetadata: Koa.Middleware;
  /** The current oidc-provider middleware (it changes when the signing keys do). */
  provider(): Koa.Middleware;
}

/** The dispatching middleware: fedgate's parts by path prefix, everything else oidc-provider's. */
export function dispatch(config: Config, audit: Audit, routes: RouteTable): Koa.Middleware {
  const wellKnownUnder = `${PROTECTED_RESOURCE_WELL_KNOWN}/`;
  return async (ctx, next) => {
    // Read once: every `ctx.path` is a getter through Koa's delegation and the URL parser's cache check.
    const path = ctx.path;
    if (OPS_PATHS.has(path)) return routes.ops(ctx, next);
    if (path.startsWith('/interaction/')) return routes.interaction(ctx, next);
    if (path === '/account' || path.startsWith('/account/')) return routes.account(ctx, next);
    if (path.startsWith('/saml/')) return routes.saml(ctx, next);
    if (path.startsWith('/x509/')) return routes.x509(ctx, next);
    if (path === '/admin/api' || path.startsWith('/admin/api/')) return routes.admin(ctx, next);
    if (path === '/admin' || path.startsWith('/admin/')) return routes.console(ctx, next);
    if (path.startsWith('/api/')) return routes.gatewayProxy(ctx, next);
    if (path === '/authz' || path.startsWith('/authz/')) return routes.gatewayAuthz(ctx, next);
    if (path === PROTECTED_RESOURCE_WELL_KNOWN || path.startsWith(wellKnownUnder)) return routes.protectedResourceMetadata(ctx, next);
    // oidc-provider's own routes (the token endpoint's hot path: no extra async step).
    const pageRoute = isProviderPage(path);
    if (pageRoute) setProviderPageCsp(ctx);
    await routes.provider()(ctx, next);
    if (pageRoute) setProviderPageFraming(ctx);
    const audited = afterProviderRoute(config, audit, ctx);
    if (audited) await audited;
  };
}

/**
 * oidc-provider renders a few pages itself (the auto-submitting forms of
 * form_post, the device flow and logout): they get fedgate's page headers too.
 */
function isProviderPage(path: string): boolean {
  return PROVIDER_PAGE_PATHS.some((p) => path === p || path.startsWith(`${p}/`));
}

/** Its script hash joins script-src (oidc-provider adds it to a CSP already set). */
function setProviderPageCsp(ctx: Context): void {
  ctx.set('Content-Security-Policy', `default-src 'none'; script-src 'nonce-${randomBytes(16).toString('base64')}'; frame-ancestors 'none'; base-uri 'none'`);
}

function setProviderPageFraming(ctx: Context): void {
  if (ctx.response.get('X-Frame-Options')) return;
  ctx.set('X-Frame-Options', 'DENY');
  ctx.set('X-Content-Type-Options', 'nosniff');
}

/**
 * oidc-provider emits no success events for these routes; audit them from
 * the response. Answers a promise only when there is something to wait for.
 */
function afterProviderRoute(config: Config, audit: Audit, ctx: Context): Promise<void> | undefined {
  const oidcCtx = (ctx as unknown as { oidc?: { route?: string; client?: { clientId: string } } }).oidc;
  const clientId = oidcCtx?.client?.clientId;
  // An initial access token allows one registration (as Keycloak's default count of 1): src/oidc/initial-access-token.ts.
  if (oidcCtx?.route === 'registration' && ctx.status === 201) {
    const registered = (ctx.body as { client_id?: string } | undefined)?.client_id;
    return audit.record({ type: 'client.registered', actor: 'initial-access-token', outcome: 'success', ip: ctx.ip, client: registered, target: registered });
  } else if (oidcCtx?.route === 'client_update' && ctx.status === 200) {
    return audit.record({ type: 'client.updated', actor: `client:${clientId}`, outcome: 'success', ip: ctx.ip, client: clientId, target: clientId });
  } else if (oidcCtx?.route === 'client_delete' && ctx.status === 204) {
    return audit.record({ type: 'client.deleted', actor: `client:${clientId}`, outcome: 'success', ip: ctx.ip, client: clientId, target: clientId });
  } else if (oidcCtx?.route === 'revocation' && ctx.status === 200) {
    return audit.record({ type: 'token.revoked', actor: `client:${clientId}`, outcome: 'success', ip: ctx.ip, client: clientId });
  } else if (oidcCtx?.route === 'jwks' && ctx.status === 200) {
    // WLCG profile §4.2 and §4.3.1: the issuer advertises how long its keys may be cached (the public key
    // cache refresh); a cache may keep using them while fedgate is unreachable for the cache expiration (RFC 5861).
    ctx.set('Cache-Control', `public, max-age=${config.keys.jwksMaxAgeSeconds}, stale-if-error=${config.keys.prepublishSeconds}`);
  }
  return undefined;
}
