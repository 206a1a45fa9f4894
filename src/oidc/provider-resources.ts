/**
 * Provider configuration step: resource indicators (RFC 8707). Which
 * resource server a token is for when the request names none, and what a
 * token for it may carry: the scopes the resource server accepts, narrowed by
 * the client's configuration and registration and, for a user's token, by
 * the scope policy. Answers are memoized: this runs for every token.
 */
import { errors, type Configuration, type KoaContextWithOIDC } from 'oidc-provider';
import { ADMIN_SCOPE, CONSOLE_CLIENT_ID, HOST_AUTH_SCOPE, isHostClientId, WLCG_ANY_AUDIENCE } from '../config/names.ts';
import type { ClientConfig } from '../config/schema.ts';
import { isGroupSelectionScope, isWlcgScope, scopeCovered } from '../scopes/wlcg.ts';
import type { ProviderParts } from './provider-parts.ts';
import { registeredResourceScopes, withinRegisteredScopes } from './registered-clients.ts';

/** Distinct (account, resource, grant, scopes) answers kept per client; its memo starts over when full. */
const RESOURCE_INFO_MEMO_SIZE = 10_000;
type ResourceServerInfo = Awaited<ReturnType<NonNullable<NonNullable<NonNullable<Configuration['features']>['resourceIndicators']>['getResourceServerInfo']>>>;

/** The artifacts whose granted scopes a token request redeems. */
const REDEEMED = ['AuthorizationCode', 'RefreshToken', 'DeviceCode', 'BackchannelAuthenticationRequest'] as const;

/** Candidate scopes of a token request: asked for now, or granted earlier (code, refresh, device). */
function candidateScopes(ctx: KoaContextWithOIDC): Set<string> {
  const out = new Set<string>();
  const add = (value: unknown) => {
    if (typeof value === 'string') for (const s of value.split(' ')) if (s) out.add(s);
  };
  add(ctx.oidc.params?.scope);
  const entities = ctx.oidc.entities as Record<string, { scope?: string } | undefined>;
  for (const name of REDEEMED) add(entities[name]?.scope);
  return out;
}

/** The inputs of {@link candidateScopes} as they came, for a memo key (no splitting, no set: this runs on every token). */
function candidateScopesKey(ctx: KoaContextWithOIDC): string {
  const scope = ctx.oidc.params?.scope;
  const { AuthorizationCode: code, RefreshToken: refresh, DeviceCode: device, BackchannelAuthenticationRequest: ciba } = ctx.oidc.entities as Partial<Record<typeof REDEEMED[number], { scope?: string }>>;
  // Named reads rather than a loop over the names: property loads by a varying key go megamorphic.
  // Each value with its length: a scope parameter may hold any character, so no separator alone keeps them apart.
  const part = (value: unknown) => (typeof value === 'string' ? `${value.length}:${value}` : '-');
  return `${part(scope)}${part(code?.scope)}${part(refresh?.scope)}${part(device?.scope)}${part(ciba?.scope)}`;
}

/**
 * Whether a token of this request may carry `fedgate.admin` (the admin API's
 * scope) as far as the client is concerned: only a configured client (a
 * dynamically registered one never), for its own token (client credentials)
 * only when its `scopes` list names it. For a user's token the client's
 * `scopes` list (when it has one) must name it too, and the scope policy
 * decides. (Token exchange never reaches the admin audience: src/exchange.)
 */
function adminScopeAllowed(clientId: string, clientConfig: ClientConfig | undefined, grantType: 'client_credentials' | 'other'): boolean {
  if (clientId === CONSOLE_CLIENT_ID) return grantType === 'other';
  if (!clientConfig) return false;
  return grantType !== 'client_credentials' || (clientConfig.scopes?.includes(ADMIN_SCOPE) ?? false);
}

/** The account a token request or authorization is for, when there is one. */
function accountIdOf(ctx: KoaContextWithOIDC): string | undefined {
  const entities = ctx.oidc.entities as Record<string, { accountId?: string } | undefined>;
  return ctx.oidc.account?.accountId
    ?? entities.AuthorizationCode?.accountId ?? entities.RefreshToken?.accountId ?? entities.DeviceCode?.accountId
    ?? entities.BackchannelAuthenticationRequest?.accountId
    ?? ctx.oidc.session?.accountId;
}

/** The `resourceIndicators` feature. */
export function resourceIndicators(parts: ProviderParts): NonNullable<NonNullable<Configuration['features']>['resourceIndicators']> {
  const { deps, clientsById, profileFor } = parts;
  const { accounts, resourceServers, policy } = deps;
  const lifetimes = deps.config.lifetimes;
  // Per client object: oidc-provider keeps one per static client and per stored version of a registered one.
  const resourceInfoMemo = new WeakMap<object, { policyVersion: number; resourcesVersion: number; byKey: Map<string, ResourceServerInfo> }>();
  return {
    enabled: true,
    defaultResource: async (ctx, client, oneOf) => {
      if (oneOf) return oneOf[0]!;
      const configured = clientsById.get(client.clientId)?.defaultAudience;
      if (configured) return configured;
      // WLCG profile §2.1.3: capability requests without an audience get the "any" audience.
      const requested = String(ctx.oidc.params?.scope ?? '').split(' ');
      if (profileFor(client.clientId) === 'wlcg' && requested.some((s) => isWlcgScope(s) && !s.startsWith('wlcg.groups'))) {
        return WLCG_ANY_AUDIENCE;
      }
      // WLCG profile §2.2.4: a host's token for any resource provider that authorizes on its `sub`.
      if (requested.includes(HOST_AUTH_SCOPE) && isHostClientId(client.clientId)) return WLCG_ANY_AUDIENCE;
      return undefined as unknown as string;
    },
    useGrantedResource: async () => true,
    getResourceServerInfo: async (ctx, resourceIndicator, client) => {
      const rs = resourceServers.get(resourceIndicator);
      if (!rs) throw new errors.InvalidTarget('unknown resource server');
      const grantType = ctx.oidc.params?.grant_type === 'client_credentials' ? 'client_credentials' : 'other';
      const accountId = grantType === 'client_credentials' ? undefined : accountIdOf(ctx);
      // The answer depends only on the client (its configuration and registration: one object per version of them),
      // these inputs and the policy and resource server versions; services ask the same question thousands of times a second.
      let memo = resourceInfoMemo.get(client);
      if (!memo || memo.policyVersion !== policy.version || memo.resourcesVersion !== resourceServers.version) {
        memo = { policyVersion: policy.version, resourcesVersion: resourceServers.version, byKey: new Map() };
        resourceInfoMemo.set(client, memo);
      }
      const memoKey = `${accountId ?? ''}\u0000${resourceIndicator}\u0000${grantType}\u0000${candidateScopesKey(ctx)}`;
      const known = memo.byKey.get(memoKey);
      if (known) return known;
      const candidates = candidateScopes(ctx);
      const clientConfig = clientsById.get(client.clientId);
      // WLCG profile §2.2.4: only a host client's own token (client credentials) says "authorize on my sub".
      let scopes = resourceServers.acceptedScopes(rs, candidates).filter((s) => s !== HOST_AUTH_SCOPE);
      if (candidates.has(HOST_AUTH_SCOPE) && grantType === 'client_credentials' && isHostClientId(client.clientId)) scopes.push(HOST_AUTH_SCOPE);
      if (clientConfig?.scopes) scopes = scopes.filter((s) => scopeCovered(s, clientConfig.scopes!));
      const registered = registeredResourceScopes(client);
      if (registered) scopes = withinRegisteredScopes(scopes, registered);
      if (resourceServers.isAdmin(rs) && !adminScopeAllowed(client.clientId, clientConfig, grantType)) scopes = scopes.filter((s) => s !== ADMIN_SCOPE);
      if (accountId) {
        // The scope policy decides what a user's token may carry; WLCG group selection is not a capability.
        const account = await accounts.findById(accountId);
        const governed = scopes.filter((s) => !isGroupSelectionScope(s));
        const allowed = new Set(account ? policy.allowedScopes(account, rs.audience, governed) : []);
        // A group manager gets the admin API's scope as well: the admin API opens them only their groups' member routes.
        if (account && resourceServers.isAdmin(rs) && governed.includes(ADMIN_SCOPE) && !allowed.has(ADMIN_SCOPE)
          && (await deps.groups.managedBy(account.id)).length) allowed.add(ADMIN_SCOPE);
        scopes = scopes.filter((s) => isGroupSelectionScope(s) || allowed.has(s));
      }
      const grantDefault = grantType === 'client_credentials' ? lifetimes.clientCredentials : lifetimes.accessToken;
      const info = {
        audience: rs.audience,
        scope: scopes.join(' '),
        accessTokenTTL: rs.accessTokenTtl ?? clientConfig?.accessTokenTtl ?? grantDefault,
        accessTokenFormat: rs.accessTokenFormat,
        ...(rs.accessTokenFormat === 'jwt' ? { jwt: { sign: { alg: rs.signingAlg } } } : {}),
      };
      if (memo.byKey.size >= RESOURCE_INFO_MEMO_SIZE) memo.byKey.clear();
      memo.byKey.set(memoKey, info);
      return info;
    },
  };
}
