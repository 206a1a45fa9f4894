/**
 * Exchange step 5, issue: the requested token (access token or JWT, refresh
 * token, or ID token) under the exchanged grant, with the actor chain.
 */
import type Provider from 'oidc-provider';
import type { KoaContextWithOIDC } from 'oidc-provider';
import type { Config } from '../config/schema.ts';
import { recordJwtAccessToken } from '../grants/grants.ts';
import { accountClaims } from '../oidc/claims.ts';
import { GRANT_REFERENCE_CLAIM, grantReference } from '../grants/grant-reference.ts';
import type { Store } from '../store/store.ts';
import { OIDC_ONLY, type ExchangePlan } from './decision.ts';
import type { ExchangeClaims } from './exchanged-grant.ts';
import type { Parties } from './parties.ts';
import type { ExchangeRequest } from './request.ts';
import { TOKEN_EXCHANGE_GRANT } from '../grants/token-types.ts';

const now = () => Math.floor(Date.now() / 1000);

/**
 * Where the claims of an access token being issued by an exchange right now
 * sit on the token object: `extraTokenClaims` (src/oidc/provider.ts) adds
 * them without a store read. (A property rather than a WeakMap: no
 * ephemeron for the garbage collector to trace per token.) Tokens refreshed
 * later from an exchanged grant read the stored record instead
 * ({@link exchangeClaimsFor}).
 */
const PENDING_CLAIMS = Symbol('fedgate.exchangeClaims');

/** The exchange claims set on `token` while it is issued by an exchange. */
export function pendingExchangeClaims(token: object): ExchangeClaims | undefined {
  return (token as { [PENDING_CLAIMS]?: ExchangeClaims })[PENDING_CLAIMS];
}

/** An issued token. */
export interface Issued {
  value: string;
  expiresIn: number;
  /** `token_type` of the answer (RFC 8693 §2.2.1: `N_A` for what is no access token). */
  tokenType: string;
}

export interface IssueDeps {
  config: Config;
  store: Store;
  provider: Provider;
  /** The TLS client certificate of a request (RFC 8705 binding), when fedgate sees them. */
  certificate?: ((ctx: KoaContextWithOIDC) => string | undefined) | undefined;
}

/** Issues the requested token under grant `grantId`. */
export function issueToken(deps: IssueDeps, ctx: KoaContextWithOIDC, request: ExchangeRequest, parties: Parties, plan: ExchangePlan, grantId: string): Promise<Issued> {
  if (request.requested === 'access_token' || request.requested === 'jwt') return issueAccessToken(deps, ctx, request, parties, plan, grantId);
  if (plan.wantsRefresh) return issueRefreshToken(deps, ctx, request, parties, plan, grantId);
  return issueIdToken(deps, ctx, request, parties, plan, grantId);
}

async function issueAccessToken(deps: IssueDeps, ctx: KoaContextWithOIDC, request: ExchangeRequest, { subject, act }: Parties, plan: ExchangePlan, grantId: string): Promise<Issued> {
  const { provider, store } = deps;
  const { client, clientId } = request;
  const { account } = subject;
  const rs = plan.rs!;
  const { accessTtl, scope } = plan;
  const cert = deps.certificate?.(ctx);
  const format = request.requested === 'jwt' ? 'jwt' : rs.accessTokenFormat;
  const at = new provider.AccessToken({ accountId: account.id, client, grantId, gty: TOKEN_EXCHANGE_GRANT, expiresIn: accessTtl });
  at.resourceServer = new provider.ResourceServer(rs.audience, {
    audience: rs.audience,
    scope,
    accessTokenTTL: accessTtl,
    accessTokenFormat: format,
    ...(format === 'jwt' ? { jwt: { sign: { alg: rs.signingAlg } } } : {}),
  });
  at.scope = scope || undefined;
  if (cert && client.tlsClientCertificateBoundAccessTokens) at.setThumbprint('x5t', cert);
  (at as unknown as { [PENDING_CLAIMS]: ExchangeClaims })[PENDING_CLAIMS] = { ...(act ? { act } : {}), exchanged: true, account };
  ctx.oidc.entity('AccessToken', at);
  const issued = await at.save();
  if (format === 'jwt') {
    // Recorded, so that introspection answers for it and revoking its grant ends it at the gateway too.
    await recordJwtAccessToken(store, issued, {
      jti: at.jti, kind: 'AccessToken', iat: at.iat ?? now(), exp: now() + accessTtl, accountId: account.id, clientId, grantId,
      gty: TOKEN_EXCHANGE_GRANT, aud: rs.audience, ...(at.scope ? { scope: at.scope } : {}), extra: { ...(at.extra ?? {}) },
      ...(at['x5t#S256'] ? { 'x5t#S256': at['x5t#S256'] } : {}),
    }, accessTtl);
  }
  return { value: issued, expiresIn: accessTtl, tokenType: at.tokenType };
}

async function issueRefreshToken(deps: IssueDeps, ctx: KoaContextWithOIDC, request: ExchangeRequest, { subject }: Parties, plan: ExchangePlan, grantId: string): Promise<Issued> {
  const rt = new deps.provider.RefreshToken({
    accountId: subject.account.id, client: request.client, grantId, gty: TOKEN_EXCHANGE_GRANT, expiresIn: plan.refreshTtl,
    scope: ['openid', 'offline_access', ...plan.granted].join(' '), resource: plan.rs!.audience, rotations: 0, iiat: now(),
  });
  ctx.oidc.entity('RefreshToken', rt);
  return { value: await rt.save(), expiresIn: plan.refreshTtl, tokenType: 'N_A' };
}

async function issueIdToken(deps: IssueDeps, ctx: KoaContextWithOIDC, request: ExchangeRequest, { subject, act }: Parties, plan: ExchangePlan, grantId: string): Promise<Issued> {
  const { account } = subject;
  const idScopes = ['openid', ...subject.scopes.filter((s) => s !== 'openid' && OIDC_ONLY.has(s) && s !== 'offline_access')];
  const token = new deps.provider.IdToken({ ...accountClaims(account, deps.config, idScopes), sub: account.id }, { ctx, client: request.client });
  (token as unknown as { scope: string }).scope = idScopes.join(' ');
  if (act) token.set('act', act);
  // Like every ID token of this issuer, it names its grant (the exchanged one): exchanged again, that grant decides.
  token.set(GRANT_REFERENCE_CLAIM, grantReference(grantId));
  return { value: await token.issue({ use: 'idtoken', expiresAt: now() + plan.idTtl }), expiresIn: plan.idTtl, tokenType: 'N_A' };
}
