/**
 * Exchange step 3, decide: the one resource server the new token is for,
 * whether the client may exchange this subject's tokens for it (exchange
 * policy, domains `exchange` and `exchange-by`), the scopes granted and
 * dropped (never more than the subject token held, RFC 8693 §5), whether a
 * refresh token may come of it, and the lifetimes.
 */
import { errors } from 'oidc-provider';
import { effectiveGroups } from '../accounts/accounts.ts';
import type { PolicyService } from '../authz/policy-service.ts';
import { EXCHANGE_BY_DOMAIN, EXCHANGE_DOMAIN } from '../authz/types.ts';
import type { Config, ResourceServerConfig } from '../config/schema.ts';
import type { ResourceServers } from '../resource-servers/resource-servers.ts';
import { isGroupSelectionScope, scopeCovered, storageScopeProblem } from '../scopes/wlcg.ts';
import { BoundedMap } from '../util/bounded-map.ts';
import { invalidGrant } from './errors.ts';
import type { Mode, Parties, Subject } from './parties.ts';
import type { ExchangeRequest } from './request.ts';

/** Exchange decisions remembered per replica. */
const DECISION_CACHE_SIZE = 10_000;
/** Scopes about the user rather than a resource server: they go into ID tokens, never into an exchanged access token's scope. */
export const OIDC_ONLY = new Set(['openid', 'profile', 'email', 'groups', 'eduperson_entitlement', 'offline_access']);

const now = () => Math.floor(Date.now() / 1000);

/** What an exchange may carry. */
export interface Decision {
  granted: readonly string[];
  dropped: readonly string[];
  /** Whether the new token may outlive the subject token (exchange policy `outlive`). */
  outlive: boolean;
}

/** What the exchange will issue, and for how long. */
export interface ExchangePlan extends Decision {
  /** The resource server (none for an ID token). */
  rs: ResourceServerConfig | undefined;
  /** The resource server's audience, or this issuer's for an ID token. */
  audience: string;
  /** The granted scopes as one string. */
  scope: string;
  wantsRefresh: boolean;
  accessTtl: number;
  refreshTtl: number;
  idTtl: number;
  /** How long the exchanged grant lives. */
  grantTtl: number;
}

export interface ExchangeDecisionDeps {
  config: Config;
  policy: PolicyService;
  resourceServers: ResourceServers;
}

/** Decides exchanges, remembering allowed decisions by everything they depend on. */
export class ExchangeDecisions {
  readonly #deps: ExchangeDecisionDeps;
  /**
   * Decisions already made, by everything they depend on: the policy and
   * resource server versions (raised by every change this replica sees),
   * the client, the audience, the mode, the user with their groups, the
   * subject token's client and scopes, and the scope asked for. Only
   * allowed exchanges are remembered; a refusal is decided afresh.
   */
  readonly #decisions = new BoundedMap<string, Decision>(DECISION_CACHE_SIZE);

  constructor(deps: ExchangeDecisionDeps) {
    this.#deps = deps;
  }

  /**
   * Plans the exchange of `parties` asked for by `request`.
   *
   * @throws InvalidTarget, UnauthorizedClient, InvalidScope or InvalidGrant (expired subject token) when it may not happen.
   */
  plan(request: ExchangeRequest, { subject, mode }: Parties): ExchangePlan {
    const { config } = this.#deps;
    const { requested, clientConfig, client } = request;
    const rs = requested === 'id_token' ? undefined : this.#target(request);
    const audience = rs?.audience ?? config.issuer;
    const decision = this.#decide(request, subject, rs, mode);
    const cap = (ttl: number) => (decision.outlive ? ttl : Math.min(ttl, subject.exp - now()));
    if (subject.exp - now() <= 0) throw invalidGrant('subject_token: the token has expired');

    const wantsRefresh = requested === 'refresh_token';
    if (wantsRefresh) this.#assertRefreshAllowed(request.clientId, subject, audience, client.grantTypeAllowed('refresh_token'));

    const lifetimes = config.lifetimes;
    const accessTtl = cap(rs?.accessTokenTtl ?? clientConfig?.accessTokenTtl ?? lifetimes.accessToken);
    const refreshTtl = cap(clientConfig?.refreshTokenTtl ?? lifetimes.refreshToken);
    const idTtl = cap(lifetimes.idToken);
    // Access tokens share a grant while the subject token lives (a service exchanging the same user's token again reuses it).
    const grantTtl = wantsRefresh ? refreshTtl : requested === 'id_token' ? idTtl : decision.outlive ? accessTtl : Math.max(accessTtl, subject.exp - now());
    return { ...decision, rs, audience, scope: decision.granted.join(' '), wantsRefresh, accessTtl, refreshTtl, idTtl, grantTtl };
  }

  /** The one resource server the new token is for (RFC 8693 §2.1 audience / resource, RFC 8707). */
  #target(request: ExchangeRequest): ResourceServerConfig {
    const { resourceServers } = this.#deps;
    const wanted = request.targets;
    if (wanted.length > 1) throw new errors.InvalidTarget('exactly one audience or resource per exchange');
    const audience = wanted[0] ?? request.clientConfig?.defaultAudience;
    if (!audience) throw new errors.InvalidTarget('audience or resource is required');
    const rs = resourceServers.get(audience);
    if (!rs) throw new errors.InvalidTarget('unknown audience');
    // An exchanged token is never an admin token: whoever holds a user's token must not turn it into one.
    if (resourceServers.isAdmin(rs)) throw new errors.InvalidTarget('the admin API accepts no exchanged tokens');
    return rs;
  }

  #decide(request: ExchangeRequest, subject: Subject, rs: ResourceServerConfig | undefined, mode: Mode): Decision {
    if (!rs) return this.#decideNow(request, subject, rs, mode);
    const { policy, resourceServers } = this.#deps;
    const key = `${policy.version}\u0000${resourceServers.version}\u0000${request.clientId}\u0000${rs.audience}\u0000${mode}\u0000${subject.account.username}\u0000${subject.account.groups.join(',')}`
      + `\u0000${subject.origin === 'fedgate' ? subject.clientId ?? '' : '\u0001'}\u0000${request.scope ?? '\u0001'}\u0000${subject.scopes.join(' ')}`;
    let decision = this.#decisions.get(key);
    if (!decision) {
      decision = this.#decideNow(request, subject, rs, mode);
      this.#decisions.set(key, decision);
    }
    return decision;
  }

  /**
   * What an exchange may carry: whether the client may exchange this
   * subject's tokens for `rs` in `mode` (throws if not), the scopes granted
   * and dropped, and whether the new token may outlive the subject token.
   */
  #decideNow(request: ExchangeRequest, subject: Subject, rs: ResourceServerConfig | undefined, mode: Mode): Decision {
    const { config, policy, resourceServers } = this.#deps;
    const { clientId, clientConfig } = request;
    this.#authorize(clientId, subject, rs?.audience, mode);
    // Scopes: only what the subject token had (RFC 8693 §5: no up-scoping), narrowed by the request and every policy.
    const explicit = request.scope === undefined ? undefined : request.scope.split(' ').filter(Boolean);
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

  /** Is this client allowed to exchange into `audience` in `mode`? (domain `exchange`, and `exchange-by` for the subject) */
  #authorize(clientId: string, subject: Subject, resourceAudience: string | undefined, mode: Mode): void {
    const { config, policy } = this.#deps;
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

  /** A refresh token by exchange: the user granted offline_access, the policy allows it, the client has the grant. */
  #assertRefreshAllowed(clientId: string, subject: Subject, audience: string, clientMayRefresh: boolean): void {
    if (subject.offlineAccess === undefined) {
      throw invalidGrant('subject_token: the token does not name the grant it was issued under (it predates grant references), so whether the user granted offline_access cannot be decided; present a token of that login issued since');
    }
    if (!subject.offlineAccess) throw new errors.InvalidScope('the subject was not granted offline_access', 'offline_access');
    if (!this.#deps.policy.allowed({ subject: `client:${clientId}`, domain: EXCHANGE_DOMAIN, object: audience, action: 'offline_access', scopes: [] })) {
      throw new errors.UnauthorizedClient('the client is not allowed refresh tokens by exchange for this audience');
    }
    if (!clientMayRefresh) throw new errors.UnauthorizedClient('the client is not allowed the refresh_token grant');
  }
}
