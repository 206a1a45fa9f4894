/**
 * Token exchange as a plug-in of the provider (src/oidc/token-exchange-seam.ts):
 * the assembly builds it once and every provider built (on start and on key
 * rotation) installs it.
 */
import type { TokenExchangeExtension } from '../oidc/token-exchange-seam.ts';
import { exchangeClaimsFor, pendingExchangeClaims, registerTokenExchange, type TokenExchangeDeps } from './grant.ts';
import { recordedTokenBridge } from './recorded-token-bridge.ts';

/** The token exchange grant and the introspection/revocation bridge for the JWTs it records. */
export function tokenExchange(deps: Omit<TokenExchangeDeps, 'jwks' | 'clientConfig' | 'certificate'>): TokenExchangeExtension {
  return {
    install(provider, context) {
      provider.use(recordedTokenBridge([provider.pathFor('introspection'), provider.pathFor('revocation')]));
      registerTokenExchange(provider, { ...deps, ...context });
    },
    pendingClaims: pendingExchangeClaims,
    grantClaims: (grantId) => exchangeClaimsFor(deps.store, grantId),
  };
}
