/**
 * Checking a SAML Response that arrived at the ACS (SAML profiles §4.1.4.3
 * and §4.1.4.5). node-saml does the cryptography and part of the rules;
 * fedgate adds what node-saml leaves out.
 *
 * node-saml (validatePostResponseAsync) checks: the XML signature over the
 * assertion or the response with the identity provider's certificates,
 * using only what the signature covers (xml-crypto's signed references);
 * one signature per element, its reference pointing at its parent, no
 * duplicate IDs, at most two transforms; at most one assertion;
 * InResponseTo against its cache; Conditions NotBefore/NotOnOrAfter and
 * SubjectConfirmationData times with the skew; the Audience.
 *
 * It does not check, so this module does: the Response's Status when an
 * assertion is present; Destination; the bearer SubjectConfirmation's
 * Recipient and its InResponseTo binding (only when present in node-saml);
 * the Issuer of response and assertion (node-saml checks it for logout
 * messages only); that the response answers the request this browser's
 * RelayState belongs to; assertion ID replay; an AuthnStatement;
 * comments/processing instructions and DOCTYPE; assertions hidden elsewhere
 * in the document (Advice, Extensions, ds:Object); SHA-1 algorithms.
 */
import { createHash } from 'node:crypto';
import type { Store } from '../../store/store.ts';
import type { StoreCacheProvider } from './cache-provider.ts';
import { signatureAlgorithms, type IdpRecord } from './metadata.ts';
import type { ServiceProvider } from './service-provider.ts';
import { attribute, child, children, descendants, NS, parseInstant, parseXml, refuseCommentsAndInstructions, text, XmlError } from './xml.ts';
import { readStatements, type AssertionStatements } from './attributes.ts';

/** Reason codes of refused responses (audit `saml.response_rejected`, detail.reason). Stable. */
export type RejectReason =
  | 'malformed' | 'doctype' | 'xml_comment'
  | 'unsolicited' | 'replayed' | 'unknown_request' | 'in_response_to_mismatch' | 'in_response_to_invalid'
  | 'unknown_idp' | 'issuer_mismatch' | 'destination_mismatch' | 'status_not_success'
  | 'no_assertion' | 'multiple_assertions' | 'encrypted_assertion' | 'weak_algorithm' | 'signature_invalid'
  | 'expired' | 'not_yet_valid' | 'audience_mismatch' | 'recipient_mismatch' | 'subject_confirmation_invalid'
  | 'no_authn_statement' | 'no_subject' | 'invalid_response';

/** A refused response: the reason code, and what is known of it. */
export class SamlResponseError extends Error {
  readonly reason: RejectReason;
  /** The identity provider the response claims to come from or answers, when known. */
  readonly idp: string | undefined;
  /** For `status_not_success`: the status code(s) the identity provider sent. */
  readonly status: string | undefined;
  constructor(reason: RejectReason, message: string, idp?: string, status?: string) {
    super(message);
    this.name = 'SamlResponseError';
    this.reason = reason;
    this.idp = idp;
    this.status = status;
  }
}

/** Why a login was started, kept with the request it sent. */
export type Purpose = { kind: 'login'; interaction: string } | { kind: 'link'; accountId: string };

/** What the store keeps per sent AuthnRequest, under its RelayState. */
export interface RequestContext {
  requestId: string;
  idp: string;
  purpose: Purpose;
  /** The browser that started it (a random id in an HttpOnly cookie). */
  browser: string;
  createdAt: number;
}

/** A response that passed every check. */
export interface AcceptedResponse {
  context: RequestContext;
  idp: IdpRecord;
  assertionId: string;
  statements: AssertionStatements;
}

/** Store key of a RelayState's request context. */
export const relayKey = (relayState: string) => `saml:relay:${relayState}`;
/** Store key remembering an accepted assertion (SAML profiles §4.1.4.5: one use only). */
export const assertionKey = (idp: string, assertionId: string) =>
  `saml:assertion:${createHash('sha256').update(`${idp}\n${assertionId}`).digest('base64url')}`;

const RELAY_STATE = /^[A-Za-z0-9_-]{43}$/;
const BEARER = 'urn:oasis:names:tc:SAML:2.0:cm:bearer';
const SUCCESS = 'urn:oasis:names:tc:SAML:2.0:status:Success';
const SHA1 = new Set(['http://www.w3.org/2000/09/xmldsig#rsa-sha1', 'http://www.w3.org/2000/09/xmldsig#sha1']);
const MAX_REPLAY_TTL_SECONDS = 24 * 3600;

/** node-saml throws plain Errors; their messages are mapped to stable reasons here. */
function nodeSamlReason(err: unknown): RejectReason {
  const message = err instanceof Error ? err.message : '';
  if (/InResponseTo/i.test(message)) return 'in_response_to_invalid';
  if (/multiple assertions/i.test(message)) return 'multiple_assertions';
  if (/signature|Referenced node|ID cannot refer|too many transforms/i.test(message)) return 'signature_invalid';
  if (/not yet valid/i.test(message)) return 'not_yet_valid';
  if (/expired|No valid subject confirmation/i.test(message)) return 'expired';
  if (/audience/i.test(message)) return 'audience_mismatch';
  if (/decrypt|EncryptedAssertion/i.test(message)) return 'encrypted_assertion';
  if (/Missing SAML assertion/i.test(message)) return 'no_assertion';
  return 'invalid_response';
}

/** Options of {@link ResponseValidator}. */
export interface ResponseValidatorOptions {
  store: Store;
  sp: ServiceProvider;
  cacheProvider: StoreCacheProvider;
  /** The trusted identity provider with this entityID, if any. */
  idp: (entityID: string) => IdpRecord | undefined;
  clockSkewSeconds: number;
  allowSha1: boolean;
  now?: () => number;
}

/** Checks responses at the ACS; see the module comment. */
export class ResponseValidator {
  readonly #o: ResponseValidatorOptions;
  readonly #now: () => number;

  constructor(options: ResponseValidatorOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
  }

  /**
   * Checks `samlResponse` (the base64 form field) that came with
   * `relayState`, and consumes the request it answers: each request, and
   * each assertion, is accepted once.
   *
   * @throws SamlResponseError
   */
  async validate(samlResponse: string, relayState: string | undefined): Promise<AcceptedResponse> {
    const { store } = this.#o;
    if (!/^[A-Za-z0-9+/=\r\n]+$/.test(samlResponse)) throw new SamlResponseError('malformed', 'SAMLResponse is not base64');
    const xml = Buffer.from(samlResponse, 'base64').toString('utf8');
    let doc: Document;
    try {
      doc = parseXml(xml);
      refuseCommentsAndInstructions(doc);
    } catch (err) {
      if (err instanceof XmlError) throw new SamlResponseError(err.code, err.message);
      throw err;
    }
    const response = doc.documentElement;
    if (response.namespaceURI !== NS.protocol || response.localName !== 'Response') throw new SamlResponseError('malformed', 'not a SAML Response');
    const responseIssuer = text(child(response, NS.assertion, 'Issuer')) || undefined;

    const inResponseTo = attribute(response, 'InResponseTo');
    // Unsolicited (IdP-initiated) responses are not accepted: nothing would tie them to this browser (SAML profiles §4.1.5).
    if (!inResponseTo) throw new SamlResponseError('unsolicited', 'the response answers no request', responseIssuer);

    const statusCode = (() => {
      const status = child(response, NS.protocol, 'Status');
      const top = status ? child(status, NS.protocol, 'StatusCode') : undefined;
      const second = top ? child(top, NS.protocol, 'StatusCode') : undefined;
      return { top: top?.getAttribute('Value') ?? '', second: second?.getAttribute('Value') ?? undefined };
    })();

    if (descendants(doc, NS.assertion, 'EncryptedAssertion').length > 0) {
      throw new SamlResponseError('encrypted_assertion', 'encrypted assertions are not accepted (the SP publishes no encryption key)', responseIssuer);
    }
    // Every Assertion anywhere counts: one tucked into Advice, Extensions or a ds:Object is how signature wrapping hides the signed original.
    const assertions = descendants(doc, NS.assertion, 'Assertion');
    if (assertions.length > 1) throw new SamlResponseError('multiple_assertions', 'the response holds more than one assertion', responseIssuer);
    const assertion = assertions[0];
    if (assertion && assertion.parentNode !== response) throw new SamlResponseError('multiple_assertions', 'the assertion is not where the response carries it', responseIssuer);
    const assertionId = assertion ? attribute(assertion, 'ID') : undefined;
    const assertionIssuer = assertion ? text(child(assertion, NS.assertion, 'Issuer')) || undefined : undefined;

    // A replay is recognised before anything is consumed: the ID is only ever stored once it was verified.
    if (assertionId && await store.get(assertionKey(assertionIssuer ?? responseIssuer ?? '', assertionId)) !== undefined) {
      throw new SamlResponseError('replayed', 'this assertion was already used', assertionIssuer ?? responseIssuer);
    }

    if (relayState === undefined || !RELAY_STATE.test(relayState)) {
      throw new SamlResponseError('unknown_request', 'the response carries no RelayState of this service', responseIssuer);
    }
    const context = await store.get<RequestContext>(relayKey(relayState));
    if (!context) throw new SamlResponseError('unknown_request', 'the request this response answers is unknown or has expired', responseIssuer);

    try {
      return await this.#check({ doc, xml, response, responseIssuer, inResponseTo, statusCode, assertion, assertionId, assertionIssuer, context, relayState, samlResponse });
    } catch (err) {
      // A request is answered once: whatever failed, it cannot be retried with another response.
      await Promise.all([store.delete(relayKey(relayState)), this.#o.cacheProvider.removeAsync(context.requestId)]);
      throw err;
    }
  }

  async #check(m: {
    doc: Document; xml: string; response: Element; responseIssuer: string | undefined; inResponseTo: string;
    statusCode: { top: string; second: string | undefined }; assertion: Element | undefined; assertionId: string | undefined;
    assertionIssuer: string | undefined; context: RequestContext; relayState: string; samlResponse: string;
  }): Promise<AcceptedResponse> {
    const { store, sp } = this.#o;
    const { context } = m;
    if (m.inResponseTo !== context.requestId) {
      throw new SamlResponseError('in_response_to_mismatch', 'the response answers another request', context.idp);
    }
    for (const issuer of [m.responseIssuer, m.assertionIssuer]) {
      if (issuer === undefined || issuer === context.idp) continue;
      throw new SamlResponseError(this.#o.idp(issuer) ? 'issuer_mismatch' : 'unknown_idp', 'the response comes from another identity provider than the one asked', context.idp);
    }
    const idp = this.#o.idp(context.idp);
    if (!idp) throw new SamlResponseError('unknown_idp', 'the identity provider is no longer trusted', context.idp);

    // SAML profiles §4.1.4.5 / bindings §3.5.5.2: a signed response MUST carry the Destination it was sent to.
    const destination = attribute(m.response, 'Destination');
    const responseSigned = children(m.response, NS.dsig, 'Signature').length > 0;
    if (destination !== undefined ? destination !== sp.acsUrl : responseSigned) {
      throw new SamlResponseError('destination_mismatch', 'the response was not sent to this service', context.idp);
    }
    if (m.statusCode.top !== SUCCESS) {
      const status = [m.statusCode.top, m.statusCode.second].filter(Boolean).map((s) => s!.replace(/^.*:/, '')).join('/');
      throw new SamlResponseError('status_not_success', 'the identity provider did not sign the user in', context.idp, status || 'missing');
    }
    if (!m.assertion || !m.assertionId) throw new SamlResponseError('no_assertion', 'the response holds no assertion', context.idp);
    if (!m.assertionIssuer) throw new SamlResponseError('malformed', 'the assertion names no issuer', context.idp);
    if (!this.#o.allowSha1 && descendants(m.doc, NS.dsig, 'Signature').some((s) => signatureAlgorithms(s).some((a) => SHA1.has(a)))) {
      throw new SamlResponseError('weak_algorithm', 'the response is signed with SHA-1', context.idp);
    }

    let verifiedXml: string;
    try {
      const { profile } = await sp.client(idp).validatePostResponseAsync({ SAMLResponse: m.samlResponse });
      const assertionXml = profile?.getAssertionXml?.();
      if (!assertionXml) throw new Error('Missing SAML assertion');
      verifiedXml = assertionXml;
    } catch (err) {
      throw new SamlResponseError(nodeSamlReason(err), 'the response did not pass validation', context.idp);
    }

    // From here on only the signed bytes are read: node-saml hands back the canonical form of what the signature covers.
    let verified: Element;
    try {
      verified = parseXml(verifiedXml).documentElement;
    } catch {
      throw new SamlResponseError('signature_invalid', 'the signed assertion could not be read', context.idp);
    }
    if (verified.namespaceURI !== NS.assertion || verified.localName !== 'Assertion' || attribute(verified, 'ID') !== m.assertionId) {
      throw new SamlResponseError('signature_invalid', 'the signed assertion is not the one in the response', context.idp);
    }
    if (text(child(verified, NS.assertion, 'Issuer')) !== context.idp) {
      throw new SamlResponseError('issuer_mismatch', 'the assertion comes from another identity provider than the one asked', context.idp);
    }
    const notOnOrAfter = this.#subjectConfirmation(verified, context);
    if (children(verified, NS.assertion, 'AuthnStatement').length === 0) {
      throw new SamlResponseError('no_authn_statement', 'the assertion holds no authentication statement', context.idp);
    }

    // Remembered until it could no longer be accepted anyway (NotOnOrAfter plus the skew).
    const conditions = child(verified, NS.assertion, 'Conditions');
    const expires = Math.max(notOnOrAfter, parseInstant(conditions ? attribute(conditions, 'NotOnOrAfter') : undefined) ?? 0);
    const ttl = Math.min(MAX_REPLAY_TTL_SECONDS, Math.max(1, Math.ceil((expires + this.#o.clockSkewSeconds * 1000 - this.#now()) / 1000)));
    if (!(await store.setIfAbsent(assertionKey(context.idp, m.assertionId), { at: this.#now() }, ttl))) {
      throw new SamlResponseError('replayed', 'this assertion was already used', context.idp);
    }
    // Two copies of one response racing: only one of them consumes the request.
    if (!(await store.delete(relayKey(m.relayState)))) throw new SamlResponseError('replayed', 'this request was already answered', context.idp);
    await this.#o.cacheProvider.removeAsync(context.requestId);
    return { context, idp, assertionId: m.assertionId, statements: readStatements(verified) };
  }

  /**
   * SAML profiles §4.1.4.2: a bearer SubjectConfirmation whose data names
   * this ACS as Recipient, answers the request, and has not expired.
   * Returns its NotOnOrAfter.
   */
  #subjectConfirmation(assertion: Element, context: RequestContext): number {
    const subject = child(assertion, NS.assertion, 'Subject');
    const skew = this.#o.clockSkewSeconds * 1000;
    const now = this.#now();
    let problem: RejectReason = 'subject_confirmation_invalid';
    for (const confirmation of subject ? children(subject, NS.assertion, 'SubjectConfirmation') : []) {
      if (confirmation.getAttribute('Method') !== BEARER) continue;
      const data = child(confirmation, NS.assertion, 'SubjectConfirmationData');
      if (!data) continue;
      if (attribute(data, 'Recipient') !== this.#o.sp.acsUrl) {
        problem = 'recipient_mismatch';
        continue;
      }
      if (attribute(data, 'InResponseTo') !== context.requestId) {
        problem = 'in_response_to_mismatch';
        continue;
      }
      const notOnOrAfter = parseInstant(attribute(data, 'NotOnOrAfter'));
      const notBefore = parseInstant(attribute(data, 'NotBefore'));
      if (notOnOrAfter === undefined || now - skew >= notOnOrAfter) {
        problem = 'expired';
        continue;
      }
      if (notBefore !== undefined && now + skew < notBefore) {
        problem = 'not_yet_valid';
        continue;
      }
      return notOnOrAfter;
    }
    throw new SamlResponseError(problem, 'the assertion has no usable bearer subject confirmation', context.idp);
  }
}
