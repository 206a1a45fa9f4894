/**
 * The token exchange grant (RFC 8693), registered with oidc-provider
 * (`registerGrantType`): a confidential client presents a user's token
 * (`subject_token`), optionally its own (`actor_token`, delegation), and gets
 * a token for one resource server carrying no more than the subject token
 * had, as the exchange policy (domains `exchange` and `exchange-by`) and the
 * scope policy allow. Every hop is recorded in a nested `act` claim
 * (RFC 8693 §4.1) and the new grant is tied to the subject's: revoking that
 * (or disabling the account) ends everything exchanged from it.
 */
import { randomBytes } from 'node:crypto';
import Provider, { errors, type KoaContextWithOIDC } from 'oidc-provider';
import type { Account } from '../accounts/accounts.ts';
import type { ClientConfig, ResourceServerConfig } from '../config/schema.ts';
import { EXCHANGE_BY_DOMAIN, EXCHANGE_DOMAIN } from '../authz/types.ts';
import { effectiveGroups } from '../accounts/accounts.ts';
import { tokenRefusal } from '../accounts/aup.ts';
import { accountClaims } from '../oidc/claims.ts';
import { GRANT_REFERENCE_CLAIM, grantReference } from '../grants/grant-reference.ts';
import { isGroupSelectionScope, scopeCovered, storageScopeProblem } from '../scopes/wlcg.ts';
import { EXCHANGED_GRANT_PREFIX, linkChildGrant, recordJwtAccessToken } from '../grants/grants.ts';
import type { Services } from '../services.ts';
import type { ExchangedTokenClaims } from '../oidc/token-exchange-seam.ts';
import { exchangeRecordKey, PresentedTokens, TokenTypeMismatch, type ActorClaim, type PresentedToken } from './presented-token.ts';
import { TokenRefused } from '../tokens/own-tokens.ts';
import { TOKEN_EXCHANGE_GRANT, TOKEN_TYPE_URNS, tokenTypeName, type TokenTypeName } from '../grants/token-types.ts';
import { TrustedIssuers } from './trusted-issuers.ts';
import { BoundedMap } from '../util/bounded-map.ts';

/** Request parameters of the grant (RFC 8693 §2.1); `audience` and `resource` may repeat. */
const PARAMETERS = ['audience', 'resource', 'scope', 'requested_token_type', 'subject_token', 'subject_token_type', 'actor_token', 'actor_token_type'];
const REPEATABLE = ['audience', 'resource'];
type Mode = 'delegate' | 'impersonate';
interface Decision {
  granted: readonly string[];
  dropped: readonly string[];
  outlive: boolean;
}
/** Exchange decisions remembered per replica. */
const DECISION_CACHE_SIZE = 10_000;
/** Exchanged grants remembered for reuse per replica. */
const CHILD_GRANT_CACHE_SIZE = 10_000;
/** Scopes about the user rather than a resource server: they go into ID tokens, never into an exchanged access token's scope. */
const OIDC_ONLY = new Set(['openid', 'profile', 'email', 'groups', 'eduperson_entitlement', 'offline_access']);

/** Claims an exchanged token carries beyond its profile's: the actor chain and the mark the gateway checks revocation by. */
export interface ExchangeClaims extends ExchangedTokenClaims {
  act?: ActorClaim;
}

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

/** The stored record of an exchanged grant. */
interface ExchangeRecord {
  act?: ActorClaim;
  subject: { iss: string; sub: string; client?: string };
}

/** The exchange claims of tokens issued later from grant `grantId` (refreshes of an exchanged refresh token). */
export async function exchangeClaimsFor(store: Services['store'], grantId: string | undefined): Promise<ExchangeClaims | undefined> {
  if (!grantId) return undefined;
  const record = await store.get<ExchangeRecord>(exchangeRecordKey(grantId));
  if (!record) return undefined;
  return { ...(record.act ? { act: record.act } : {}), exchanged: true };
}

export interface TokenExchangeDeps extends Pick<Services, 'config' | 'store' | 'accounts' | 'policy' | 'resourceServers' | 'audit' | 'logger'> {
  /** fedgate's signing keys, to verify its own JWTs presented for exchange. */
  jwks: { keys: object[] };
  /** The configured client of an id, if it is one. */
  clientConfig(clientId: string): ClientConfig | undefined;
  /** The TLS client certificate of a request (RFC 8705 binding), when fedgate sees them. */
  certificate?: (ctx: KoaContextWithOIDC) => string | undefined;
}

const now = () => Math.floor(Date.now() / 1000);

/**
 * invalid_grant with its reason: oidc-provider's InvalidGrant keeps the
 * reason out of the response; here it is the client's own token that is
 * refused, and knowing why (expired, revoked, wrong type) is what it needs.
 */
const invalidGrant = (description: string) => new errors.CustomOIDCProviderError('invalid_grant', description);

function values(param: unknown): string[] {
  if (param === undefined) return [];
  return (Array.isArray(param) ? param : [param]).filter((v): v is string => typeof v === 'string' && v !== '');
}

function depth(act: ActorClaim | undefined): number {
  let n = 0;
  for (let a = act; a; a = a.act) n += 1;
  return n;
}

/** The actor a token names as it would appear in `act` (RFC 8693 §4.1: `sub`, and `iss` when not this issuer's). */
function actorOf(token: PresentedToken, issuer: string): ActorClaim {
  return { sub: token.sub, ...(token.iss !== issuer ? { iss: token.iss } : {}) };
}

/** Registers the grant with `provider`. Clients still need it in their configuration and an exchange policy. */
export function registerTokenExchange(provider: Provider, deps: TokenExchangeDeps): void {
  const { config, store, accounts, policy, resourceServers, audit } = deps;
  const trustedIssuers = new TrustedIssuers({
    issuers: config.tokenExchange.trustedIssuers,
    defaultAudience: config.issuer,
    jwksCacheSeconds: config.tokenExchange.jwksCacheSeconds,
    accounts,
  });
  /** Grants of recent access token exchanges, by everything that made them (see the handler). */
  const childGrants = new BoundedMap<string, { id: string; exp: number }>(CHILD_GRANT_CACHE_SIZE);
  const tokens = new PresentedTokens({
    issuer: config.issuer, store, accounts, provider, jwks: deps.jwks, trustedIssuers,
    policyScopes: (audience, scopes) => resourceServers.policyScopes(audience, scopes),
  });

  async function present(value: string, typeParam: unknown, role: 'subject' | 'actor', clientId: string): Promise<PresentedToken> {
    const declared = tokenTypeName(typeParam);
    if (!declared) throw new errors.InvalidRequest(`unsupported ${role}_token_type`);
    if (role === 'actor' && declared === 'refresh_token') throw new errors.InvalidRequest('actor_token_type must be an access token, ID token or JWT');
    try {
      return await tokens.resolve(value, declared, clientId);
    } catch (err) {
      if (err instanceof TokenTypeMismatch) throw new errors.InvalidRequest(`${role}_token_type does not match the ${role}_token: ${err.message}`);
      if (err instanceof TokenRefused) throw invalidGrant(`${role}_token: ${err.message}`);
      throw err;
    }
  }

  /** The one resource server the new token is for (RFC 8693 §2.1 audience / resource, RFC 8707). */
  function target(ctx: KoaContextWithOIDC, client: ClientConfig | undefined): ResourceServerConfig {
    const wanted = [...new Set([...values(ctx.oidc.params!.audience), ...values(ctx.oidc.params!.resource)])];
    if (wanted.length > 1) throw new errors.InvalidTarget('exactly one audience or resource per exchange');
    const audience = wanted[0] ?? client?.defaultAudience;
    if (!audience) throw new errors.InvalidTarget('audience or resource is required');
    const rs = resourceServers.get(audience);
    if (!rs) throw new errors.InvalidTarget('unknown audience');
    // An exchanged token is never an admin token: whoever holds a user's token must not turn it into one.
    if (resourceServers.isAdmin(rs)) throw new errors.InvalidTarget('the admin API accepts no exchanged tokens');
    return rs;
  }

  /** Is this client allowed to exchange into `audience` in `mode`? (domain `exchange`, and `exchange-by` for the subject) */
  function authorize(clientId: string, subject: PresentedToken & { account: Account }, resourceAudience: string | undefined, mode: Mode): void {
    // An ID token has no resource server: impersonating with one asserts the user's identity as fedgate itself, so it
    // takes an impersonate rule for fedgate's issuer (or *), as impersonation for any audience takes one for that audience.
    const audience = resourceAudience ?? (mode === 'impersonate' ? config.issuer : undefined);
    const asClient = { subject: `client:${clientId}`, domain: EXCHANGE_DOMAIN, object: audience ?? '*', scopes: [] as string[] };
    const modeAllowed = (m: string) => policy.allowed({ ...asClient, action: m }) && (m !== 'impersonate' || policy.allowedExplicitly({ ...asClient, action: m }));
    // An ID token (no audience but the client itself, no scopes) needs only that the client exchanges, and may exchange this subject's tokens.
    const hasRules = () => policy.hasRulesFor({ subject: `client:${clientId}` }, EXCHANGE_DOMAIN);
    if (audience === undefined ? !hasRules() : !modeAllowed(mode)) {
      if (audience === undefined || !hasRules()) throw new errors.UnauthorizedClient('the client is not allowed to exchange tokens');
      if (resourceAudience === undefined) throw new errors.UnauthorizedClient('the client may not impersonate users in ID tokens (no impersonate rule for this issuer)');
      const other = mode === 'delegate' ? 'impersonate' : 'delegate';
      if (modeAllowed(other)) {
        throw new errors.UnauthorizedClient(mode === 'impersonate'
          ? 'the client may only exchange with an actor_token (delegation) for this audience'
          : 'the client may only impersonate for this audience');
      }
      throw new errors.InvalidTarget('the client is not allowed to exchange tokens for this audience');
    }
    // Whose tokens: the user (with groups), or the client the subject token was issued to. One allow suffices; a deny wins.
    const object = `client:${clientId}`;
    const requests = [
      { subject: `user:${subject.account.username}`, groups: effectiveGroups(subject.account.groups), domain: EXCHANGE_BY_DOMAIN, object, action: mode, scopes: [] },
      ...(subject.origin === 'fedgate' && subject.clientId ? [{ subject: `client:${subject.clientId}`, domain: EXCHANGE_BY_DOMAIN, object, action: mode, scopes: [] }] : []),
    ];
    const allowed = requests.map((r) => policy.allowed(r));
    const denied = requests.some((r, i) => !allowed[i] && policy.explain(r).explanation?.outcome === 'deny');
    if (denied || !allowed.includes(true)) {
      throw new errors.UnauthorizedClient('the client is not allowed to exchange this subject\'s tokens');
    }
  }

  /**
   * What an exchange may carry: whether the client may exchange this
   * subject's tokens for `rs` in `mode` (throws if not), the scopes granted
   * and dropped, and whether the new token may outlive the subject token.
   */
  function decideNow(clientId: string, clientConfig: ClientConfig | undefined, subject: PresentedToken & { account: Account }, rs: ResourceServerConfig | undefined, mode: Mode, scopeParam: string | undefined): Decision {
    authorize(clientId, subject, rs?.audience, mode);
    // Scopes: only what the subject token had (RFC 8693 §5: no up-scoping), narrowed by the request and every policy.
    const explicit = scopeParam === undefined ? undefined : scopeParam.split(' ').filter(Boolean);
    const held = subject.scopes.filter((s) => !OIDC_ONLY.has(s));
    const asked = (explicit ?? held).filter((s) => !OIDC_ONLY.has(s));
    const malformed = explicit?.filter((s) => storageScopeProblem(s) !== undefined) ?? [];
    if (malformed.length) throw new errors.InvalidScope(`the storage path of ${malformed.join(' ')} is not in normal form`, malformed.join(' '));
    const notHeld = asked.filter((s) => !scopeCovered(s, held));
    if (explicit && notHeld.length) throw new errors.InvalidScope(`the subject token does not hold ${notHeld.join(' ')}`, notHeld.join(' '));
    const audience = rs?.audience ?? config.issuer;
    let granted = rs ? resourceServers.acceptedScopes(rs, asked) : [];
    if (clientConfig?.scopes) granted = granted.filter((s) => scopeCovered(s, clientConfig.scopes!));
    const governed = granted.filter((s) => !isGroupSelectionScope(s));
    const byExchange = new Set(policy.allowedExchangeScopes(clientId, audience, governed));
    const byScopePolicy = new Set(policy.allowedScopes(subject.account, audience, governed));
    granted = granted.filter((s) => isGroupSelectionScope(s) || (byExchange.has(s) && byScopePolicy.has(s)));
    const dropped = asked.filter((s) => !granted.includes(s));
    if (explicit && asked.length && !granted.length) throw new errors.InvalidScope('none of the requested scopes may be granted for this audience', asked.join(' '));
    // Lifetime: never past the subject token, unless the exchange policy says `outlive`.
    const outliveRequest = { subject: `client:${clientId}`, domain: EXCHANGE_DOMAIN, object: audience, action: 'outlive', scopes: [] };
    const outlive = policy.allowed(outliveRequest) && policy.allowedExplicitly(outliveRequest);
    return { granted: Object.freeze(granted), dropped: Object.freeze(dropped), outlive };
  }

  /**
   * Decisions already made, by everything they depend on: the policy and
   * resource server versions (raised by every change this replica sees),
   * the client, the audience, the mode, the user with their groups, the
   * subject token's client and scopes, and the scope asked for. Only
   * allowed exchanges are remembered; a refusal is decided afresh.
   */
  const decisions = new BoundedMap<string, Decision>(DECISION_CACHE_SIZE);

  function decide(clientId: string, clientConfig: ClientConfig | undefined, subject: PresentedToken & { account: Account }, rs: ResourceServerConfig | undefined, mode: Mode, scopeParam: string | undefined): Decision {
    if (!rs) return decideNow(clientId, clientConfig, subject, rs, mode, scopeParam);
    const key = `${policy.version}\u0000${resourceServers.version}\u0000${clientId}\u0000${rs.audience}\u0000${mode}\u0000${subject.account.username}\u0000${subject.account.groups.join(',')}`
      + `\u0000${subject.origin === 'fedgate' ? subject.clientId ?? '' : '\u0001'}\u0000${scopeParam ?? '\u0001'}\u0000${subject.scopes.join(' ')}`;
    let decision = decisions.get(key);
    if (!decision) {
      decision = decideNow(clientId, clientConfig, subject, rs, mode, scopeParam);
      decisions.set(key, decision);
    }
    return decision;
  }

  async function handler(ctx: KoaContextWithOIDC): Promise<void> {
    const params = ctx.oidc.params as Record<string, unknown>;
    const client = ctx.oidc.client!;
    const clientId = client.clientId;
    const clientConfig = deps.clientConfig(clientId);
    // RFC 8693 §2.1: the client is authenticated; a public client cannot be trusted with someone else's token.
    if (client.clientAuthMethod === 'none') throw new errors.UnauthorizedClient('token exchange requires a confidential client');
    if (clientConfig && !clientConfig.grantTypes.includes('token_exchange')) throw new errors.UnauthorizedClient('the client is not allowed to use token exchange');

    if (typeof params.subject_token !== 'string' || !params.subject_token) throw new errors.InvalidRequest('missing required parameter(s) (subject_token)');
    if (typeof params.subject_token_type !== 'string') throw new errors.InvalidRequest('missing required parameter(s) (subject_token_type)');
    const hasActor = params.actor_token !== undefined;
    if (hasActor !== (params.actor_token_type !== undefined)) throw new errors.InvalidRequest('actor_token and actor_token_type go together');
    const requested: TokenTypeName = params.requested_token_type === undefined ? 'access_token' : tokenTypeName(params.requested_token_type)!;
    if (!requested) throw new errors.InvalidRequest('unsupported requested_token_type');

    const [subject, actor] = await Promise.all([
      present(params.subject_token, params.subject_token_type, 'subject', clientId),
      hasActor ? present(String(params.actor_token), params.actor_token_type, 'actor', clientId) : undefined,
    ]);
    if (!subject.account) throw invalidGrant('subject_token: the token does not speak for a user of this server');
    const account = subject.account;
    const refusal = tokenRefusal(account, config.aup);
    if (refusal) throw invalidGrant(`subject_token: ${refusal}`);
    // A token of this server's speaks for its client only when that client presents it: no one acts under another client's name.
    if (actor && actor.origin === 'fedgate' && actor.sub !== clientId && actor.clientId !== clientId) {
      throw invalidGrant('actor_token: the token belongs to another client');
    }

    // RFC 8693 §4.4: the subject token may say who may act for it.
    const acting: ActorClaim = actor ? actorOf(actor, config.issuer) : { sub: clientId };
    if (subject.mayAct && (subject.mayAct.sub !== acting.sub || (subject.mayAct.iss ?? config.issuer) !== (acting.iss ?? config.issuer))) {
      throw invalidGrant('subject_token: its may_act claim does not name this actor');
    }
    const mode = actor ? 'delegate' : 'impersonate';
    const act: ActorClaim | undefined = actor ? { ...acting, ...(subject.act ? { act: subject.act } : {}) } : subject.act;
    if (depth(act) > config.tokenExchange.maxDelegationDepth) throw new errors.InvalidRequest('the delegation chain is too long');

    const subjectPrincipal = subject as PresentedToken & { account: Account };
    const rs = requested === 'id_token' ? undefined : target(ctx, clientConfig);
    const audience = rs?.audience ?? config.issuer;
    const { granted, dropped, outlive } = decide(clientId, clientConfig, subjectPrincipal, rs, mode, typeof params.scope === 'string' ? params.scope : undefined);
    const cap = (ttl: number) => (outlive ? ttl : Math.min(ttl, subject.exp - now()));
    if (subject.exp - now() <= 0) throw invalidGrant('subject_token: the token has expired');

    const wantsRefresh = requested === 'refresh_token';
    if (wantsRefresh) {
      if (subject.offlineAccess === undefined) {
        throw invalidGrant('subject_token: the token does not name the grant it was issued under (it predates grant references), so whether the user granted offline_access cannot be decided; present a token of that login issued since');
      }
      if (!subject.offlineAccess) throw new errors.InvalidScope('the subject was not granted offline_access', 'offline_access');
      if (!policy.allowed({ subject: `client:${clientId}`, domain: EXCHANGE_DOMAIN, object: audience, action: 'offline_access', scopes: [] })) {
        throw new errors.UnauthorizedClient('the client is not allowed refresh tokens by exchange for this audience');
      }
      if (!client.grantTypeAllowed('refresh_token')) throw new errors.UnauthorizedClient('the client is not allowed the refresh_token grant');
    }

    const lifetimes = config.lifetimes;
    const accessTtl = cap(rs?.accessTokenTtl ?? clientConfig?.accessTokenTtl ?? lifetimes.accessToken);
    const refreshTtl = cap(clientConfig?.refreshTokenTtl ?? lifetimes.refreshToken);
    const idTtl = cap(lifetimes.idToken);
    // Access tokens share a grant while the subject token lives (a service exchanging the same user's token again reuses it).
    const grantTtl = wantsRefresh ? refreshTtl : requested === 'id_token' ? idTtl : outlive ? accessTtl : Math.max(accessTtl, subject.exp - now());
    const scope = granted.join(' ');
    const reuseKey = requested === 'access_token' || requested === 'jwt'
      ? `${account.id}\u0000${clientId}\u0000${subject.grantIds.length > 1 ? [...subject.grantIds].sort().join(' ') : subject.grantIds[0] ?? ''}\u0000${subject.iss}`
        + `\u0000${act ? JSON.stringify(act) : ''}\u0000${audience}\u0000${scope}\u0000${subject.offlineAccess}`
      : undefined;
    const reusable = reuseKey ? childGrants.get(reuseKey) : undefined;
    let grantId: string;
    // No store read: an exchanged grant goes only with the grants it came from (checked live above) or the account (checked too).
    if (reusable && reusable.exp >= now() + accessTtl) {
      grantId = reusable.id;
    } else {
      // A grant of its own for the client, tied to the subject's grant(s); offline_access passes on, for a later hop's refresh token.
      const grant = new provider.Grant({ accountId: account.id, clientId });
      grant.jti = `${EXCHANGED_GRANT_PREFIX}${randomBytes(32).toString('base64url')}`;
      if (rs && granted.length) grant.addResourceScope(rs.audience, scope);
      grant.addOIDCScope(subject.offlineAccess ? 'openid offline_access' : 'openid');
      grant.exp = now() + grantTtl;
      grantId = await grant.save();
      const record: ExchangeRecord = { ...(act ? { act } : {}), subject: { iss: subject.iss, sub: subject.sub, ...(subject.clientId ? { client: subject.clientId } : {}) } };
      const [, linked] = await Promise.all([
        store.set(exchangeRecordKey(grantId), record, grantTtl),
        linkChildGrant(store, subject.grantIds, grantId, grantTtl),
      ]);
      if (!linked) {
        // The subject's grant was revoked while this exchange ran: nothing may come of it.
        await Promise.all([grant.destroy(), store.delete(exchangeRecordKey(grantId))]);
        throw invalidGrant('subject_token: the grant behind the token has been revoked');
      }
      if (reuseKey) {
        childGrants.set(reuseKey, { id: grantId, exp: grant.exp });
      }
    }
    let issued: string;
    let expiresIn: number;
    let tokenType = 'N_A';
    const cert = deps.certificate?.(ctx);
    if (requested === 'access_token' || requested === 'jwt') {
      const format = requested === 'jwt' ? 'jwt' : rs!.accessTokenFormat;
      const at = new provider.AccessToken({ accountId: account.id, client, grantId, gty: TOKEN_EXCHANGE_GRANT, expiresIn: accessTtl });
      at.resourceServer = new provider.ResourceServer(rs!.audience, {
        audience: rs!.audience,
        scope,
        accessTokenTTL: accessTtl,
        accessTokenFormat: format,
        ...(format === 'jwt' ? { jwt: { sign: { alg: rs!.signingAlg } } } : {}),
      });
      at.scope = scope || undefined;
      if (cert && client.tlsClientCertificateBoundAccessTokens) at.setThumbprint('x5t', cert);
      (at as unknown as { [PENDING_CLAIMS]: ExchangeClaims })[PENDING_CLAIMS] = { ...(act ? { act } : {}), exchanged: true, account };
      ctx.oidc.entity('AccessToken', at);
      issued = await at.save();
      if (format === 'jwt') {
        // Recorded, so that introspection answers for it and revoking its grant ends it at the gateway too.
        await recordJwtAccessToken(store, issued, {
          jti: at.jti, kind: 'AccessToken', iat: at.iat ?? now(), exp: now() + accessTtl, accountId: account.id, clientId, grantId,
          gty: TOKEN_EXCHANGE_GRANT, aud: rs!.audience, ...(at.scope ? { scope: at.scope } : {}), extra: { ...(at.extra ?? {}) },
          ...(at['x5t#S256'] ? { 'x5t#S256': at['x5t#S256'] } : {}),
        }, accessTtl);
      }
      expiresIn = accessTtl;
      tokenType = at.tokenType;
    } else if (wantsRefresh) {
      const rt = new provider.RefreshToken({
        accountId: account.id, client, grantId, gty: TOKEN_EXCHANGE_GRANT, expiresIn: refreshTtl,
        scope: ['openid', 'offline_access', ...granted].join(' '), resource: rs!.audience, rotations: 0, iiat: now(),
      });
      ctx.oidc.entity('RefreshToken', rt);
      issued = await rt.save();
      expiresIn = refreshTtl;
    } else {
      const idScopes = ['openid', ...subject.scopes.filter((s) => s !== 'openid' && OIDC_ONLY.has(s) && s !== 'offline_access')];
      const token = new provider.IdToken({ ...accountClaims(account, config, idScopes), sub: account.id }, { ctx, client });
      (token as unknown as { scope: string }).scope = idScopes.join(' ');
      if (act) token.set('act', act);
      // Like every ID token of this issuer, it names its grant (the exchanged one): exchanged again, that grant decides.
      token.set(GRANT_REFERENCE_CLAIM, grantReference(grantId));
      issued = await token.issue({ use: 'idtoken', expiresAt: now() + idTtl });
      expiresIn = idTtl;
    }

    ctx.body = {
      access_token: issued,
      issued_token_type: TOKEN_TYPE_URNS[requested],
      token_type: tokenType,
      expires_in: expiresIn,
      ...(granted.length && requested !== 'id_token' ? { scope: wantsRefresh ? `offline_access ${scope}` : scope } : {}),
    };
    ctx.state.tokenExchange = { subject: account.id, act, audience: rs?.audience, granted, dropped, requested, mode };
    void audit.record({
      type: 'token.exchanged',
      actor: `client:${clientId}`,
      outcome: 'success',
      ip: ctx.ip,
      client: clientId,
      target: account.id,
      detail: {
        subject: { sub: account.id, username: account.username, iss: subject.iss, token_type: subject.type, client: subject.clientId },
        act: act ?? null,
        mode,
        audience: rs?.audience ?? null,
        requested_token_type: requested,
        scopes_granted: granted,
        scopes_dropped: dropped,
        expires_in: expiresIn,
      },
    });
  }

  provider.registerGrantType(TOKEN_EXCHANGE_GRANT, handler, PARAMETERS, REPEATABLE);
}
