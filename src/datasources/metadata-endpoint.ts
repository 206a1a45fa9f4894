/**
 * The RFC 9728 endpoint: `GET /.well-known/oauth-protected-resource/api/<name>`
 * (the path-inserted form of §3.1 for the gateway's resource identifier
 * `<issuer>/api/<name>`), and `GET /.well-known/oauth-protected-resource?resource=<audience>`
 * for any data source by its audience — which a data source's own web server
 * serves at its well-known path by proxying here (the nginx snippet does).
 */
import type Koa from 'koa';
import type { Context } from 'koa';
import type { Config } from '../config/schema.ts';
import { FedgateError } from '../util/errors.ts';
import { respondWithError } from '../http/error-response.ts';
import { PROTECTED_RESOURCE_WELL_KNOWN, protectedResourceMetadata } from '../gateway/protected-resource.ts';
import type { DataSources } from './registry.ts';
import { setRouteLabel } from '../http/route-label.ts';

export interface MetadataEndpointDeps {
  config: Pick<Config, 'issuer' | 'x509'>;
  dataSources: Pick<DataSources, 'get' | 'byResource'>;
}

function refuse(ctx: Context, status: number, error: string, description: string): void {
  respondWithError(ctx, new FedgateError(error, description, { status }), { format: 'json' });
}

/** The middleware for `/.well-known/oauth-protected-resource` and everything under it. */
export function createMetadataEndpoint(deps: MetadataEndpointDeps): Koa.Middleware {
  const { config, dataSources } = deps;
  const issuerPath = new URL(config.issuer).pathname.replace(/\/$/, '');
  return async (ctx) => {
    setRouteLabel(ctx, PROTECTED_RESOURCE_WELL_KNOWN);
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD') {
      ctx.set('Allow', 'GET, HEAD');
      return refuse(ctx, 405, 'invalid_request', 'use GET');
    }
    let resource: string;
    let view;
    if (ctx.path === PROTECTED_RESOURCE_WELL_KNOWN) {
      const asked = new URLSearchParams(ctx.querystring).get('resource');
      if (!asked) return refuse(ctx, 400, 'invalid_request', 'name the protected resource: ?resource=<audience>, or use /.well-known/oauth-protected-resource/api/<name>');
      view = dataSources.byResource(asked);
      resource = asked;
    } else {
      // §3.1: the resource's path follows the well-known suffix; behind a path prefix it includes the issuer's path.
      let rest = ctx.path.slice(PROTECTED_RESOURCE_WELL_KNOWN.length);
      if (issuerPath && rest.startsWith(`${issuerPath}/`)) rest = rest.slice(issuerPath.length);
      const match = /^\/api\/([a-z0-9][a-z0-9-]{0,62})$/.exec(rest);
      view = match ? dataSources.get(match[1]!) : undefined;
      if (view && !view.effective.gatewayUrl) view = undefined;
      resource = view?.effective.gatewayUrl ?? '';
    }
    if (!view) return refuse(ctx, 404, 'not_found', 'no protected resource of that name');
    ctx.set('Cache-Control', 'no-cache');
    // Public metadata: browser-based clients discover it across origins.
    ctx.set('Access-Control-Allow-Origin', '*');
    ctx.body = protectedResourceMetadata({
      resource,
      audience: view.spec.audience,
      issuer: config.issuer,
      scopes: view.effective.scopes,
      displayName: view.spec.displayName ?? view.spec.name,
      mtls: config.x509.enabled,
    });
  };
}
