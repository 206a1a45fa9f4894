/**
 * Provider configuration step: what tokens carry and how long they live.
 * Extra claims by token profile (WLCG, AARC) and the actor chain of
 * exchanged tokens, the JWT customizer, lifetimes, and the account a token
 * speaks for (findAccount: disabled accounts and a pending usage policy get no tokens).
 */
import { errors, type Configuration } from 'oidc-provider';
import { tokenRefusal } from '../accounts/aup.ts';
import { GRANT_REFERENCE_CLAIM, grantReference } from '../grants/grant-reference.ts';
import { fromExchange } from '../grants/token-types.ts';
import { accountClaims, profileTokenClaims } from './claims.ts';
import type { ProviderParts } from './provider-parts.ts';

/** `extraTokenClaims`, `formats`, `ttl` and `findAccount`. */
export function tokenSettings(parts: ProviderParts): Pick<Configuration, 'extraTokenClaims' | 'formats' | 'ttl' | 'findAccount'> {
  const { deps, clientsById, profileFor } = parts;
  const { config, accounts, resourceServers } = deps;
  const lifetimes = config.lifetimes;
  return {
    extraTokenClaims: (_ctx, token) => {
      const audience = (token as { resourceServer?: { audience?: string } }).resourceServer?.audience;
      const profile = profileFor(token.clientId, audience);
      const { accountId, gty, grantId } = token as { accountId?: string; gty?: string; grantId?: string };
      const pending = deps.tokenExchange.pendingClaims(token);
      const scopes = () => (token.scope ?? '').split(' ').filter(Boolean);
      // A client's own token (client credentials) needs no store read: answered without a promise.
      if (!pending && !accountId && !fromExchange(gty)) return profileTokenClaims(profile, undefined, scopes(), config);
      return (async () => {
        const [account, exchange] = await Promise.all([
          pending?.account ?? (accountId ? accounts.findById(accountId) : undefined),
          // RFC 8693 §4.1: tokens of an exchanged grant carry its actor chain, also when refreshed later.
          pending ?? (fromExchange(gty) ? deps.tokenExchange.grantClaims(grantId) : undefined),
        ]);
        const claims = profileTokenClaims(profile, account, scopes(), config);
        if (!exchange) return claims;
        return { ...claims, ...(exchange.act ? { act: exchange.act } : {}), exchanged: true };
      })();
    },
    formats: {
      customizers: {
        // WLCG profile §4.3.1: nbf slightly backdated so tokens work at once where clocks differ a little.
        // Synchronous: it awaits nothing, and every JWT access token passes here.
        jwt: (_ctx, token, jwt) => {
          const iat = jwt.payload.iat as number | undefined;
          if (iat) jwt.payload.nbf = iat - 60;
          // A user's token names its grant (by a hash of its id): token exchange reads that grant's offline_access.
          const { grantId, accountId } = token as { grantId?: string; accountId?: string };
          if (grantId && accountId) jwt.payload[GRANT_REFERENCE_CLAIM] = grantReference(grantId);
          // WLCG profile §2.2.3: a storage with a base path reads the token's paths relative to it.
          if (typeof jwt.payload.scope === 'string') {
            jwt.payload.scope = resourceServers.audienceScope((token as { resourceServer?: { audience?: string } }).resourceServer?.audience, jwt.payload.scope);
          }
        },
      },
    },
    ttl: {
      AccessToken: (_ctx, token, client) =>
        token.resourceServer?.accessTokenTTL ?? clientsById.get(client.clientId)?.accessTokenTtl ?? lifetimes.accessToken,
      ClientCredentials: (_ctx, token, client) =>
        token.resourceServer?.accessTokenTTL ?? clientsById.get(client.clientId)?.accessTokenTtl ?? lifetimes.clientCredentials,
      RefreshToken: (_ctx, _token, client) => clientsById.get(client.clientId)?.refreshTokenTtl ?? lifetimes.refreshToken,
      IdToken: () => lifetimes.idToken,
      AuthorizationCode: () => lifetimes.authorizationCode,
      DeviceCode: () => lifetimes.deviceCode,
      Interaction: () => lifetimes.interaction,
      Session: () => lifetimes.session,
      Grant: () => lifetimes.grant,
    },
    findAccount: async (ctx, sub, token) => {
      const account = await accounts.findById(sub);
      // Disabled accounts get no tokens: refresh, userinfo and new grants all fail for them.
      if (!account || account.disabled) return undefined;
      // Every grant of the token endpoint (code, refresh, device code) reads the account here: the usage policy holds for all.
      const refusal = ctx?.oidc?.route === 'token' ? tokenRefusal(account, config.aup) : undefined;
      if (refusal) throw new errors.CustomOIDCProviderError('invalid_grant', refusal);
      return {
        accountId: account.id,
        claims: async (use, scope) => {
          const claims = accountClaims(account, config, (scope ?? '').split(' ')) as { sub: string };
          if (use !== 'id_token') return claims;
          // An ID token names the grant it was issued under (the code's, device code's or refresh token's): token
          // exchange decides from that grant alone whether the user granted offline_access.
          const grantId = (token as { grantId?: string } | undefined)?.grantId ?? ctx?.oidc?.entities.Grant?.jti;
          return grantId ? { ...claims, [GRANT_REFERENCE_CLAIM]: grantReference(grantId) } : claims;
        },
      };
    },
  };
}
