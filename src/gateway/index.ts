/**
 * The policy enforcement point: the `/authz` decision endpoint for reverse
 * proxies and the `/api/<service>/*` reverse proxy. Both verify fedgate's
 * access tokens (JWTs locally with the published keys, opaque ones through
 * oidc-provider), check audience and DPoP / certificate binding, ask the
 * policy decision point, and hand the identity on in `X-Fedgate-*` headers.
 * How decisions are made is the PDP's business (src/authz).
 */
import type { JWK } from 'jose';
import type Koa from 'koa';
import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import type { PolicyDecisionPoint } from '../authz/types.ts';
import type { Services } from '../services.ts';
import { authenticate, type Authenticated } from './authenticate.ts';
import { createAuthzEndpoint } from './authz-endpoint.ts';
import { certificateHeaderForms, createClientCertificateReader } from '../http/client-certificate.ts';
import { createProxy } from './proxy.ts';
import { ServiceRegistry } from './service-registry.ts';
import { TokenVerifier, type TokenVerifierStats } from './token-verifier.ts';

export { AUTHZ_PATH } from './authz-endpoint.ts';
export { parseAuthorization, type Authenticated } from './authenticate.ts';
export { normaliseAddress } from '../http/client-address.ts';
export {
  certificateThumbprint, createClientCertificateReader, parseClientCertHeader, RFC9440_CLIENT_CERT,
  type CertificateHeaderForm, type ClientCertificate, type ClientCertificateReader,
} from '../http/client-certificate.ts';
export { decisionRequest, EXPLAIN_HEADER } from './decision.ts';
export { DPOP_ALGORITHMS, normaliseHtu } from './dpop.ts';
export * from './errors.ts';
export { IDENTITY_HEADER_NAMES, identityHeaders, isStrippedHeader, safeHeaderValue } from './identity-headers.ts';
export { PROXY_PREFIX } from './proxy.ts';
export { ServiceRegistry, type GatewayService } from './service-registry.ts';
export { MAX_TARGET_LENGTH, parseRequestTarget, type RequestTarget } from './request-target.ts';
export type { AudiencePolicy, Identity, TokenBinding, TokenVerifierStats } from './token-verifier.ts';

/** What the gateway needs from the rest of fedgate. */
export interface GatewayDeps extends Pick<Services, 'config' | 'store' | 'logger' | 'metrics' | 'audit' | 'accounts'> {
  /** Audiences whose tokens carry storage paths relative to a base path (WLCG profile §2.2.3). */
  resourceServers?: Pick<Services['resourceServers'], 'policyScopes'>;
  pdp: PolicyDecisionPoint;
  /** Changes whenever policies, groups, memberships or account states change anywhere: cached identities read before are re-read. */
  policyVersion(): number;
  /** fedgate's current public signing keys (retired ones included until their tokens expired). */
  jwks(): { keys: JWK[] };
  /** The current oidc-provider instance, for opaque token lookups. */
  provider(): Provider;
  /** The services to enforce for, shared with the data sources that change them at run time; default: `gateway.services` only. */
  services?: ServiceRegistry;
}

/** The gateway's two middlewares. */
export interface Gateway {
  /** For `/authz` and `/authz/*`. */
  authz: Koa.Middleware;
  /** For `/api/*`. */
  proxy: Koa.Middleware;
  /**
   * Authenticates a request to one of fedgate's own resources (the admin
   * API) exactly as `/api` and `/authz` do: the token verified (signature,
   * issuer, expiry, revocation, account), meant for `audience` (no WLCG
   * "any" audience), and its DPoP proof or certificate binding checked.
   *
   * @throws GatewayError subclasses, with the challenge scheme set.
   */
  authenticate(ctx: Context, audience: string): Promise<Authenticated>;
  /** Token verification counters (signature checks, cache hits, account reads, opaque lookups). */
  readonly stats: Readonly<TokenVerifierStats>;
  /** The services it enforces for. */
  readonly services: ServiceRegistry;
  /** Closes upstream connection pools and drops cached tokens. */
  close(): Promise<void>;
}

/**
 * Builds the enforcement point from the services (the configuration's
 * `gateway.services` and the data sources), `trustedProxies`,
 * `gateway.tokenCacheSize` and `gateway.maxBodyBytes`.
 *
 * @throws Error when `trustedProxies` holds an entry that is not an address or range.
 */
export function createGateway(deps: GatewayDeps): Gateway {
  const { config, store, audit, pdp } = deps;
  const logger = deps.logger.child({ component: 'gateway' });
  const services = deps.services ?? new ServiceRegistry(config);
  const verifier = new TokenVerifier({
    issuer: config.issuer,
    accounts: deps.accounts,
    jwks: deps.jwks,
    provider: deps.provider,
    policyVersion: deps.policyVersion,
    cacheSize: config.gateway.tokenCacheSize,
    policyScopes: (audience, scopes) => deps.resourceServers?.policyScopes(audience, scopes) ?? scopes,
  });
  const certificates = createClientCertificateReader({ trustedProxies: config.trustedProxies, logger, headerForms: certificateHeaderForms(config.x509.headerNames) });
  const decision = { pdp, audit, metrics: deps.metrics };
  const proxy = createProxy({ config, services, verifier, store, decision, certificates, logger });
  return {
    authz: createAuthzEndpoint({ services, verifier, store, decision, certificates }),
    proxy: proxy.middleware,
    authenticate: (ctx, audience) => authenticate(verifier, store, {
      authorization: ctx.req.headers.authorization,
      method: ctx.method,
      url: () => `${ctx.protocol}://${ctx.host}${ctx.path}`,
      dpopProofs: () => ctx.req.headersDistinct.dpop ?? [],
      clientCertificate: () => certificates(ctx.req),
    }, { audience, acceptsWlcgAny: false }),
    stats: verifier.stats,
    services,
    async close() {
      await proxy.close();
      verifier.clear();
    },
  };
}
