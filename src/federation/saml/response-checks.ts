/**
 * The document half of checking a SAML Response (SAML profiles §4.1.4.3 and
 * §4.1.4.5): everything that reads the attacker-supplied XML, and nothing
 * that needs the store. These functions run in the validation worker pool
 * (validation-pool.ts), never on the event loop; their inputs and results
 * are plain data that crosses threads. response.ts does the rest (request
 * lookup, replay, consumption) around them.
 *
 * node-saml (validatePostResponseAsync) checks: the XML signature over the
 * assertion or the response with the identity provider's certificates,
 * using only what the signature covers (xml-crypto's signed references);
 * one signature per element, its reference pointing at its parent, no
 * duplicate IDs, at most two transforms; at most one assertion;
 * InResponseTo against its cache; Conditions NotBefore/NotOnOrAfter and
 * SubjectConfirmationData times with the skew; the Audience.
 *
 * It does not check, so this module does: the size, width and depth of the
 * document before anything parses it; the Response's Status when an
 * assertion is present; Destination; the bearer SubjectConfirmation's
 * Recipient and its InResponseTo binding; the Issuer of response and
 * assertion; an AuthnStatement; comments, processing instructions (the XML
 * declaration aside) and DOCTYPE; assertions hidden elsewhere in the
 * document (Advice, Extensions, ds:Object); SHA-1 algorithms.
 */
import { SAML, type CacheItem, type CacheProvider } from '@node-saml/node-saml';
import { SignedXml } from 'xml-crypto';
import { readStatements, type AssertionStatements } from './attributes.ts';
import { signatureAlgorithms } from './metadata.ts';
import { samlOptions } from './service-provider.ts';
import {
  attribute, checkXmlLimits, child, children, descendants, NS, parseInstant, parseXml, refuseCommentsAndInstructions,
  stripXmlDeclaration, text, XmlError, type XmlLimits,
} from './xml.ts';

/** Reason codes of refused responses (audit `saml.response_rejected`, detail.reason). Stable. */
export type RejectReason =
  | 'malformed' | 'doctype' | 'xml_comment' | 'too_large' | 'too_complex' | 'busy'
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

/** A refusal as it crosses from the worker (errors lose their fields in structured cloning). */
export interface Refusal {
  ok: false;
  reason: RejectReason;
  message: string;
  idp?: string | undefined;
  status?: string | undefined;
  /** XML signatures checked (xml-crypto checkSignature calls) before the refusal. */
  signatureChecks?: number;
}

/**
 * Limits no response of a real identity provider reaches: a Shibboleth
 * response with two signatures, a certificate and 50 attributes is ~15 KB,
 * ~150 elements, depth 8, at most ~10 attributes on an element. Room is
 * left for a few hundred entitlement values; what lies beyond is refused
 * before any parsing (see checkXmlLimits). The worst document within these
 * limits costs a worker well under a second (bench/saml-acs.ts); the pool's
 * deadline stops anything slower.
 */
export const RESPONSE_LIMITS: XmlLimits = {
  maxBytes: 256 * 1024,
  maxElements: 2500,
  maxDepth: 32,
  maxChildren: 256,
  // One 250-value attribute beside everything else a response holds.
  maxSiblingWork: 256 * 256,
  maxAttributes: 32,
};

/** What {@link inspectResponse} reads of a response before the store is asked anything. */
export interface Inspection {
  ok: true;
  responseIssuer: string | undefined;
  inResponseTo: string;
  assertionId: string | undefined;
  assertionIssuer: string | undefined;
}

/** What {@link verifyResponse} needs besides the response. */
export interface VerifyInput {
  /** The base64 form field, as posted. */
  samlResponse: string;
  sp: { entityId: string; acsUrl: string };
  idp: { entityID: string; signingCertificates: string[] };
  /** The request this response must answer (its ID and identity provider). */
  request: { requestId: string; idp: string };
  clockSkewSeconds: number;
  requireSignedAssertions: boolean;
  allowSha1: boolean;
  now: number;
}

/** A response whose signature and conditions hold. */
export interface Verified {
  ok: true;
  assertionId: string;
  /** The latest instant (epoch ms) at which the assertion could still be accepted (without skew). */
  expires: number;
  statements: AssertionStatements;
  /** XML signatures checked (xml-crypto checkSignature calls). */
  signatureChecks: number;
}

const BEARER = 'urn:oasis:names:tc:SAML:2.0:cm:bearer';
const SUCCESS = 'urn:oasis:names:tc:SAML:2.0:status:Success';
const SHA1 = new Set(['http://www.w3.org/2000/09/xmldsig#rsa-sha1', 'http://www.w3.org/2000/09/xmldsig#sha1']);
const BASE64 = /^[A-Za-z0-9+/=\r\n]+$/;

/**
 * Signatures checked in this thread so far. node-saml offers no hook, so
 * xml-crypto's checkSignature (which it calls once per signature) is
 * wrapped: the count shows which refusals came before any cryptography
 * (ValidationStats, and the tests of the corpus of bad responses).
 */
let signatureChecks = 0;
const checkSignature = SignedXml.prototype.checkSignature;
SignedXml.prototype.checkSignature = function counted(this: SignedXml, ...args: Parameters<SignedXml['checkSignature']>) {
  signatureChecks += 1;
  return checkSignature.apply(this, args);
} as SignedXml['checkSignature'];

const refuse = (reason: RejectReason, message: string, idp?: string, status?: string): Refusal => ({ ok: false, reason, message, idp, status });

/** The form field to a checked document: base64, limits, strict parse, no comments or instructions. */
function readDocument(samlResponse: string): { xml: string; doc: Document } | Refusal {
  if (!BASE64.test(samlResponse)) return refuse('malformed', 'SAMLResponse is not base64');
  const xml = Buffer.from(samlResponse, 'base64').toString('utf8');
  try {
    checkXmlLimits(xml, RESPONSE_LIMITS);
    const doc = parseXml(stripXmlDeclaration(xml));
    refuseCommentsAndInstructions(doc);
    return { xml, doc };
  } catch (err) {
    if (err instanceof XmlError) return refuse(err.code, err.message);
    throw err;
  }
}

/**
 * The first look at a posted response: limits, well-formedness, what it
 * answers, and its single assertion in its place (every Assertion anywhere
 * counts: one tucked into Advice, Extensions or a ds:Object is how
 * signature wrapping hides the signed original).
 */
export function inspectResponse(samlResponse: string): Inspection | Refusal {
  const read = readDocument(samlResponse);
  if ('ok' in read) return read;
  const { doc } = read;
  const response = doc.documentElement;
  if (response.namespaceURI !== NS.protocol || response.localName !== 'Response') return refuse('malformed', 'not a SAML Response');
  const responseIssuer = text(child(response, NS.assertion, 'Issuer')) || undefined;
  const inResponseTo = attribute(response, 'InResponseTo');
  // Unsolicited (IdP-initiated) responses are not accepted: nothing would tie them to this browser (SAML profiles §4.1.5).
  if (!inResponseTo) return refuse('unsolicited', 'the response answers no request', responseIssuer);
  if (descendants(doc, NS.assertion, 'EncryptedAssertion').length > 0) {
    return refuse('encrypted_assertion', 'encrypted assertions are not accepted (the SP publishes no encryption key)', responseIssuer);
  }
  const assertions = descendants(doc, NS.assertion, 'Assertion');
  if (assertions.length > 1) return refuse('multiple_assertions', 'the response holds more than one assertion', responseIssuer);
  const assertion = assertions[0];
  if (assertion && assertion.parentNode !== response) return refuse('multiple_assertions', 'the assertion is not where the response carries it', responseIssuer);
  return {
    ok: true,
    responseIssuer,
    inResponseTo,
    assertionId: assertion ? attribute(assertion, 'ID') : undefined,
    assertionIssuer: assertion ? text(child(assertion, NS.assertion, 'Issuer')) || undefined : undefined,
  };
}

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

/**
 * Which time check failed, for a message node-saml words as "expired" for
 * any unusable subject confirmation: a NotBefore (of the Conditions or of a
 * bearer SubjectConfirmationData) still ahead, beyond the skew, means the
 * assertion is not valid yet. Only the reason code depends on this.
 */
function timeReason(assertion: Element | undefined, now: number, skewMs: number): 'expired' | 'not_yet_valid' {
  if (!assertion) return 'expired';
  const conditions = child(assertion, NS.assertion, 'Conditions');
  const notBefores = [conditions ? attribute(conditions, 'NotBefore') : undefined];
  const subject = child(assertion, NS.assertion, 'Subject');
  for (const confirmation of subject ? children(subject, NS.assertion, 'SubjectConfirmation') : []) {
    const data = child(confirmation, NS.assertion, 'SubjectConfirmationData');
    if (data) notBefores.push(attribute(data, 'NotBefore'));
  }
  return notBefores.some((v) => (parseInstant(v) ?? -Infinity) > now + skewMs) ? 'not_yet_valid' : 'expired';
}

/** A CacheProvider that knows the one request this response must answer (node-saml's InResponseTo checks). */
function oneRequestCache(requestId: string, now: number): CacheProvider {
  const items = new Map<string, CacheItem>([[requestId, { value: new Date(now).toISOString(), createdAt: now }]]);
  return {
    saveAsync: async () => null,
    getAsync: async (key) => items.get(key)?.value ?? null,
    removeAsync: async (key) => (key !== null && items.delete(key) ? key : null),
  };
}

/**
 * The signature and everything in the response after the request it
 * answers is known (the caller checked InResponseTo and the issuers against
 * it): Destination, Status, the signature (node-saml), then, from the
 * signed bytes only, the issuer, bearer subject confirmation, an
 * AuthnStatement and the attribute statements.
 */
export async function verifyResponse(input: VerifyInput): Promise<Verified | Refusal> {
  const read = readDocument(input.samlResponse);
  if ('ok' in read) return read;
  const { doc } = read;
  const response = doc.documentElement;
  const idpId = input.request.idp;
  const skew = input.clockSkewSeconds * 1000;
  const assertion = children(response, NS.assertion, 'Assertion')[0];
  const assertionId = assertion ? attribute(assertion, 'ID') : undefined;

  // SAML profiles §4.1.4.5 / bindings §3.5.5.2: a signed response MUST carry the Destination it was sent to.
  const destination = attribute(response, 'Destination');
  const responseSigned = children(response, NS.dsig, 'Signature').length > 0;
  if (destination !== undefined ? destination !== input.sp.acsUrl : responseSigned) {
    return refuse('destination_mismatch', 'the response was not sent to this service', idpId);
  }
  const status = child(response, NS.protocol, 'Status');
  const top = status ? child(status, NS.protocol, 'StatusCode') : undefined;
  const second = top ? child(top, NS.protocol, 'StatusCode') : undefined;
  if ((top?.getAttribute('Value') ?? '') !== SUCCESS) {
    const codes = [top?.getAttribute('Value'), second?.getAttribute('Value')].filter(Boolean).map((s) => s!.replace(/^.*:/, '')).join('/');
    return refuse('status_not_success', 'the identity provider did not sign the user in', idpId, codes || 'missing');
  }
  if (!assertion || !assertionId) return refuse('no_assertion', 'the response holds no assertion', idpId);
  if (!text(child(assertion, NS.assertion, 'Issuer'))) return refuse('malformed', 'the assertion names no issuer', idpId);
  if (!input.allowSha1 && descendants(doc, NS.dsig, 'Signature').some((s) => signatureAlgorithms(s).some((a) => SHA1.has(a)))) {
    return refuse('weak_algorithm', 'the response is signed with SHA-1', idpId);
  }

  const checksBefore = signatureChecks;
  const checks = () => signatureChecks - checksBefore;
  let verifiedXml: string;
  try {
    const saml = new SAML(samlOptions({
      entityId: input.sp.entityId, acsUrl: input.sp.acsUrl, clockSkewSeconds: input.clockSkewSeconds,
      requireSignedAssertions: input.requireSignedAssertions, cacheProvider: oneRequestCache(input.request.requestId, input.now),
    }, input.idp));
    const { profile } = await saml.validatePostResponseAsync({ SAMLResponse: input.samlResponse });
    const assertionXml = profile?.getAssertionXml?.();
    if (!assertionXml) throw new Error('Missing SAML assertion');
    verifiedXml = assertionXml;
  } catch (err) {
    const reason = nodeSamlReason(err);
    return { ...refuse(reason === 'expired' ? timeReason(assertion, input.now, skew) : reason, 'the response did not pass validation', idpId), signatureChecks: checks() };
  }

  // From here on only the signed bytes are read: node-saml hands back the canonical form of what the signature covers.
  const after = (reason: RejectReason, message: string): Refusal => ({ ...refuse(reason, message, idpId), signatureChecks: checks() });
  let verified: Element;
  try {
    verified = parseXml(verifiedXml).documentElement;
  } catch {
    return after('signature_invalid', 'the signed assertion could not be read');
  }
  if (verified.namespaceURI !== NS.assertion || verified.localName !== 'Assertion' || attribute(verified, 'ID') !== assertionId) {
    return after('signature_invalid', 'the signed assertion is not the one in the response');
  }
  if (text(child(verified, NS.assertion, 'Issuer')) !== idpId) {
    return after('issuer_mismatch', 'the assertion comes from another identity provider than the one asked');
  }
  const confirmed = subjectConfirmation(verified, input);
  if (typeof confirmed !== 'number') return after(confirmed, 'the assertion has no usable bearer subject confirmation');
  if (children(verified, NS.assertion, 'AuthnStatement').length === 0) {
    return after('no_authn_statement', 'the assertion holds no authentication statement');
  }
  const conditions = child(verified, NS.assertion, 'Conditions');
  const expires = Math.max(confirmed, parseInstant(conditions ? attribute(conditions, 'NotOnOrAfter') : undefined) ?? 0);
  return { ok: true, assertionId, expires, statements: readStatements(verified), signatureChecks: checks() };
}

/**
 * SAML profiles §4.1.4.2: a bearer SubjectConfirmation whose data names
 * this ACS as Recipient, answers the request, and has not expired.
 * Returns its NotOnOrAfter, or why none qualifies.
 */
function subjectConfirmation(assertion: Element, input: VerifyInput): number | RejectReason {
  const subject = child(assertion, NS.assertion, 'Subject');
  const skew = input.clockSkewSeconds * 1000;
  let problem: RejectReason = 'subject_confirmation_invalid';
  for (const confirmation of subject ? children(subject, NS.assertion, 'SubjectConfirmation') : []) {
    if (confirmation.getAttribute('Method') !== BEARER) continue;
    const data = child(confirmation, NS.assertion, 'SubjectConfirmationData');
    if (!data) continue;
    if (attribute(data, 'Recipient') !== input.sp.acsUrl) {
      problem = 'recipient_mismatch';
      continue;
    }
    if (attribute(data, 'InResponseTo') !== input.request.requestId) {
      problem = 'in_response_to_mismatch';
      continue;
    }
    const notOnOrAfter = parseInstant(attribute(data, 'NotOnOrAfter'));
    const notBefore = parseInstant(attribute(data, 'NotBefore'));
    if (notOnOrAfter === undefined || input.now - skew >= notOnOrAfter) {
      problem = 'expired';
      continue;
    }
    if (notBefore !== undefined && input.now + skew < notBefore) {
      problem = 'not_yet_valid';
      continue;
    }
    return notOnOrAfter;
  }
  return problem;
}
