/**
 * A real SAML identity provider for the tests: samlify's IdentityProvider
 * with its own key and certificate (generated per run). It reads fedgate's
 * signed AuthnRequests from the redirect (checking their signature against
 * fedgate's SP metadata) and signs responses for them. Response content
 * comes from {@link responseXml}, so tests can vary every field.
 */
import { randomBytes } from 'node:crypto';
import * as samlify from 'samlify';
import { testKeyPair, type TestKeyPair } from '../../fixtures/saml/metadata-builder.ts';
import { withTemplates, xmlsecSign, type XmlsecSign } from '../../fixtures/saml/xmlsec.ts';

// samlify insists on a schema validator; the tests check fedgate, not samlify's input.
samlify.setSchemaValidator({ validate: async () => 'skipped' });

export const REDIRECT = 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect';
export const PERSISTENT = 'urn:oasis:names:tc:SAML:2.0:nameid-format:persistent';
export const ATTR = {
  subjectId: 'urn:oasis:names:tc:SAML:attribute:subject-id',
  pairwiseId: 'urn:oasis:names:tc:SAML:attribute:pairwise-id',
  eppn: 'urn:oid:1.3.6.1.4.1.5923.1.1.1.6',
  eptid: 'urn:oid:1.3.6.1.4.1.5923.1.1.1.10',
  uniqueId: 'urn:oid:1.3.6.1.4.1.5923.1.1.1.13',
  entitlement: 'urn:oid:1.3.6.1.4.1.5923.1.1.1.7',
  displayName: 'urn:oid:2.16.840.1.113730.3.1.241',
  givenName: 'urn:oid:2.5.4.42',
  sn: 'urn:oid:2.5.4.4',
  mail: 'urn:oid:0.9.2342.19200300.100.1.3',
} as const;

/** An attribute value: text, or a NameID (the eduPersonTargetedID form). */
export type AttrValue = string | { nameId: string; nameQualifier?: string; spNameQualifier?: string };

/** Everything a response says; unset fields get the values a correct IdP would send. */
export interface ResponseFields {
  issuer?: string;
  responseId?: string;
  assertionId?: string;
  /** null: no InResponseTo at all (an unsolicited response). */
  inResponseTo?: string | null;
  /** The SubjectConfirmationData's InResponseTo, when it should differ from the response's. */
  subjectInResponseTo?: string;
  /** null: no Destination attribute. */
  destination?: string | null;
  recipient?: string;
  audience?: string;
  status?: string;
  /** NameID text, inserted as is (tests put comments in it). */
  rawNameId?: string;
  nameId?: string;
  nameIdFormat?: string;
  notBefore?: Date;
  notOnOrAfter?: Date;
  subjectNotOnOrAfter?: Date;
  /** A NotBefore on the SubjectConfirmationData (none by default, as SAML profiles §4.1.4.2 suggests). */
  subjectNotBefore?: Date;
  authnStatement?: boolean;
  attributes?: Record<string, AttrValue[]>;
}

/** The fields of an AuthnRequest this IdP received. */
export interface ReceivedRequest {
  requestId: string;
  relayState: string;
  acsUrl: string;
  spEntityId: string;
}

const esc = (v: string) => v.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const attr = (name: string, value: string | null | undefined) => (value === null || value === undefined ? '' : ` ${name}="${esc(value)}"`);

/** A SAML Response with one assertion (unsigned), per SAML core §2/§3 and the Web Browser SSO profile. */
export function responseXml(idpEntityId: string, request: ReceivedRequest, f: ResponseFields = {}): { id: string; xml: string } {
  const now = new Date();
  const iso = (d: Date) => d.toISOString();
  const issuer = f.issuer ?? idpEntityId;
  const id = f.responseId ?? `_r${randomBytes(16).toString('hex')}`;
  const assertionId = f.assertionId ?? `_a${randomBytes(16).toString('hex')}`;
  const inResponseTo = f.inResponseTo === undefined ? request.requestId : f.inResponseTo;
  const destination = f.destination === undefined ? request.acsUrl : f.destination;
  const notOnOrAfter = f.notOnOrAfter ?? new Date(now.getTime() + 5 * 60_000);
  const nameIdText = f.rawNameId ?? esc(f.nameId ?? `nid-${randomBytes(6).toString('hex')}`);
  const attributes = Object.entries(f.attributes ?? {}).map(([name, values]) =>
    `<saml:Attribute Name="${esc(name)}" NameFormat="urn:oasis:names:tc:SAML:2.0:attrname-format:uri">${values.map((v) => (typeof v === 'string'
      ? `<saml:AttributeValue xsi:type="xs:string">${esc(v)}</saml:AttributeValue>`
      : `<saml:AttributeValue><saml:NameID Format="${PERSISTENT}"${attr('NameQualifier', v.nameQualifier)}${attr('SPNameQualifier', v.spNameQualifier)}>${esc(v.nameId)}</saml:NameID></saml:AttributeValue>`)).join('')}</saml:Attribute>`).join('');
  const xml = `<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="${id}" Version="2.0" IssueInstant="${iso(now)}"${attr('Destination', destination)}${attr('InResponseTo', inResponseTo)}>`
    + `<saml:Issuer>${esc(issuer)}</saml:Issuer>`
    + `<samlp:Status><samlp:StatusCode Value="${esc(f.status ?? 'urn:oasis:names:tc:SAML:2.0:status:Success')}"/></samlp:Status>`
    + `<saml:Assertion xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xs="http://www.w3.org/2001/XMLSchema" ID="${assertionId}" Version="2.0" IssueInstant="${iso(now)}">`
    + `<saml:Issuer>${esc(issuer)}</saml:Issuer>`
    + `<saml:Subject><saml:NameID Format="${esc(f.nameIdFormat ?? PERSISTENT)}" NameQualifier="${esc(issuer)}" SPNameQualifier="${esc(request.spEntityId)}">${nameIdText}</saml:NameID>`
    + `<saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer"><saml:SubjectConfirmationData${f.subjectNotBefore ? ` NotBefore="${iso(f.subjectNotBefore)}"` : ''} NotOnOrAfter="${iso(f.subjectNotOnOrAfter ?? notOnOrAfter)}" Recipient="${esc(f.recipient ?? request.acsUrl)}"${attr('InResponseTo', f.subjectInResponseTo ?? inResponseTo)}/></saml:SubjectConfirmation></saml:Subject>`
    + `<saml:Conditions NotBefore="${iso(f.notBefore ?? new Date(now.getTime() - 60_000))}" NotOnOrAfter="${iso(notOnOrAfter)}"><saml:AudienceRestriction><saml:Audience>${esc(f.audience ?? request.spEntityId)}</saml:Audience></saml:AudienceRestriction></saml:Conditions>`
    + (f.authnStatement === false ? '' : `<saml:AuthnStatement AuthnInstant="${iso(now)}" SessionIndex="_s${randomBytes(6).toString('hex')}"><saml:AuthnContext><saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement>`)
    + (attributes ? `<saml:AttributeStatement>${attributes}</saml:AttributeStatement>` : '')
    + '</saml:Assertion></samlp:Response>';
  return { id, xml };
}

/** Which parts samlify signs: the assertion (what fedgate's metadata asks for), the whole response, or both. */
export type SignWith = 'assertion' | 'response' | 'both';

/** Options of {@link TestIdp.respond}. */
export interface RespondOptions extends ResponseFields {
  signWith?: SignWith;
  /** Sign with this key instead of the IdP's own (a forger). */
  key?: TestKeyPair;
  /** XML-DSig SignatureMethod URI (default RSA-SHA256). */
  signatureAlgorithm?: string;
}

/** The test identity provider; see the module comment. */
export class TestIdp {
  readonly entityID: string;
  readonly ssoUrl: string;
  readonly keys: TestKeyPair;
  readonly #idp: samlify.IdentityProviderInstance;

  private constructor(entityID: string, ssoUrl: string, keys: TestKeyPair) {
    this.entityID = entityID;
    this.ssoUrl = ssoUrl;
    this.keys = keys;
    this.#idp = this.#samlify(keys);
  }

  /** An identity provider with a new key pair. */
  static async create(entityID: string, ssoUrl = `${entityID.replace(/\/$/, '')}/sso`): Promise<TestIdp> {
    return new TestIdp(entityID, ssoUrl, await testKeyPair(new URL(entityID).hostname));
  }

  #samlify(keys: TestKeyPair, signatureAlgorithm?: string): samlify.IdentityProviderInstance {
    return samlify.IdentityProvider({
      entityID: this.entityID,
      privateKey: keys.privateKeyPem,
      signingCert: keys.certificatePem,
      wantAuthnRequestsSigned: true,
      nameIDFormat: [PERSISTENT],
      singleSignOnService: [{ Binding: REDIRECT, Location: this.ssoUrl }],
      singleLogoutService: [{ Binding: REDIRECT, Location: `${this.ssoUrl}/logout` }],
      ...(signatureAlgorithm ? { requestSignatureAlgorithm: signatureAlgorithm } : {}),
    });
  }

  /**
   * This IdP's metadata, as samlify writes it, with the extensions a
   * federation adds: shibmd:Scope values (in the IDPSSODescriptor) and an
   * mdrpi:RegistrationInfo (in the entity).
   */
  metadata(extensions: { scopes?: string[]; registrationAuthority?: string } = {}): string {
    let xml = this.#idp.getMetadata();
    if (extensions.scopes?.length) {
      const scopes = extensions.scopes.map((scope) => `<shibmd:Scope xmlns:shibmd="urn:mace:shibboleth:metadata:1.0" regexp="false">${esc(scope)}</shibmd:Scope>`).join('');
      xml = xml.replace(/(<IDPSSODescriptor[^>]*>)/, `$1<Extensions>${scopes}</Extensions>`);
    }
    if (extensions.registrationAuthority) {
      xml = xml.replace(/(<EntityDescriptor[^>]*>)/, `$1<Extensions><mdrpi:RegistrationInfo xmlns:mdrpi="urn:oasis:names:tc:SAML:metadata:rpi" registrationAuthority="${esc(extensions.registrationAuthority)}"/></Extensions>`);
    }
    return xml;
  }

  /**
   * Reads the AuthnRequest in a redirect `location` (from GET /saml/login)
   * the way an IdP does: samlify inflates it and verifies its redirect-binding
   * signature with the certificate in `spMetadata` (SAML bindings §3.4.4.1).
   */
  async receive(spMetadata: string, location: string): Promise<ReceivedRequest> {
    const url = new URL(location);
    if (`${url.origin}${url.pathname}` !== this.ssoUrl) throw new Error(`redirected to ${url.origin}${url.pathname}, not to ${this.ssoUrl}`);
    const raw = url.search.slice(1);
    const octetString = raw.split('&').filter((p) => !p.startsWith('Signature=')).join('&');
    const query = Object.fromEntries(url.searchParams);
    const sp = samlify.ServiceProvider({ metadata: spMetadata });
    const { extract } = await this.#idp.parseLoginRequest(sp, 'redirect', { query, octetString });
    const request = extract.request as Record<string, string>;
    return {
      requestId: request.id!,
      relayState: query.RelayState ?? '',
      acsUrl: request.assertionConsumerServiceUrl!,
      spEntityId: String(extract.issuer),
    };
  }

  /** A signed response to `request` (base64, as the form field), built from `options`. */
  async respond(spMetadata: string, request: ReceivedRequest, options: RespondOptions = {}): Promise<{ SAMLResponse: string; RelayState: string }> {
    const signWith = options.signWith ?? 'assertion';
    const metadata = signWith === 'response' ? spMetadata.replace('WantAssertionsSigned="true"', 'WantAssertionsSigned="false"') : spMetadata;
    const sp = samlify.ServiceProvider({ metadata, ...(signWith === 'both' ? { wantMessageSigned: true } : {}) });
    const idp = options.key || options.signatureAlgorithm ? this.#samlify(options.key ?? this.keys, options.signatureAlgorithm) : this.#idp;
    const { id, xml } = responseXml(this.entityID, request, options);
    const result = await idp.createLoginResponse(sp, { extract: { request: { id: request.requestId } } }, 'post', {}, {
      relayState: request.relayState,
      customTagReplacement: () => ({ id, context: xml }),
    });
    return { SAMLResponse: result.context, RelayState: request.relayState };
  }

  /**
   * A response signed the way a stock identity provider does it, by
   * xmlsec1 rather than samlify/xml-crypto: with the XML declaration, RSA-SHA256,
   * the assertion's and/or the response's signature. `edit` changes the
   * unsigned document before signing (the scenarios break things there).
   */
  async respondXmlsec(request: ReceivedRequest, options: ResponseFields & { sign?: XmlsecSign; key?: TestKeyPair; edit?: (xml: string) => string } = {}): Promise<{ SAMLResponse: string; RelayState: string; xml: string }> {
    const { xml } = responseXml(this.entityID, request, options);
    const signed = await xmlsecSign(withTemplates((options.edit ?? ((x) => x))(xml), options.sign ?? 'both'), options.key ?? this.keys, options.sign ?? 'both');
    return { SAMLResponse: Buffer.from(signed).toString('base64'), RelayState: request.relayState, xml: signed };
  }

  /** A response nobody signed. */
  unsigned(request: ReceivedRequest, fields: ResponseFields = {}): { SAMLResponse: string; RelayState: string } {
    return { SAMLResponse: Buffer.from(responseXml(this.entityID, request, fields).xml).toString('base64'), RelayState: request.relayState };
  }
}
