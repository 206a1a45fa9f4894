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
  /**
   * A verified identity linked to no account, while just-in-time accounts
   * are off: when self-registration is on, parks the identity for this
   * browser and answers with the registration page's address (true);
   * false when self-registration is off (the bridge refuses as before).
   */
  offerRegistration?(ctx: Context, identity: RegistrationIdentity): Promise<boolean>;
}

/** What a registration keeps of a verified identity (linked to the account on approval). */
export interface RegistrationIdentity {
  type: 'saml' | 'x509';
  issuer: string;
  subject: string;
  name?: string | undefined;
  email?: string | undefined;
}

/** What a bridge that stores state before a login (SAML) checks first. */
export interface InteractionCheck {
  /**
   * Whether the OIDC interaction `uid` exists (not expired, not finished).
   * Checked before a bridge stores anything for a login into it, so that
   * anonymous callers with made-up ids leave nothing behind.
   */
  interactionExists(uid: string): Promise<boolean>;
}
