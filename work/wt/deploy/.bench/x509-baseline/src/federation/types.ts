/**
 * What the identity bridges (SAML, X.509) need from the rest of fedgate to
 * finish what they started: the OIDC interaction they log a user in to, or
 * the account a logged-in user links an identity to. Implemented in
 * src/federation/hooks.ts; the bridges know nothing of oidc-provider.
 */
import type { Context } from 'koa';
import type { Account, LinkedIdentity } from '../accounts/accounts.ts';

/** An identity a bridge verified: the key it is linked under, and what it says about the person. */
export interface VerifiedIdentity {
  type: LinkedIdentity['type'];
  /** SAML IdP entityID, or the normalised DN of the certificate's issuer. */
  issuer: string;
  /** SAML subject identifier, or the normalised subject DN of the end-entity certificate. */
  subject: string;
  /** For display and just-in-time accounts. */
  name?: string | undefined;
  email?: string | undefined;
  /** Groups mapped from the identity (e.g. eduPersonEntitlement rules); may be empty. */
  groups?: string[] | undefined;
  /** RFC 8176 authentication method reference: `saml` ... `mtls` / `x509`. */
  amr: string;
}

export interface FederationHooks {
  /**
   * Logs `account` in to the OIDC interaction `uid` and answers the request
   * (a redirect back into the authorization flow). Throws if the interaction
   * is gone or belongs to another browser.
   */
  finishLogin(ctx: Context, uid: string, account: Account, amr: string): Promise<void>;
  /** The account logged in in this browser (oidc-provider's session), if any. */
  currentAccount(ctx: Context): Promise<Account | undefined>;
}
