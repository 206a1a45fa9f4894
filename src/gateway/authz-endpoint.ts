/**
 * The decision endpoint for reverse proxies that ask before forwarding:
 * nginx `auth_request`, Traefik `ForwardAuth` and Envoy `ext_authz` (HTTP).
 *
 Each service names the one form its proxy asks in (`authzHeaders`); the
 * headers of the other forms are ignored, since a proxy passes on client
 * headers it does not set itself:
 *
 * - `nginx`: `GET /authz?service=<name>` with `X-Original-Method` and
 *   `X-Original-URI` (set with `proxy_set_header`);
 * - `traefik`: the same with `X-Forwarded-Method` and `X-Forwarded-Uri`,
 *   which it sets itself; the service by `?service=` or by `X-Forwarded-Host`;
 * - `envoy`: `/authz<original path>` with the original method (`path_prefix:
 *   /authz`), the service by host.
 *
 * Answers 200 with the identity headers, or 401/403 with the challenge and
 * JSON error, always `Cache-Control: no-store`. The hot path (a cached JWT)
 * touches no store, parses no body and runs no router.
 */
import type Koa from 'koa';
import type { Context } from 'koa';
import type { AuthzHeaderForm } from '../config/datasource-schema.ts';
import type { Store } from '../store/store.ts';
import { authenticate } from './authenticate.ts';
import type { ClientCertificateReader } from '../http/client-certificate.ts';
import { authorize, EXPLAIN_HEADER, type DecisionDeps } from './decision.ts';
import { GatewayError, InvalidRequest, NotFound, sendError } from './errors.ts';
import { allowedResponseHeaders, identityHeaders } from './identity-headers.ts';
import { parseRequestTarget } from './request-target.ts';
import type { GatewayService, ServiceRegistry } from './service-registry.ts';
import type { TokenVerifier } from './token-verifier.ts';
import { setRouteLabel } from '../http/route-label.ts';

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

/** The original request as the service's proxy describes it. */
interface OriginalRequest {
  service: GatewayService;
  method: string;
  uri: string;
  /** The scheme and host the client called, for DPoP's `htu`. */
  proto: string;
  host: string;
}

const FORM_HEADERS: Record<Exclude<AuthzHeaderForm, 'envoy'>, { method: string; uri: string; names: string }> = {
  nginx: { method: 'x-original-method', uri: 'x-original-uri', names: 'X-Original-Method and X-Original-URI' },
  traefik: { method: 'x-forwarded-method', uri: 'x-forwarded-uri', names: 'X-Forwarded-Method and X-Forwarded-Uri' },
};

function header(ctx: Context, name: string): string | undefined {
  const value = ctx.req.headers[name];
  return value === undefined ? undefined : first(value);
}

/**
 * The service asked about and the original request, in the one form that
 * service's proxy uses (`authzHeaders`); headers of the other forms are the
 * client's and are ignored.
 *
 * - `/authz/<path>` is Envoy's path-prefix form: the service by `Host`
 *   among `envoy` services (the query is the original request's and does
 *   not choose), the method and path from the request line.
 * - `/authz`: the service by `?service=`, else by `Host` among `nginx`
 *   services, else by `X-Forwarded-Host` among `traefik` services (Traefik
 *   sets it and calls fedgate under fedgate's own host; behind nginx it is a
 *   header the client may send, so `Host` goes first); then the method and
 *   URI from `X-Original-*` (nginx) or `X-Forwarded-*` (traefik).
 */
function originalRequest(ctx: Context, services: ServiceRegistry): OriginalRequest {
  const url = ctx.req.url ?? '';
  const headers = ctx.req.headers;
  let service: GatewayService | undefined;
  let method: string | undefined;
  let uri: string | undefined;
  if (url.startsWith(`${AUTHZ_PATH}/`)) {
    const found = headers.host ? services.byHost(first(headers.host)) : undefined;
    service = found?.config.authzHeaders === 'envoy' ? found : undefined;
    if (!service) throw new NotFound('no such service');
    method = ctx.method;
    uri = url.slice(AUTHZ_PATH.length);
  } else {
    const name = ctx.querystring ? new URLSearchParams(ctx.querystring).get('service') : null;
    if (name !== null) {
      service = services.byName(name);
    } else {
      const byHost = headers.host ? services.byHost(first(headers.host)) : undefined;
      const forwarded = header(ctx, 'x-forwarded-host');
      const byForwardedHost = forwarded ? services.byHost(forwarded) : undefined;
      if (byHost?.config.authzHeaders === 'nginx') service = byHost;
      else if (byForwardedHost?.config.authzHeaders === 'traefik') service = byForwardedHost;
    }
    if (!service) throw new NotFound('no such service');
    const form = service.config.authzHeaders;
    if (form === 'envoy') throw new InvalidRequest('this service is asked in Envoy\'s form: /authz<original path> with the original method');
    const names = FORM_HEADERS[form];
    method = header(ctx, names.method);
    uri = header(ctx, names.uri);
    if (!method || !uri) throw new InvalidRequest(`the original request is required: ${names.names}`);
  }
  if (!METHOD.test(method)) throw new InvalidRequest('the original method is malformed');
  // Envoy's ext_authz keeps the original Host; nginx (as configured) and Traefik name the client's URL in X-Forwarded-*.
  const envoy = service.config.authzHeaders === 'envoy';
  const proto = header(ctx, 'x-forwarded-proto') ?? ctx.protocol;
  const host = (envoy ? undefined : header(ctx, 'x-forwarded-host')) ?? headers.host ?? '';
  return { service, method: method.toUpperCase(), uri, proto, host };
}

/** Creates the `/authz` middleware. */
export function createAuthzEndpoint(deps: AuthzEndpointDeps): Koa.Middleware {
  const { services, verifier, store, certificates } = deps;

  const handle = async (ctx: Context): Promise<void> => {
    const { service, method, uri, proto, host } = originalRequest(ctx, services);
    const target = parseRequestTarget(uri);
    const headers = ctx.req.headers;
    const auth = await authenticate(verifier, store, {
      authorization: headers.authorization,
      method,
      // The URL the client called, as the proxy in front describes it.
      url: () => `${proto}://${host}${target.rawPath}`,
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
    setRouteLabel(ctx, AUTHZ_PATH);
    try {
      await handle(ctx);
    } catch (err) {
      ctx.set('Cache-Control', 'no-store');
      if (err instanceof GatewayError) return sendError(ctx, err);
      throw err;
    }
  };
}
