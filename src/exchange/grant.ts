/**
 * The token exchange grant (RFC 8693), registered with oidc-provider
 * (`registerGrantType`): a confidential client presents a user's token
 * (`subject_token`), optionally its own (`actor_token`, delegation), and gets
 * a token for one resource server carrying no more than the subject token
 * had, as the exchange policy (domains `exchange` and `exchange-by`) and the
 * scope policy allow. Every hop is recorded in a nested `act` claim
 * (RFC 8693 §4.1) and the new grant is tied to the subject's: revoking that
 * (or disabling the account) ends everything exchanged from it.
 *
 * The handler runs named steps, one module each: parse (request.ts), resolve
 * subject and actor (parties.ts), decide (decision.ts), grant
 * (exchanged-grant.ts), issue (issue.ts), respond (respond.ts).
 */
import type Provider from 'oidc-provider';
import type { KoaContextWithOIDC } from 'oidc-provider';
import type { ClientConfig } from '../config/schema.ts';
import type { Services } from '../services.ts';
import { ExchangeDecisions } from './decision.ts';
import { ExchangedGrants } from './exchanged-grant.ts';
import { issueToken } from './issue.ts';
import { resolveParties } from './parties.ts';
import { PresentedTokens } from './presented-token.ts';
import { parseExchangeRequest, PARAMETERS, REPEATABLE } from './request.ts';
import { respond } from './respond.ts';
import { TOKEN_EXCHANGE_GRANT } from '../grants/token-types.ts';
import { TrustedIssuers } from './trusted-issuers.ts';

export { exchangeClaimsFor, type ExchangeClaims } from './exchanged-grant.ts';
export { pendingExchangeClaims } from './issue.ts';

export interface TokenExchangeDeps extends Pick<Services, 'config' | 'store' | 'accounts' | 'policy' | 'resourceServers' | 'audit' | 'logger'> {
  /** fedgate's signing keys, to verify its own JWTs presented for exchange. */
  jwks: { keys: object[] };
  /** The configured client of an id, if it is one. */
  clientConfig(clientId: string): ClientConfig | undefined;
  /** The TLS client certificate of a request (RFC 8705 binding), when fedgate sees them. */
  certificate?: (ctx: KoaContextWithOIDC) => string | undefined;
}

/** Registers the grant with `provider`. Clients still need it in their configuration and an exchange policy. */
export function registerTokenExchange(provider: Provider, deps: TokenExchangeDeps): void {
  const { config, store, accounts, policy, resourceServers, audit } = deps;
  const trustedIssuers = new TrustedIssuers({
    issuers: config.tokenExchange.trustedIssuers,
    defaultAudience: config.issuer,
    jwksCacheSeconds: config.tokenExchange.jwksCacheSeconds,
    accounts,
  });
  const tokens = new PresentedTokens({
    issuer: config.issuer, store, accounts, provider, jwks: deps.jwks, trustedIssuers,
    policyScopes: (audience, scopes) => resourceServers.policyScopes(audience, scopes),
  });
  const decisions = new ExchangeDecisions({ config, policy, resourceServers });
  const grants = new ExchangedGrants(provider, store);
  const issuing = { config, store, provider, certificate: deps.certificate };

  async function handler(ctx: KoaContextWithOIDC): Promise<void> {
    const request = parseExchangeRequest(ctx, deps.clientConfig);
    const parties = await resolveParties(tokens, request, config);
    const plan = decisions.plan(request, parties);
    const grantId = await grants.grantFor(request, parties, plan);
    const issued = await issueToken(issuing, ctx, request, parties, plan, grantId);
    respond(audit, ctx, request, parties, plan, issued);
  }

  provider.registerGrantType(TOKEN_EXCHANGE_GRANT, handler, PARAMETERS, REPEATABLE);
}
