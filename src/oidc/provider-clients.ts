/**
 * Provider configuration step: the clients oidc-provider knows without a
 * registration (the configured ones and fedgate's own account page and
 * console), and how their keys are fetched.
 */
import type { ClientMetadata, Configuration } from 'oidc-provider';
import { ACCOUNT_CLIENT_ID, CONSOLE_CLIENT_ID } from '../config/names.ts';
import type { ClientConfig, Config, GrantTypeName } from '../config/schema.ts';
import { TOKEN_EXCHANGE_GRANT } from '../grants/token-types.ts';

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
    // Without OIDC scopes in its list (or without a list) a client may ask for all of them: no `scope` says so to
    // oidc-provider (an empty one would break the client), and spares it an allow-list Set on every token request.
    ...(listed.length ? { scope: listed.join(' ') } : {}),
  };
}

/** The configured clients, and fedgate's own: the account page's (`/account`) and the console's (`/admin`), both public. */
export function staticClients(config: Config): ClientMetadata[] {
  return [...config.clients.map(clientMetadata), {
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
  }];
}

/**
 * oidc-provider fetches client JWKS through a dispatcher that refuses private and loopback addresses
 * (SSRF protection, right for URLs a registering client names). A configured client's jwksUri is the
 * operator's choice and often an internal host: it is fetched directly.
 */
export function configuredJwksFetch(config: Config): NonNullable<Configuration['fetch']> {
  const configuredJwksUris = new Set(config.clients.flatMap((c) => (c.jwksUri ? [new URL(c.jwksUri).href] : [])));
  return (url, options) => {
    const href = url instanceof URL ? url.href : String(url);
    if (!configuredJwksUris.has(href)) return globalThis.fetch(url, options);
    const { dispatcher: _ssrfGuard, ...direct } = options as RequestInit & { dispatcher?: unknown };
    return globalThis.fetch(url, direct);
  };
}
