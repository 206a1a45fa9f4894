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
import { FedgateError } from '../../util/errors.ts';
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
export class SamlResponseError extends FedgateError {
  readonly reason: RejectReason;
  /** The identity provider the response claims to come from or answers, when known. */
  readonly idp: string | undefined;
  /** For `status_not_success`: the status code(s) the identity provider sent. */
  readonly idpStatus: string | undefined;
  constructor(reason: RejectReason, message: string, idp?: string, idpStatus?: string) {
    // The ACS answers it with an error page worded for the user (src/federation/saml/routes.ts): the message stays inside.
    super(reason, message);
    this.reason = reason;
    this.idp = idp;
    this.idpStatus = idpStatus;
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

/** The steps of node-saml's validatePostResponseAsync, in the order it takes them. */
type Step = 'read' | 'in_response_to' | 'signature' | 'signed_assertion' | 'assertion';

/**
 * node-saml's SAML, each step of validatePostResponseAsync announcing
 * itself through the protected methods node-saml declares for subclasses
 * (saml.d.ts), so that a failure is classified by where it happened, not by
 * its words: the InResponseTo lookup, the signature (getKeyInfosAsPem
 * starts it), reading the signed assertion, then the assertion's subject
 * confirmation, conditions and audience. The time and audience checks
 * return their error before node-saml throws it, so those are recognised
 * by identity. @node-saml/node-saml is pinned exactly (package.json) and
 * test/federation/saml/node-saml-steps.test.ts fails when these methods or
 * the messages below change.
 */
export class SteppedSaml extends SAML {
  step: Step = 'read';
  /** Errors the time checks returned, with what they mean. */
  readonly timeFailures = new Map<Error, 'expired' | 'not_yet_valid'>();
  audienceFailure: Error | undefined;

  protected override async validateInResponseTo(inResponseTo: string | null): Promise<void> {
    this.step = 'in_response_to';
    return super.validateInResponseTo(inResponseTo);
  }

  protected override async getKeyInfosAsPem(): Promise<string[]> {
    this.step = 'signature';
    return super.getKeyInfosAsPem();
  }

  protected override async getSignedAssertion(signedXml: string): Promise<string | null> {
    this.step = 'signed_assertion';
    return super.getSignedAssertion(signedXml);
  }

  protected override async processValidlySignedAssertionAsync(xml: string, samlResponseXml: string, inResponseTo: string | null): ReturnType<SAML['processValidlySignedAssertionAsync']> {
    this.step = 'assertion';
    return super.processValidlySignedAssertionAsync(xml, samlResponseXml, inResponseTo);
  }

  protected override checkTimestampsValidityError(nowMs: number, notBefore: string, notOnOrAfter: string, maxTimeLimitMs?: number): Error | null {
    const err = super.checkTimestampsValidityError(nowMs, notBefore, notOnOrAfter, maxTimeLimitMs);
    // node-saml checks NotBefore first: a failure with a NotBefore still ahead beyond the skew is that one.
    if (err) this.timeFailures.set(err, notBefore && nowMs + this.options.acceptedClockSkewMs < Date.parse(notBefore) ? 'not_yet_valid' : 'expired');
    return err;
  }

  protected override checkAudienceValidityError(expectedAudience: string, audienceRestrictions: Parameters<SAML['checkAudienceValidityError']>[1]): Error | null {
    const err = super.checkAudienceValidityError(expectedAudience, audienceRestrictions);
    this.audienceFailure = err ?? undefined;
    return err;
  }
}

/**
 * The failures of node-saml 5.1.0's assertion step that carry nothing but
 * their message (plain Errors thrown inside processValidlySignedAssertionAsync),
 * matched exactly. Everything else is classified by its step.
 */
export const NODE_SAML_ASSERTION_MESSAGES: Readonly<Record<string, RejectReason>> = {
  'InResponseTo does not match subjectInResponseTo': 'in_response_to_invalid',
  'SubjectInResponseTo is not valid': 'in_response_to_invalid',
  // Every bearer confirmation failed its time check (or had no data): which one is told by what the time checks returned.
  'No valid subject confirmation found among those available in the SAML assertion': 'expired',
};

/** Children of `response` named Assertion in any namespace (as node-saml counts them). */
function assertionsByLocalName(response: Element): number {
  let count = 0;
  for (let node = response.firstChild; node; node = node.nextSibling) if ((node as Element).localName === 'Assertion') count += 1;
  return count;
}

/** Why node-saml refused a response, from the step it failed in (see {@link SteppedSaml}). */
function nodeSamlReason(saml: SteppedSaml, err: unknown, response: Element): RejectReason {
  switch (saml.step) {
    case 'read':
      return 'malformed';
    case 'in_response_to':
      return 'in_response_to_invalid';
    case 'signature':
      // node-saml counts assertions by local name in any namespace; fedgate's inspection counted those of SAML's.
      return assertionsByLocalName(response) > 1 ? 'multiple_assertions' : 'signature_invalid';
    case 'signed_assertion':
      return 'invalid_response';
    case 'assertion': {
      if (!(err instanceof Error)) return 'invalid_response';
      const time = saml.timeFailures.get(err);
      if (time) return time;
      if (err === saml.audienceFailure) return 'audience_mismatch';
      const reason = NODE_SAML_ASSERTION_MESSAGES[err.message];
      if (reason === 'expired') return [...saml.timeFailures.values()].includes('not_yet_valid') ? 'not_yet_valid' : 'expired';
      if (reason) return reason;
      // Without Conditions node-saml cannot reach its audience check (it fails reading them): no audience for this SP.
      const assertion = children(response, NS.assertion, 'Assertion')[0];
      if (assertion && !child(assertion, NS.assertion, 'Conditions')) return 'audience_mismatch';
      return 'invalid_response';
    }
  }
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
  const saml = new SteppedSaml(samlOptions({
    entityId: input.sp.entityId, acsUrl: input.sp.acsUrl, clockSkewSeconds: input.clockSkewSeconds,
    requireSignedAssertions: input.requireSignedAssertions, cacheProvider: oneRequestCache(input.request.requestId, input.now),
  }, input.idp));
  try {
    const { profile } = await saml.validatePostResponseAsync({ SAMLResponse: input.samlResponse });
    const assertionXml = profile?.getAssertionXml?.();
    if (!assertionXml) return { ...refuse('no_assertion', 'the response did not pass validation', idpId), signatureChecks: checks() };
    verifiedXml = assertionXml;
  } catch (err) {
    return { ...refuse(nodeSamlReason(saml, err, response), 'the response did not pass validation', idpId), signatureChecks: checks() };
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
