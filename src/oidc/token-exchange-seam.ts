/**
 * Token exchange (RFC 8693) as the provider configuration sees it: a
 * plug-in built by src/exchange and handed to `createProvider` by the
 * assembly (src/app.ts). The dependency runs one way: exchange/ uses oidc/,
 * and oidc/ imports nothing of exchange/ (test/architecture/layers.ts).
 */
import type Provider from 'oidc-provider';
import type { KoaContextWithOIDC } from 'oidc-provider';
import type { Account } from '../accounts/accounts.ts';
import type { ClientConfig } from '../config/schema.ts';

/** Claims an exchanged token carries beyond its profile's. */
export interface ExchangedTokenClaims {
  /** The actor chain (RFC 8693 §4.1). */
  act?: object;
  /** The account as just read (not a claim: spares extraTokenClaims a second read). */
  account?: Account;
  /** Set on every exchanged access token: the gateway looks such tokens up in the store (their grant may be revoked). */
  exchanged: true;
}

/** What a provider being built lends the grant it registers. */
export interface TokenExchangeContext {
  /** fedgate's signing keys of this provider, to verify its own JWTs presented for exchange. */
  jwks: { keys: object[] };
  /** The configured client of an id, if it is one. */
  clientConfig(clientId: string): ClientConfig | undefined;
  /** The TLS client certificate of a request (RFC 8705 binding), when fedgate sees them. */
  certificate?: (ctx: KoaContextWithOIDC) => string | undefined;
}

export interface TokenExchangeExtension {
  /** Registers the grant type on a newly built provider, with the middleware it needs in front of the provider's endpoints. */
  install(provider: Provider, context: TokenExchangeContext): void;
  /** The claims of an access token an exchange is issuing right now (synchronous: no store read). */
  pendingClaims(token: object): ExchangedTokenClaims | undefined;
  /** The claims of a token issued later from an exchanged grant (a refresh). */
  grantClaims(grantId: string | undefined): Promise<ExchangedTokenClaims | undefined>;
}
