/** The token exchange grant type (RFC 8693 §2.1). */
export const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';

/** Token type identifiers (RFC 8693 §3), by fedgate's short names. */
export const TOKEN_TYPE_URNS = {
  access_token: 'urn:ietf:params:oauth:token-type:access_token',
  refresh_token: 'urn:ietf:params:oauth:token-type:refresh_token',
  id_token: 'urn:ietf:params:oauth:token-type:id_token',
  jwt: 'urn:ietf:params:oauth:token-type:jwt',
} as const;

export type TokenTypeName = keyof typeof TOKEN_TYPE_URNS;

/** The short name of a token type URN, or undefined for one fedgate does not handle (SAML assertions among them). */
export function tokenTypeName(urn: unknown): TokenTypeName | undefined {
  return typeof urn === 'string' ? NAMES_BY_URN.get(urn) : undefined;
}

const NAMES_BY_URN = new Map(Object.entries(TOKEN_TYPE_URNS).map(([name, urn]) => [urn as string, name as TokenTypeName]));

/** Is `gty` (oidc-provider's space-separated grant history of a token) one that began with a token exchange? */
export function fromExchange(gty: unknown): boolean {
  return typeof gty === 'string' && gty.split(' ')[0] === TOKEN_EXCHANGE_GRANT;
}
