import Provider, { errors, interactionPolicy, type Configuration, type KoaContextWithOIDC } from 'oidc-provider';
import { aupPending } from '../accounts/aup.ts';
import { AUP_REASON } from '../config/names.ts';
import { GRANT_REFERENCE_CLAIM } from '../grants/grant-reference.ts';
import { SIGNING_ALGORITHMS } from '../keys/index.ts';
import { storeAdapterFactory } from './adapter.ts';
import { SCOPE_CLAIMS } from './claims.ts';
import { clientDialects } from './client-dialects.ts';
import { settleInitialAccessTokens, singleUseRegistrationPolicies } from './initial-access-token.ts';
import { introspectionScopes } from './introspection-scopes.ts';
import { configuredJwksFetch, OIDC_SCOPES, staticClients } from './provider-clients.ts';
import { listenToProviderEvents } from './provider-events.ts';
import { deviceFlow, renderError, rpInitiatedLogout } from './provider-pages.ts';
import { providerParts, type ProviderDeps, type ProviderParts } from './provider-parts.ts';
import { resourceIndicators } from './provider-resources.ts';
import { tokenSettings } from './provider-tokens.ts';
import { assertRefreshTarget } from './refresh-target.ts';
import { registrationMetadataValidator, registrationResponseScope, RESOURCE_SCOPE } from './registered-clients.ts';
import { viewingAdapterFactory } from './token-request-view.ts';
import { userinfoJwtRefusal } from './userinfo-jwt.ts';

export { clientMetadata, OIDC_SCOPES } from './provider-clients.ts';
export type { ProviderDeps } from './provider-parts.ts';

/**
 * Builds the oidc-provider instance: protocol behaviour is oidc-provider's;
 * this wires in fedgate's store, accounts, resource servers, token profiles,
 * pages and events through its documented hooks, in named steps (as
 * oidc-provider itself is one module per endpoint): the configuration
 * (clients, protocol settings, features, tokens, pages), the middleware in
 * front of its endpoints, and what fedgate hears from its events.
 */
export function createProvider(deps: ProviderDeps): Provider {
  const parts = providerParts(deps);
  const provider = new Provider(deps.config.issuer, providerConfiguration(parts));
  installMiddleware(provider, parts);
  listenToProviderEvents(provider, deps);
  settleInitialAccessTokens(provider, deps.store, (err) => deps.logger.warn({ err: { message: err.message } }, 'initial access token not settled after a registration'));
  return provider;
}

/** The oidc-provider configuration, one step per concern. */
function providerConfiguration(parts: ProviderParts): Configuration {
  const { deps } = parts;
  const { config } = deps;
  return {
    adapter: viewingAdapterFactory(storeAdapterFactory(deps.store)),
    clients: staticClients(config),
    fetch: configuredJwksFetch(config),
    ...protocolSettings(parts),
    features: features(parts),
    ...tokenSettings(parts),
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}`, policy: interactionPrompts(parts) },
    clientBasedCORS: (_ctx, origin, client) => {
      if (origin === 'null') return false;
      return client.redirectUris?.some((uri) => URL.parse(uri)?.origin === origin) ?? false;
    },
    renderError: renderError(parts),
  };
}

/** Client authentication, parameters, keys, cookies, scopes and claims, algorithms, PKCE and refresh rotation. */
function protocolSettings(parts: ProviderParts): Configuration {
  const { deps } = parts;
  const { resourceServers } = deps;
  return {
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
  };
}

/** oidc-provider's features as fedgate uses them. */
function features(parts: ProviderParts): NonNullable<Configuration['features']> {
  const { deps } = parts;
  const { config } = deps;
  return {
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
    deviceFlow: deviceFlow(parts),
    rpInitiatedLogout: rpInitiatedLogout(),
    registration: {
      enabled: config.registration.enabled,
      initialAccessToken: true,
      issueRegistrationAccessToken: true,
      // An initial access token allows one registration (src/oidc/initial-access-token.ts).
      policies: singleUseRegistrationPolicies(deps.store),
    },
    registrationManagement: { enabled: config.registration.enabled, rotateRegistrationAccessToken: true },
    resourceIndicators: resourceIndicators(parts),
  };
}

/**
 * The interaction prompts. The Acceptable Use Policy is a reason for the
 * consent step (after login, before consent), so a signed-in user whose
 * accepted version is older is asked again too; src/interaction shows the policy first.
 */
function interactionPrompts(parts: ProviderParts): ReturnType<typeof interactionPolicy.base> {
  const { config, accounts } = parts.deps;
  const prompts = interactionPolicy.base();
  if (config.aup) {
    prompts.get('consent')!.checks.add(new interactionPolicy.Check(AUP_REASON, 'the acceptable use policy must be accepted', async (ctx) => {
      const accountId = ctx.oidc.session?.accountId;
      const account = accountId ? await accounts.findById(accountId) : undefined;
      return account && aupPending(account, config.aup) ? interactionPolicy.Check.REQUEST_PROMPT : interactionPolicy.Check.NO_NEED_TO_PROMPT;
    }));
  }
  return prompts;
}

/** fedgate's middleware in front of oidc-provider's endpoints, and token exchange's. */
function installMiddleware(provider: Provider, parts: ProviderParts): void {
  const { deps, clientsById } = parts;
  const { config, logger, resourceServers } = deps;
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
}
