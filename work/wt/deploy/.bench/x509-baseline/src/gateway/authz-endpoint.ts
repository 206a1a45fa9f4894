/**
 * The decision endpoint for reverse proxies that ask before forwarding:
 * nginx `auth_request`, Traefik `ForwardAuth` and Envoy `ext_authz` (HTTP).
 *
 * - nginx: `GET /authz?service=<name>` with `X-Original-Method` and
 *   `X-Original-URI` (set with `proxy_set_header`);
 * - Traefik: the same with `X-Forwarded-Method` and `X-Forwarded-Uri`, which
 *   it sets itself; the service by `?service=` or by `X-Forwarded-Host`;
 * - Envoy: `/authz<original path>` with the original method (`path_prefix:
 *   /authz`), the service by host.
 *
 * Answers 200 with the identity headers, or 401/403 with the challenge and
 * JSON error, always `Cache-Control: no-store`. The hot path (a cached JWT)
 * touches no store, parses no body and runs no router.
 */
import type Koa from 'koa';
import type { Context } from 'koa';
import type { Store } from '../store/store.ts';
import { authenticate } from './authenticate.ts';
import type { ClientCertificateReader } from './client-certificate.ts';
import { authorize, EXPLAIN_HEADER, type DecisionDeps } from './decision.ts';
import { GatewayError, InvalidRequest, NotFound, sendError } from './errors.ts';
import { allowedResponseHeaders, identityHeaders } from './identity-headers.ts';
import { parseRequestTarget } from './request-target.ts';
import type { GatewayService, ServiceRegistry } from './service-registry.ts';
import type { TokenVerifier } from './token-verifier.ts';

/** The path the app routes to the decision endpoint (and everything under it, for Envoy). */
export const AUTHZ_PATH = '/authz';

export interface AuthzEndpointDeps {
  services: ServiceRegistry;
  verifier: TokenVerifier;
  store: Store;
  decision: DecisionDeps;
  certificates: ClientCertificateReader;
}

// RFC 9110 §9.1: a method is a token.
const METHOD = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,32}$/;

/** The first of a comma-separated list of values a proxy chain may have built. */
function first(value: string | string[]): string {
  if (Array.isArray(value)) return first(value[0] ?? '');
  const comma = value.indexOf(',');
  return (comma === -1 ? value : value.slice(0, comma)).trim();
}

/** The original request the proxy asks about, and whether it came in Envoy's path-prefix form. */
function originalRequest(ctx: Context): { method: string; uri: string; envoy: boolean } {
  const headers = ctx.req.headers;
  let method: string | undefined;
  let uri: string | undefined;
  let envoy = false;
  if (headers['x-original-uri'] !== undefined || headers['x-original-method'] !== undefined) {
    method = headers['x-original-method'] as string | undefined;
    uri = headers['x-original-uri'] as string | undefined;
  } else if (headers['x-forwarded-uri'] !== undefined || headers['x-forwarded-method'] !== undefined) {
    method = headers['x-forwarded-method'] as string | undefined;
    uri = headers['x-forwarded-uri'] as string | undefined;
  } else {
    const url = ctx.req.url ?? '';
    if (url.startsWith(`${AUTHZ_PATH}/`)) {
      method = ctx.method;
      uri = url.slice(AUTHZ_PATH.length);
      envoy = true;
    }
  }
  if (!method || !uri) {
    throw new InvalidRequest('the original request is required: X-Original-Method and X-Original-URI, or X-Forwarded-Method and X-Forwarded-Uri');
  }
  if (!METHOD.test(method)) throw new InvalidRequest('the original method is malformed');
  return { method: method.toUpperCase(), uri, envoy };
}

function serviceFor(ctx: Context, services: ServiceRegistry, envoy: boolean): GatewayService {
  // In Envoy's form the query string is the original request's, chosen by the client: it must not pick the service.
  if (!envoy && ctx.querystring) {
    const name = new URLSearchParams(ctx.querystring).get('service');
    if (name !== null) {
      const service = services.byName(name);
      if (!service) throw new NotFound('no such service');
      return service;
    }
  }
  const host = ctx.req.headers['x-forwarded-host'] ?? ctx.req.headers.host;
  const service = host ? services.byHost(first(host)) : undefined;
  if (!service) throw new NotFound('no such service');
  return service;
}

/** Creates the `/authz` middleware. */
export function createAuthzEndpoint(deps: AuthzEndpointDeps): Koa.Middleware {
  const { services, verifier, store, certificates } = deps;

  const handle = async (ctx: Context): Promise<void> => {
    const { method, uri, envoy } = originalRequest(ctx);
    const service = serviceFor(ctx, services, envoy);
    const target = parseRequestTarget(uri);
    const headers = ctx.req.headers;
    const auth = await authenticate(verifier, store, {
      authorization: headers.authorization,
      method,
      // The URL the client called, as the proxy in front describes it.
      url: () => {
        const proto = headers['x-forwarded-proto'] ? first(headers['x-forwarded-proto'] as string) : ctx.protocol;
        const host = headers['x-forwarded-host'] ? first(headers['x-forwarded-host']) : headers.host ?? '';
        return `${proto}://${host}${target.rawPath}`;
      },
      dpopProofs: () => ctx.req.headersDistinct.dpop ?? [],
      clientCertificate: () => certificates(ctx.req),
    }, service.audience);
    authorize(ctx, deps.decision, auth, service, method, target.path);

    ctx.status = 200;
    const explanation = ctx.response.get(EXPLAIN_HEADER);
    if (explanation) {
      // The administrators' slow path: through Koa, with the explanation header set by authorize().
      ctx.set('Cache-Control', 'no-store');
      for (const [name, value] of identityHeaders(auth.identity)) ctx.set(name, value);
      ctx.body = '';
      ctx.remove('Content-Type');
      return;
    }
    // The hot path: the whole answer in one writeHead (Koa steps aside; the status stays on ctx for metrics).
    ctx.respond = false;
    ctx.res.writeHead(200, allowedResponseHeaders(auth.identity));
    ctx.res.end();
  };

  return async (ctx) => {
    (ctx as { _matchedRoute?: string })._matchedRoute = AUTHZ_PATH;
    try {
      await handle(ctx);
    } catch (err) {
      ctx.set('Cache-Control', 'no-store');
      if (err instanceof GatewayError) return sendError(ctx, err);
      throw err;
    }
  };
}
