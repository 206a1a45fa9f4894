import Provider, { errors, interactionPolicy, type ClientMetadata, type Configuration, type KoaContextWithOIDC } from 'oidc-provider';
import type { ClientConfig, GrantTypeName, TokenProfile } from '../config/schema.ts';
import type { Services } from '../services.ts';
import { sendPage } from '../http/page.ts';
import * as pages from '../views/pages.ts';
import { fromExchange, TOKEN_EXCHANGE_GRANT } from '../grants/token-types.ts';
import { sendUnavailable } from '../http/unavailable.ts';
import { SIGNING_ALGORITHMS } from '../keys/index.ts';
import { isStoreUnavailable } from '../store/errors.ts';
import { storeAdapterFactory } from './adapter.ts';
import type { TokenExchangeExtension } from './token-exchange-seam.ts';
import { clientDialects } from './client-dialects.ts';
import { userinfoJwtRefusal } from './userinfo-jwt.ts';
import { GRANT_REFERENCE_CLAIM, grantReference } from '../grants/grant-reference.ts';
import { introspectionScopes } from './introspection-scopes.ts';
import { registeredResourceScopes, registrationMetadataValidator, registrationResponseScope, RESOURCE_SCOPE, withinRegisteredScopes } from './registered-clients.ts';
import { viewingAdapterFactory } from './token-request-view.ts';
import { singleUseInitialAccessTokens } from './initial-access-token.ts';
import { assertRefreshTarget } from './refresh-target.ts';
import { accountClaims, profileTokenClaims, SCOPE_CLAIMS } from './claims.ts';
import { aupPending, tokenRefusal } from '../accounts/aup.ts';
import { isGroupSelectionScope, isWlcgScope, scopeCovered } from '../scopes/wlcg.ts';
import { ACCOUNT_CLIENT_ID, ADMIN_SCOPE, AUP_REASON, CONSOLE_CLIENT_ID, HOST_AUTH_SCOPE, isHostClientId, WLCG_ANY_AUDIENCE } from '../config/names.ts';

/** Everything the provider configuration needs from the rest of fedgate. */
export interface ProviderDeps extends Services {
  /** Private JWKs, signing key of each algorithm first (src/keys). */
  jwks: { keys: object[] };
  cookieKeys: string[];
  /** Client certificates of requests (X.509 bridge): enables RFC 8705 mTLS client authentication and certificate-bound tokens. */
  clientCertificates?: {
    pem(ctx: KoaContextWithOIDC): string | undefined;
    authorized(ctx: KoaContextWithOIDC): boolean;
    subjectMatches(ctx: KoaContextWithOIDC, property: string, expected: string): boolean;
  };
  /** The token exchange grant (src/exchange), installed on every provider built. */
  tokenExchange: TokenExchangeExtension;
}

const GRANT_TYPE_URNS: Record<GrantTypeName, string> = {
  authorization_code: 'authorization_code',
  refresh_token: 'refresh_token',
  device_code: 'urn:ietf:params:oauth:grant-type:device_code',
  client_credentials: 'client_credentials',
  token_exchange: TOKEN_EXCHANGE_GRANT,
};

/**
 * Static OIDC scopes; resource server scopes are resolved per request
 * (getResourceServerInfo). `fedgate.admin` is not one of them: it belongs to
 * the admin API's resource server, and a dynamic registration naming it is
 * refused (invalid_client_metadata) by oidc-provider's scope check.
 */
export const OIDC_SCOPES = ['openid', 'offline_access', 'profile', 'email', 'groups', 'wlcg.groups', 'eduperson_entitlement', 'voperson_id', 'eduperson_assurance', 'aarc'];

/** oidc-provider client metadata for a configured client. */
export function clientMetadata(client: ClientConfig): ClientMetadata {
  const grantTypes = client.grantTypes.map((g) => GRANT_TYPE_URNS[g]);
  // Every confidential client reaches the token exchange handler, so that one not allowed it hears
  // unauthorized_client (RFC 6749 §5.2) rather than a generic invalid_request.
  const confidential = !!client.clientSecret || client.tokenEndpointAuthMethod === 'private_key_jwt' || client.tokenEndpointAuthMethod === 'tls_client_auth' || client.tokenEndpointAuthMethod === 'self_signed_tls_client_auth';
  if (confidential && !grantTypes.includes(TOKEN_EXCHANGE_GRANT)) grantTypes.push(TOKEN_EXCHANGE_GRANT);
  const listed = client.scopes?.filter((s) => OIDC_SCOPES.includes(s)) ?? [];
  const staticScopes = listed.length ? listed : OIDC_SCOPES;
  return {
    client_id: client.clientId,
    ...(client.clientSecret ? { client_secret: client.clientSecret } : {}),
    client_name: client.name ?? client.clientId,
    application_type: client.applicationType,
    grant_types: grantTypes,
    response_types: client.grantTypes.includes('authorization_code') ? ['code'] : [],
    redirect_uris: client.redirectUris,
    post_logout_redirect_uris: client.postLogoutRedirectUris,
    token_endpoint_auth_method: client.tokenEndpointAuthMethod ?? (client.clientSecret ? 'client_secret_basic' : 'none'),
    ...(client.tlsClientAuthSubjectDn ? { tls_client_auth_subject_dn: client.tlsClientAuthSubjectDn } : {}),
    ...(client.jwks ? { jwks: client.jwks as ClientMetadata['jwks'] } : {}),
    ...(client.jwksUri ? { jwks_uri: client.jwksUri } : {}),
    ...(client.certificateBoundAccessTokens ? { tls_client_certificate_bound_access_tokens: true } : {}),
    // An allow-list of resource scopes only leaves the OIDC scopes unrestricted (an empty `scope` would break the client).
    scope: staticScopes.join(' '),
  };
}

/** oidc-provider's events for requests it refused with an OAuth error (lib/helpers/initialize_app.js). */
const REFUSAL_EVENTS = [
  'authorization.error', 'grant.error', 'userinfo.error', 'device_authorization.error', 'code_verification.error',
  'device_resume.error', 'pushed_authorization_request.error', 'introspection.error', 'revocation.error',
  'registration_create.error', 'registration_read.error', 'registration_update.error', 'registration_delete.error',
  'end_session.error', 'end_session_confirm.error', 'backchannel.error',
] as const;

/** Distinct (resource, client, grant, scopes) answers kept; the memo starts over when full. */
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
  let key = typeof scope === 'string' ? scope : '';
  const entities = ctx.oidc.entities as Record<string, { scope?: string } | undefined>;
  for (const name of REDEEMED) {
    const granted = entities[name]?.scope;
    if (typeof granted === 'string') key += `\u0001${name}\u0001${granted}`;
  }
  return key;
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

/**
 * Builds the oidc-provider instance: protocol behaviour is oidc-provider's;
 * this wires in fedgate's store, accounts, resource servers, token profiles,
 * pages and events through its documented hooks.
 */
export function createProvider(deps: ProviderDeps): Provider {
  const { config, accounts, resourceServers, metrics, audit, logger, policy } = deps;
  const clientsById = new Map(config.clients.map((c) => [c.clientId, c]));
  const lifetimes = config.lifetimes;
  const configuredJwksUris = new Set(config.clients.flatMap((c) => (c.jwksUri ? [new URL(c.jwksUri).href] : [])));

  const resourceInfoMemo = new Map<string, ResourceServerInfo>();
  const profileFor = (clientId: string | undefined, audience?: string): TokenProfile =>
    (audience ? resourceServers.get(audience)?.profile : undefined)
    ?? (clientId ? clientsById.get(clientId)?.profile : undefined)
    ?? config.defaultProfile;

  // The Acceptable Use Policy is a reason for the consent step (after login, before consent), so a signed-in user
  // whose accepted version is older is asked again too; src/interaction shows the policy first.
  const prompts = interactionPolicy.base();
  if (config.aup) {
    prompts.get('consent')!.checks.add(new interactionPolicy.Check(AUP_REASON, 'the acceptable use policy must be accepted', async (ctx) => {
      const accountId = ctx.oidc.session?.accountId;
      const account = accountId ? await accounts.findById(accountId) : undefined;
      return account && aupPending(account, config.aup) ? interactionPolicy.Check.REQUEST_PROMPT : interactionPolicy.Check.NO_NEED_TO_PROMPT;
    }));
  }

  const configuration: Configuration = {
    adapter: viewingAdapterFactory(storeAdapterFactory(deps.store)),
    clients: [...config.clients.map(clientMetadata), {
      client_id: ACCOUNT_CLIENT_ID,
      client_name: 'Your fedgate account',
      application_type: 'web',
      grant_types: ['authorization_code'],
      response_types: ['code'],
      redirect_uris: [`${config.issuer}/account/callback`],
      token_endpoint_auth_method: 'none',
      scope: 'openid',
    }, {
      client_id: CONSOLE_CLIENT_ID,
      client_name: 'fedgate console',
      application_type: 'web',
      grant_types: ['authorization_code'],
      response_types: ['code'],
      redirect_uris: [`${config.issuer}/admin/callback`],
      token_endpoint_auth_method: 'none',
      scope: 'openid profile',
    }],
    // oidc-provider fetches client JWKS through a dispatcher that refuses private and loopback addresses
    // (SSRF protection, right for URLs a registering client names). A configured client's jwksUri is the
    // operator's choice and often an internal host: it is fetched directly.
    fetch: (url, options) => {
      const href = url instanceof URL ? url.href : String(url);
      if (!configuredJwksUris.has(href)) return globalThis.fetch(url, options);
      const { dispatcher: _ssrfGuard, ...direct } = options as RequestInit & { dispatcher?: unknown };
      return globalThis.fetch(url, direct);
    },
    clientAuthMethods: [
      'none', 'client_secret_basic', 'client_secret_post', 'client_secret_jwt', 'private_key_jwt',
      ...(deps.clientCertificates ? ['tls_client_auth', 'self_signed_tls_client_auth'] as const : []),
    ],
    // An authorization request may name the identity provider to use (skips the discovery page): `idp`, or AARC-G061's `idp_hint`.
    extraParams: ['idp', 'idp_hint'],
    jwks: deps.jwks as Configuration['jwks'],
    cookies: {
      keys: deps.cookieKeys,
      long: { signed: true, httpOnly: true, sameSite: 'lax' },
      short: { signed: true, httpOnly: true, sameSite: 'lax' },
    },
    scopes: OIDC_SCOPES,
    // What oidc-gen registers: native clients without application_type, capability scopes (src/oidc/registered-clients.ts).
    extraClientMetadata: { properties: [RESOURCE_SCOPE], validator: registrationMetadataValidator(OIDC_SCOPES, resourceServers) },
    // Authorization code only: implicit and hybrid flows are out (RFC 9700 §2.1.2).
    responseTypes: ['code'],
    // ID tokens name their grant too (GRANT_REFERENCE_CLAIM, set by findAccount's claims for use id_token only).
    claims: { ...Object.fromEntries(Object.entries(SCOPE_CLAIMS).map(([k, v]) => [k, [...v]])), openid: [...SCOPE_CLAIMS.openid, GRANT_REFERENCE_CLAIM] },
    clientDefaults: {
      grant_types: ['authorization_code'],
      response_types: ['code'],
      id_token_signed_response_alg: 'ES256',
      token_endpoint_auth_method: 'client_secret_basic',
    },
    enabledJWA: {
      idTokenSigningAlgValues: [...SIGNING_ALGORITHMS],
      userinfoSigningAlgValues: [...SIGNING_ALGORITHMS],
      introspectionSigningAlgValues: [...SIGNING_ALGORITHMS],
      authorizationSigningAlgValues: [...SIGNING_ALGORITHMS],
      dPoPSigningAlgValues: ['ES256', 'EdDSA', 'Ed25519'],
    },
    pkce: {
      // RFC 7636 / OAuth 2.1: public clients must use PKCE (S256 is the only method oidc-provider 9 accepts).
      required: (_ctx, client) => client.clientAuthMethod === 'none',
    },
    // Always rotate; first refuse what would only be refused after the token is used up (src/oidc/refresh-target.ts).
    rotateRefreshToken: (ctx) => {
      assertRefreshTarget(ctx, (resource) => resourceServers.get(resource) !== undefined);
      return true;
    },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: {
        enabled: true,
        // Resource servers (confidential clients) may introspect any token; a public client only its own.
        allowedPolicy: async (ctx, client, token) => client.clientAuthMethod !== 'none' || token.clientId === ctx.oidc.client?.clientId,
      },
      revocation: {
        enabled: true,
        allowedPolicy: async (_ctx, client, token) => {
          if (token.clientId === client.clientId) return true;
          if (client.clientAuthMethod === 'none') return false;
          throw new errors.InvalidRequest('client is not authorized to revoke the presented token');
        },
      },
      userinfo: { enabled: true },
      claimsParameter: { enabled: true },
      pushedAuthorizationRequests: { enabled: true },
      // RFC 8705: tls_client_auth, self_signed_tls_client_auth and cnf.x5t#S256-bound tokens, fed by the X.509 bridge.
      mTLS: deps.clientCertificates ? {
        enabled: true,
        certificateBoundAccessTokens: true,
        selfSignedTlsClientAuth: true,
        tlsClientAuth: true,
        getCertificate: (ctx) => deps.clientCertificates!.pem(ctx),
        certificateAuthorized: (ctx) => deps.clientCertificates!.authorized(ctx),
        certificateSubjectMatches: (ctx, property, expected) => deps.clientCertificates!.subjectMatches(ctx, property, expected),
      } : { enabled: false },
      dPoP: { enabled: true },
      deviceFlow: {
        enabled: true,
        charset: 'base-20',
        mask: '****-****',
        userCodeInputSource: async (ctx, form, _out, err) => {
          let error: pages.DeviceInputError | undefined;
          if (err && ('userCode' in err || err.name === 'NoCodeError')) error = 'invalid';
          else if (err && err.name === 'AbortedError') error = 'aborted';
          else if (err) error = 'other';
          // Koa's status is still its default 404 here; a re-rendered form with an error is a 400.
          const status = err ? Math.max(400, Math.min(499, (err as { statusCode?: number }).statusCode ?? 400)) : 200;
          sendPage(ctx, (nonce) => pages.deviceInputPage({ nonce, form, ...(error ? { error } : {}) }), status);
          const session = ctx.oidc.session;
          if (err && session && typeof session.exp !== 'number') {
            // oidc-provider's error path gives a session it never saved (a first visit) a new form secret and then
            // calls persist(), which throws for such a session (a 500). Saved here, the form shown also works.
            await session.save(lifetimes.session);
          }
          if (err && error === 'other') {
            logger.warn({ requestId: ctx.state?.requestId, route: ctx.oidc.route, error: (err as { error?: string }).error ?? err.name }, 'device verification request refused');
          }
        },
        userCodeConfirmSource: async (ctx, form, client, _deviceInfo, userCode) => {
          sendPage(ctx, (nonce) => pages.deviceConfirmPage({ nonce, form, clientName: client.clientName ?? client.clientId, userCode }));
        },
        successSource: async (ctx) => {
          const client = ctx.oidc.client;
          sendPage(ctx, (nonce) => pages.deviceSuccessPage({ nonce, clientName: client?.clientName ?? client?.clientId ?? 'your device' }));
        },
      },
      rpInitiatedLogout: {
        enabled: true,
        logoutSource: async (ctx, form) => {
          sendPage(ctx, (nonce) => pages.logoutPage({ nonce, form, host: ctx.host }));
        },
        postLogoutSuccessSource: async (ctx) => {
          const client = ctx.oidc.client;
          const clientName = client?.clientName ?? client?.clientId;
          sendPage(ctx, (nonce) => pages.postLogoutPage({ nonce, ...(clientName ? { clientName } : {}) }));
        },
      },
      registration: {
        enabled: config.registration.enabled,
        initialAccessToken: true,
        issueRegistrationAccessToken: true,
      },
      registrationManagement: { enabled: config.registration.enabled, rotateRegistrationAccessToken: true },
      resourceIndicators: {
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
          // The answer depends only on these inputs (and the policy version); services ask the same question thousands of times a second.
          const registeredValue = (client as unknown as Record<string, unknown>)[RESOURCE_SCOPE];
          const memoKey = `${policy.version}\u0000${resourceServers.version}\u0000${accountId ?? ''}\u0000${resourceIndicator}\u0000${client.clientId}\u0000${typeof registeredValue === 'string' ? registeredValue : ''}\u0000${grantType}\u0000${candidateScopesKey(ctx)}`;
          const memo = resourceInfoMemo.get(memoKey);
          if (memo) return memo;
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
          if (resourceInfoMemo.size >= RESOURCE_INFO_MEMO_SIZE) resourceInfoMemo.clear();
          resourceInfoMemo.set(memoKey, info);
          return info;
        },
      },
    },
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
        jwt: async (_ctx, token, jwt) => {
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
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}`, policy: prompts },
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
    clientBasedCORS: (_ctx, origin, client) => {
      if (origin === 'null') return false;
      return client.redirectUris?.some((uri) => URL.parse(uri)?.origin === origin) ?? false;
    },
    renderError: async (ctx, out, err) => {
      if (isStoreUnavailable(err)) return sendUnavailable(ctx, config.store.retryAfterSeconds);
      const status = ctx.status >= 400 ? ctx.status : 400;
      sendPage(ctx, (nonce) => pages.errorPage({
        nonce,
        error: out.error,
        ...(out.error_description ? { description: out.error_description } : {}),
        ...(ctx.state?.requestId ? { requestId: ctx.state.requestId as string } : {}),
      }), status);
    },
  };

  const provider = new Provider(config.issuer, configuration);
  provider.proxy = config.trustProxy;
  provider.use(clientDialects(provider, { logger, resourceServers }));
  provider.use(registrationResponseScope(provider.pathFor('registration')));
  provider.use(userinfoJwtRefusal(provider, logger));
  // Token exchange's middleware (introspection and revocation of recorded JWTs) and its grant type.
  deps.tokenExchange.install(provider, {
    jwks: deps.jwks,
    clientConfig: (clientId) => clientsById.get(clientId),
    ...(deps.clientCertificates ? { certificate: (ctx: KoaContextWithOIDC) => deps.clientCertificates!.pem(ctx) } : {}),
  });
  provider.use(introspectionScopes(provider.pathFor('introspection'), resourceServers));
  provider.use(singleUseInitialAccessTokens(deps.store, provider.pathFor('registration')));

  const clientIp = (ctx: KoaContextWithOIDC) => ctx.ip;
  provider.on('grant.success', (ctx: KoaContextWithOIDC) => {
    const grantType = String(ctx.oidc.params?.grant_type ?? 'unknown');
    metrics.tokenIssued(grantType);
    // Exchanges are audited in more detail (token.exchanged) by their handler.
    if (grantType === TOKEN_EXCHANGE_GRANT) return;
    const entities = ctx.oidc.entities as Record<string, { accountId?: string; scope?: string; resourceServer?: { audience?: string } } | undefined>;
    const token = entities.AccessToken ?? entities.ClientCredentials;
    const accountId = (entities.Account as { accountId?: string } | undefined)?.accountId ?? token?.accountId;
    void audit.record({
      type: 'token.issued',
      actor: accountId ?? `client:${ctx.oidc.client?.clientId}`,
      outcome: 'success',
      ip: clientIp(ctx),
      client: ctx.oidc.client?.clientId,
      detail: { grant_type: grantType, scope: token?.scope, audience: token?.resourceServer?.audience },
    });
  });
  provider.on('grant.error', (ctx: KoaContextWithOIDC, err: errors.OIDCProviderError) => {
    void audit.record({
      type: 'token.failed',
      actor: ctx.oidc?.client ? `client:${ctx.oidc.client.clientId}` : 'anonymous',
      outcome: 'failure',
      ip: clientIp(ctx),
      client: ctx.oidc?.client?.clientId,
      detail: { grant_type: String(ctx.oidc?.params?.grant_type ?? ''), error: err.error },
    });
  });
  // Operators see why a client fails: every refusal is logged with its wire error and description (never
  // parameters or credentials). A device flow client polling before the user is done is not a refusal.
  const POLLING = new Set(['authorization_pending', 'slow_down']);
  const onRefusal = provider.on.bind(provider) as (event: string, listener: (ctx: KoaContextWithOIDC, err: errors.OIDCProviderError) => void) => unknown;
  for (const event of REFUSAL_EVENTS) {
    onRefusal(event, (ctx, err) => {
      const entry = {
        requestId: ctx.state?.requestId, route: ctx.oidc?.route, client: ctx.oidc?.client?.clientId,
        error: err.error, error_description: err.error_description,
      };
      if (POLLING.has(err.error)) logger.debug(entry, 'request refused');
      else logger.info(entry, 'request refused');
    });
  }
  provider.on('end_session.success', (ctx: KoaContextWithOIDC) => {
    void audit.record({ type: 'logout', actor: ctx.oidc.session?.accountId ?? 'anonymous', outcome: 'success', ip: clientIp(ctx), client: ctx.oidc.client?.clientId });
  });
  provider.on('server_error', (ctx: KoaContextWithOIDC, err: Error) => {
    // Emitted after oidc-provider wrote its generic 500 answer, before it is sent: the store's outage becomes a 503.
    if (isStoreUnavailable(err)) {
      sendUnavailable(ctx, config.store.retryAfterSeconds);
      logger.warn({ err: { message: err.message }, route: ctx.oidc?.route }, 'store unavailable: answered 503');
      return;
    }
    logger.error({ err: { message: err.message, name: err.name, stack: err.stack }, route: ctx.oidc?.route }, 'oidc-provider server_error');
  });
  return provider;
}
