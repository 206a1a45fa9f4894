/**
 * fedgate as a SAML service provider, on node-saml: one `SAML` client per
 * identity provider and use (they are cheap option bags), the signed SP
 * metadata, and signed AuthnRequests over HTTP-Redirect (SAML bindings §3.4).
 */
import { generateServiceProviderMetadata, SAML, ValidateInResponseTo, type CacheProvider } from '@node-saml/node-saml';
import type { IdpRecord } from './metadata.ts';
import type { SpKeys } from './sp-keys.ts';

/** What the SP is, for node-saml. */
export interface ServiceProviderOptions {
  entityId: string;
  /** The AssertionConsumerService URL (HTTP-POST binding). */
  acsUrl: string;
  keys: SpKeys;
  clockSkewSeconds: number;
  requestTtlSeconds: number;
  requireSignedAssertions: boolean;
  /** Where sent AuthnRequest IDs are kept (a StoreCacheProvider). */
  cacheProvider: CacheProvider;
}

/** The SP side of node-saml; see the module comment. */
export class ServiceProvider {
  readonly entityId: string;
  readonly acsUrl: string;
  readonly #options: ServiceProviderOptions;
  #metadata: string | undefined;

  constructor(options: ServiceProviderOptions) {
    this.#options = options;
    this.entityId = options.entityId;
    this.acsUrl = options.acsUrl;
  }

  /**
   * A node-saml client for `idp`. `requestId` fixes the ID of the next
   * AuthnRequest it generates (the caller keeps it with the request's purpose).
   *
   * What is set and why:
   * - `idpCert`: the identity provider's signing certificates from metadata, nothing else;
   * - `audience`: our entityID (SAML core §2.5.1.4);
   * - `acceptedClockSkewMs`: the configured skew for NotBefore/NotOnOrAfter;
   * - `validateInResponseTo: always` with the store-backed cache: no unsolicited responses;
   * - `wantAuthnResponseSigned: false`, `wantAssertionsSigned` from config: a
   *   signature over the assertion or over the response containing it is required either way;
   * - `identifierFormat: null`: no NameIDPolicy Format, so an IdP never fails
   *   with InvalidNameIDPolicy (the subject comes from attributes);
   * - `disableRequestedAuthnContext`: an exact PasswordProtectedTransport
   *   request would refuse MFA logins at some identity providers;
   * - `signatureAlgorithm: sha256` for the redirect-binding signature.
   */
  client(idp: IdpRecord, requestId?: string): SAML {
    const o = this.#options;
    return new SAML({
      issuer: o.entityId,
      callbackUrl: o.acsUrl,
      audience: o.entityId,
      entryPoint: idp.ssoUrl,
      idpIssuer: idp.entityID,
      idpCert: idp.signingCertificates,
      privateKey: o.keys.privateKeyPem,
      publicCert: o.keys.certificatePem,
      signatureAlgorithm: 'sha256',
      digestAlgorithm: 'sha256',
      authnRequestBinding: 'HTTP-Redirect',
      identifierFormat: null,
      allowCreate: true,
      disableRequestedAuthnContext: true,
      acceptedClockSkewMs: o.clockSkewSeconds * 1000,
      wantAssertionsSigned: o.requireSignedAssertions,
      wantAuthnResponseSigned: false,
      validateInResponseTo: ValidateInResponseTo.always,
      requestIdExpirationPeriodMs: o.requestTtlSeconds * 1000,
      cacheProvider: o.cacheProvider,
      ...(requestId ? { generateUniqueId: () => requestId } : {}),
    });
  }

  /**
   * The URL that sends the browser to `idp` with a signed AuthnRequest whose
   * ID is `requestId` (saved in the cache provider by node-saml).
   */
  async authnRequestUrl(idp: IdpRecord, requestId: string, relayState: string): Promise<string> {
    return this.client(idp, requestId).getAuthorizeUrlAsync(relayState, undefined, {});
  }

  /**
   * The SP metadata (SAML metadata §2.4.4), signed with the SP key: the ACS
   * (HTTP-POST), the signing certificate, AuthnRequestsSigned and
   * WantAssertionsSigned. Built once.
   */
  metadata(): string {
    const o = this.#options;
    this.#metadata ??= generateServiceProviderMetadata({
      issuer: o.entityId,
      callbackUrl: o.acsUrl,
      identifierFormat: null,
      wantAssertionsSigned: true,
      privateKey: o.keys.privateKeyPem,
      publicCerts: o.keys.certificatePem,
      signatureAlgorithm: 'sha256',
      digestAlgorithm: 'sha256',
      signMetadata: true,
    });
    return this.#metadata;
  }
}
