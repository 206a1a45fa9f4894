/**
 * What every step of the provider configuration (src/oidc/provider.ts)
 * shares: the dependencies, the configured clients by id and the token
 * profile of a client and audience.
 */
import type { KoaContextWithOIDC } from 'oidc-provider';
import type { ClientConfig, TokenProfile } from '../config/schema.ts';
import type { Services } from '../services.ts';
import type { TokenExchangeExtension } from './token-exchange-seam.ts';

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

export interface ProviderParts {
  deps: ProviderDeps;
  /** The configured clients, by id. */
  clientsById: ReadonlyMap<string, ClientConfig>;
  /** The token profile for a client's token for `audience`: the resource server's, else the client's, else the default. */
  profileFor(clientId: string | undefined, audience?: string): TokenProfile;
}

export function providerParts(deps: ProviderDeps): ProviderParts {
  const { config, resourceServers } = deps;
  const clientsById = new Map(config.clients.map((c) => [c.clientId, c]));
  return {
    deps,
    clientsById,
    profileFor: (clientId, audience) =>
      (audience ? resourceServers.get(audience)?.profile : undefined)
      ?? (clientId ? clientsById.get(clientId)?.profile : undefined)
      ?? config.defaultProfile,
  };
}
