/**
 * Certificate path validation for X.509 login: RFC 5280 §6.1 (basic path
 * validation, without policy processing: any policy is acceptable) plus
 * RFC 3820 §4.1 proxy certificate path validation, and CRL checks from the
 * trust anchor directory (RFC 5280 §6.3, the complete CRLs a directory
 * holds; no delta CRLs, no fetching).
 *
 * The chain a client presents is the leaf first, then whatever else it sent
 * (proxy issuers, the end-entity certificate, intermediate CAs), in any
 * order. Proxies are peeled off first: a chain of proxies resolves to the
 * end-entity certificate (EEC), whose subject is the identity. The EEC is
 * then chained to a trust anchor through the CAs of the directory and those
 * the client sent.
 */
import { CN_OID, EMAIL_OID, formatDn } from './dn.ts';
import { DEFAULT_ALGORITHM_POLICY, unusableKey, weakKey, weakSignature, type AlgorithmPolicy } from './algorithms.ts';
import {
  hasKeyUsage, KEY_USAGE, KNOWN_EXTENSIONS, mayHaveIssued, OID, parseCertificate, signatureScheme, signedBy, type ParsedCertificate,
} from './certificate.ts';
import type { X509Config } from '../../config/x509-schema.ts';
import type { TrustSnapshot } from './trust-store.ts';
import type { DistinguishedName } from './dn.ts';
import { FedgateError } from '../../util/errors.ts';

/** Why a certificate was refused; stable codes for audit events and API answers. */
export type X509FailureReason =
  /** No client certificate reached fedgate. */
  | 'no_certificate'
  /** A header or certificate that cannot be decoded. */
  | 'malformed'
  /** No path to a trust anchor, or a signature that does not verify. */
  | 'untrusted'
  | 'expired'
  | 'not_yet_valid'
  | 'revoked'
  /** The CRL that should say is missing (crl.missing: refuse) or out of date (crl.expired: refuse). */
  | 'revocation_unknown'
  /** basicConstraints, keyUsage, extendedKeyUsage, path length, name constraints or an unknown critical extension. */
  | 'constraint_violation'
  /** A signature or key below the algorithm floor (`x509.algorithms`). */
  | 'weak_algorithm'
  /** An RFC 3820 rule broken, or proxies not accepted. */
  | 'invalid_proxy';

/** A certificate chain that validated. */
export interface VerifiedCertificate {
  ok: true;
  /** Canonical subject DN of the end-entity certificate: the identity. */
  subject: string;
  /** Canonical DN of its issuer (the CA that signed the EEC). */
  issuer: string;
  /** The EEC's (last) common name. */
  name?: string | undefined;
  /** emailAddress in the subject, else the first rfc822Name in subjectAltName. */
  email?: string | undefined;
  endEntity: ParsedCertificate;
  /** The proxies above the EEC, leaf first (empty when the EEC itself was presented). */
  proxies: ParsedCertificate[];
  /** A limited proxy (Globus) was part of the chain. */
  limited: boolean;
  /** The CA path from the EEC's issuer to the trust anchor. */
  path: ParsedCertificate[];
  /** Accepted despite these (an expired CRL under crl.expired: warn). */
  warnings: string[];
  work: VerificationWork;
}

/** What one verification cost: signature checks made and path-building steps taken. */
export interface VerificationWork {
  signatureChecks: number;
  pathSteps: number;
}

/** A certificate chain that was refused. */
export interface CertificateRefusal {
  ok: false;
  reason: X509FailureReason;
  /** For people: what is wrong, naming the certificate. */
  message: string;
  /** Canonical DNs of the end-entity certificate, when it could be read. */
  subject?: string | undefined;
  issuer?: string | undefined;
  work?: VerificationWork | undefined;
}

export type CertificateVerification = VerifiedCertificate | CertificateRefusal;

/** Options of {@link verifyChain}. */
export interface VerifyOptions {
  /** The time to validate at (default now). */
  now?: Date | undefined;
  crl: {
    /** No CRL for a CA in the path: accept, or refuse (`revocation_unknown`). A CRL that is there but unusable is never "missing". */
    missing: 'accept' | 'refuse';
    /** The CA's newest CRL is past its nextUpdate: refuse (`revocation_unknown`), or accept with a warning. */
    expired: 'refuse' | 'warn';
    /**
     * CRLs with the CA's name are there but none can be relied on (signed
     * by another key or with a broken algorithm, a CA without cRLSign, an
     * unknown critical extension, thisUpdate ahead beyond the clock skew):
     * refuse (`revocation_unknown`, the default) or accept with a warning.
     * Never treated as a missing CRL.
     */
    unusable?: 'refuse' | 'warn' | undefined;
  };
  /** How far ahead of the clock a CRL's thisUpdate may be, in seconds (default {@link DEFAULT_CLOCK_SKEW_SECONDS}). */
  clockSkewSeconds?: number | undefined;
  /** The floor on signature and key algorithms (default {@link DEFAULT_ALGORITHM_POLICY}). */
  algorithms?: AlgorithmPolicy | undefined;
  /** Accept RFC 3820 and legacy Globus proxy certificates. */
  proxyCertificates: boolean;
}

/**
 * The verification options of the configuration (`x509.crl`,
 * `x509.proxyCertificates`, `x509.clockSkewSeconds`, `x509.algorithms`):
 * what certificate login and the offline verifier both use.
 */
export function verifyOptionsFrom(x509: Pick<X509Config, 'crl' | 'proxyCertificates' | 'clockSkewSeconds' | 'algorithms'>): VerifyOptions {
  return { crl: x509.crl, proxyCertificates: x509.proxyCertificates, clockSkewSeconds: x509.clockSkewSeconds, algorithms: x509.algorithms };
}

/** Longest chain a client may send. */
export const MAX_CHAIN_LENGTH = 16;
/** Most CA certificates above the EEC. */
const MAX_CA_DEPTH = 8;
/** Default tolerance for a CRL issued by a CA whose clock runs ahead of ours. */
export const DEFAULT_CLOCK_SKEW_SECONDS = 300;

/**
 * Hard bounds on the work one verification may do, whatever the chain and
 * the directory hold (RFC 4158 §2.4 on bounding path building): complete
 * candidate paths tried (cross-signed and re-keyed CAs), steps of the path
 * search, and signature checks. A legitimate chain needs a handful of each.
 */
export const VERIFY_LIMITS = { paths: 8, pathSteps: 256, signatureChecks: 48 } as const;

/** A chain refused while validating it (internal: verify() returns it as a failure). */
class Refused extends FedgateError {
  readonly reason: X509FailureReason;
  constructor(reason: X509FailureReason, message: string) {
    super(reason, message);
    this.reason = reason;
  }
}

const day = (date: Date) => date.toISOString().replace(/\.\d+Z$/, 'Z');

function checkTime(cert: ParsedCertificate, now: Date, what: string): void {
  if (now < cert.notBefore) throw new Refused('not_yet_valid', `The ${what} ${cert.subjectDn} is not valid before ${day(cert.notBefore)}.`);
  if (now > cert.notAfter) throw new Refused('expired', `The ${what} ${cert.subjectDn} expired on ${day(cert.notAfter)}.`);
}

function checkCriticalExtensions(cert: ParsedCertificate, what: string): void {
  for (const ext of cert.extensions.values()) {
    if (ext.critical && !KNOWN_EXTENSIONS.has(ext.oid)) {
      throw new Refused('constraint_violation', `The ${what} ${cert.subjectDn} has a critical extension fedgate does not understand (${ext.oid}).`);
    }
  }
}

const isSelfIssued = (cert: ParsedCertificate) => cert.subjectKey === cert.issuerKey;

/**
 * The work of one verification: each signature (certificate, issuer key)
 * is checked at most once, and no more than
 * {@link VERIFY_LIMITS.signatureChecks} in all.
 */
class Work {
  signatureChecks = 0;
  pathSteps = 0;
  readonly #signatures = new Map<string, boolean>();

  /** Does `subject`'s signature verify with `issuer`'s key? */
  signed(subject: ParsedCertificate, issuer: ParsedCertificate): boolean {
    // The answer depends on the issuer's key only: look-alike CAs sharing a key cost one check.
    const key = `${subject.fingerprint}/${issuer.keyId}`;
    const known = this.#signatures.get(key);
    if (known !== undefined) return known;
    let ok = false;
    if (!unusableKey(issuer)) {
      if (this.signatureChecks >= VERIFY_LIMITS.signatureChecks) {
        throw new Refused('untrusted', `The certificate chain needs more than ${VERIFY_LIMITS.signatureChecks} signature checks to validate; it is refused.`);
      }
      this.signatureChecks += 1;
      ok = signedBy(subject, issuer);
    }
    this.#signatures.set(key, ok);
    return ok;
  }

  get summary(): VerificationWork {
    return { signatureChecks: this.signatureChecks, pathSteps: this.pathSteps };
  }
}

/** The algorithm floor on one certificate: its key, and its signature unless it is a self-signed anchor. */
function checkAlgorithms(cert: ParsedCertificate, policy: AlgorithmPolicy, what: string, selfSignedAnchor = false): void {
  const problem = unusableKey(cert) ?? weakKey(cert, policy) ?? (selfSignedAnchor ? undefined : weakSignature(signatureScheme(cert.signatureAlgorithm), policy));
  if (problem) throw new Refused('weak_algorithm', `The ${what} ${cert.subjectDn} is refused: ${problem}.`);
}

/** The proxy policy languages a login may use: RFC 3820 inheritAll and Globus' limited proxy. */
const ACCEPTED_PROXY_POLICIES = new Set<string>([OID.pplInheritAll, OID.globusLimitedProxy]);

/** Legacy Globus (GT2) proxies and RFC 3820 / draft proxies carry these as the added CN. */
const LEGACY_PROXY_CN = /^(?:proxy|limited proxy|\d+)$/;

/** `dn` minus its last RDN, and that RDN's value if it is a single CN. */
function splitLastCn(dn: DistinguishedName): { parent: string; cn: string | undefined } {
  const last = dn.at(-1);
  const cn = last?.length === 1 && last[0]!.type === CN_OID && !last[0]!.ber ? last[0]!.value : undefined;
  return { parent: formatDn(dn.slice(0, -1)), cn };
}

/**
 * Is `cert` a proxy certificate? RFC 3820 and draft proxies say so with
 * proxyCertInfo; legacy Globus proxies only by their name (the issuer's DN
 * plus `CN=proxy`, `CN=limited proxy` or a number) — which is confirmed only
 * when their issuer, an end-entity certificate, is found.
 */
function proxyKind(cert: ParsedCertificate): 'rfc' | 'legacy' | undefined {
  if (cert.proxyCertInfo) return 'rfc';
  if (cert.basicConstraints?.ca || cert.subject.length !== cert.issuer.length + 1) return undefined;
  const { parent, cn } = splitLastCn(cert.subject);
  return cn !== undefined && LEGACY_PROXY_CN.test(cn) && parent === cert.issuerDn ? 'legacy' : undefined;
}

/** RFC 3820 §4.1.3–4.1.4 checks of one proxy and the certificate that issued it. */
function checkProxy(proxy: ParsedCertificate, issuer: ParsedCertificate, below: number, now: Date, policy: AlgorithmPolicy): void {
  const { parent, cn } = splitLastCn(proxy.subject);
  // §3.4: the subject is the issuer's subject plus one CN RDN.
  if (cn === undefined || parent !== issuer.subjectDn) {
    throw new Refused('invalid_proxy', `The proxy certificate ${proxy.subjectDn} is not named after its issuer ${issuer.subjectDn} plus one CN.`);
  }
  checkTime(proxy, now, 'proxy certificate');
  if (proxy.basicConstraints?.ca) throw new Refused('invalid_proxy', `The proxy certificate ${proxy.subjectDn} claims to be a CA.`);
  // §3.5, §3.6: a proxy MUST NOT carry subjectAltName or issuerAltName.
  if (proxy.subjectAltName || proxy.extensions.has(OID.issuerAltName)) {
    throw new Refused('invalid_proxy', `The proxy certificate ${proxy.subjectDn} carries alternative names.`);
  }
  // §3.7: the issuer signs proxies with its digitalSignature key; a proxy asserts neither keyCertSign nor nonRepudiation.
  if (issuer.keyUsage && !hasKeyUsage(issuer.keyUsage, KEY_USAGE.digitalSignature)) {
    throw new Refused('invalid_proxy', `The certificate ${issuer.subjectDn} may not sign proxy certificates (no digitalSignature key usage).`);
  }
  if (proxy.keyUsage && (hasKeyUsage(proxy.keyUsage, KEY_USAGE.keyCertSign) || hasKeyUsage(proxy.keyUsage, KEY_USAGE.nonRepudiation))) {
    throw new Refused('invalid_proxy', `The proxy certificate ${proxy.subjectDn} asserts keyCertSign or nonRepudiation.`);
  }
  checkCriticalExtensions(proxy, 'proxy certificate');
  checkAlgorithms(proxy, policy, 'proxy certificate');
  const info = proxy.proxyCertInfo;
  if (info) {
    // §3.8.1: an independent proxy inherits none of its issuer's rights; other languages carry restrictions fedgate cannot evaluate.
    if (!ACCEPTED_PROXY_POLICIES.has(info.policyLanguage)) {
      throw new Refused('invalid_proxy', `The proxy certificate ${proxy.subjectDn} has a proxy policy fedgate does not accept (${info.policyLanguage}).`);
    }
    // §4.1.4 (pCPathLenConstraint): at most pathLen proxies below this one.
    if (info.pathLen !== undefined && below > info.pathLen) {
      throw new Refused('invalid_proxy', `The proxy certificate ${proxy.subjectDn} allows at most ${info.pathLen} proxies below it; the chain has ${below}.`);
    }
  }
}

function isLimited(proxy: ParsedCertificate): boolean {
  if (proxy.proxyCertInfo) return proxy.proxyCertInfo.policyLanguage === OID.globusLimitedProxy;
  return splitLastCn(proxy.subject).cn === 'limited proxy';
}

function checkEndEntity(eec: ParsedCertificate, now: Date, policy: AlgorithmPolicy): void {
  checkTime(eec, now, 'certificate');
  if (eec.subject.length === 0) throw new Refused('malformed', 'The certificate has an empty subject: it names nobody.');
  if (eec.keyUsage && !hasKeyUsage(eec.keyUsage, KEY_USAGE.digitalSignature)) {
    throw new Refused('constraint_violation', `The certificate ${eec.subjectDn} may not be used for authentication (no digitalSignature key usage).`);
  }
  if (eec.extKeyUsage && !eec.extKeyUsage.includes(OID.ekuClientAuth) && !eec.extKeyUsage.includes(OID.ekuAny)) {
    throw new Refused('constraint_violation', `The certificate ${eec.subjectDn} is not for client authentication (extendedKeyUsage lacks clientAuth).`);
  }
  checkCriticalExtensions(eec, 'certificate');
  checkAlgorithms(eec, policy, 'certificate');
}

// ------------------------------------------------------------ name constraints (RFC 5280 §4.2.1.10)

function dnWithin(name: DistinguishedName, base: DistinguishedName): boolean {
  if (base.length > name.length) return false;
  return formatDn(name.slice(0, base.length)).toLowerCase() === formatDn(base).toLowerCase();
}

function hostWithin(host: string, base: string): boolean {
  const h = host.toLowerCase();
  const b = base.toLowerCase();
  if (b.startsWith('.')) return h.endsWith(b);
  return h === b || h.endsWith(`.${b}`);
}

function emailWithin(email: string, base: string): boolean {
  if (base.includes('@')) return email.toLowerCase() === base.toLowerCase();
  const at = email.lastIndexOf('@');
  const host = email.slice(at + 1).toLowerCase();
  const b = base.toLowerCase();
  return b.startsWith('.') ? host.endsWith(b) : host === b;
}

/** Is some value outside the permitted subtrees (when there are any) or inside an excluded one? */
function outside<T>(values: readonly T[], permitted: readonly T[], excluded: readonly T[], within: (value: T, base: T) => boolean): boolean {
  return values.some((v) => (permitted.length > 0 && !permitted.some((b) => within(v, b))) || excluded.some((b) => within(v, b)));
}

function checkNameConstraints(ca: ParsedCertificate, cert: ParsedCertificate): void {
  const { permitted, excluded } = ca.nameConstraints!;
  const san = cert.subjectAltName;
  const directory = [...(cert.subject.length ? [cert.subject] : []), ...(san?.directory ?? [])];
  // §4.2.1.10: rfc822Name constraints also apply to emailAddress attributes of the subject.
  const emails = [...(san?.email ?? []), ...cert.subject.flat().filter((a) => a.type === EMAIL_OID && !a.ber).map((a) => a.value)];
  if (
    outside(directory, permitted.directory, excluded.directory, dnWithin)
    || outside(san?.dns ?? [], permitted.dns, excluded.dns, hostWithin)
    || outside(emails, permitted.email, excluded.email, emailWithin)
  ) {
    throw new Refused('constraint_violation', `The certificate ${cert.subjectDn} is outside the names its CA ${ca.subjectDn} may certify.`);
  }
  // URI, IP and other name forms are not evaluated: refuse rather than ignore constraints that could apply.
  const applies = (kind: 'uri' | 'ip') => (permitted[kind].length > 0 || excluded[kind].length > 0) && (san?.[kind].length ?? 0) > 0;
  if (applies('uri') || applies('ip') || ((permitted.other > 0 || excluded.other > 0) && (san?.other ?? 0) > 0)) {
    throw new Refused('constraint_violation', `The CA ${ca.subjectDn} constrains name forms fedgate does not evaluate.`);
  }
}

// ------------------------------------------------------------ paths

/**
 * Candidate CA paths above `eec`, each ending at a trust anchor; anchors are
 * tried before client-sent CAs. A depth-first search bounded by
 * {@link VERIFY_LIMITS}; a certificate whose subject and key are already in
 * the path is never added again (RFC 4158 §5.2: it adds nothing, and N
 * look-alike CAs would otherwise be tried in every order).
 */
function candidatePaths(eec: ParsedCertificate, pool: readonly ParsedCertificate[], trust: TrustSnapshot, work: Work): ParsedCertificate[][] {
  const paths: ParsedCertificate[][] = [];
  const inPath = (path: readonly ParsedCertificate[], c: ParsedCertificate) =>
    path.some((p) => p.fingerprint === c.fingerprint || (p.subjectKey === c.subjectKey && p.keyId === c.keyId));
  const walk = (path: ParsedCertificate[]) => {
    if (paths.length >= VERIFY_LIMITS.paths || work.pathSteps >= VERIFY_LIMITS.pathSteps) return;
    work.pathSteps += 1;
    const top = path.at(-1)!;
    const anchored = path.length > 1 && trust.isAnchor(top);
    if (anchored && isSelfIssued(top) && work.signed(top, top)) {
      paths.push(path.slice(1));
      return;
    }
    if (path.length > MAX_CA_DEPTH) return;
    const fromDirectory = trust.anchorsNamed(top.issuerKey);
    // Above an anchor only the directory counts; below it, the client's intermediates may bridge the gap.
    const candidates = anchored ? fromDirectory : [...fromDirectory, ...pool.filter((c) => c.subjectKey === top.issuerKey && !trust.isAnchor(c))];
    const usable = candidates.filter((c) => mayHaveIssued(top, c) && !inPath(path, c) && work.signed(top, c));
    if (anchored && usable.length === 0) {
      // An anchor whose issuer is not in the directory: it is trusted as it is (OpenSSL's partial chain).
      paths.push(path.slice(1));
      return;
    }
    for (const next of usable) walk([...path, next]);
  };
  walk([eec]);
  return paths;
}

/** RFC 5280 §6.1.3–6.1.4 over one path, from the anchor down, with the CRL check of every link. */
function checkPath(eec: ParsedCertificate, path: readonly ParsedCertificate[], trust: TrustSnapshot, options: VerifyOptions, now: Date, warnings: string[]): void {
  const chain = [eec, ...path];
  const policy = options.algorithms ?? DEFAULT_ALGORITHM_POLICY;
  // §6.1.4 (k), (n), (o): every issuer is a CA allowed to sign certificates, before limits on how many there are.
  for (let k = chain.length - 1; k >= 1; k -= 1) {
    const ca = chain[k]!;
    checkTime(ca, now, 'CA certificate');
    checkAlgorithms(ca, policy, 'CA certificate', k === chain.length - 1 && trust.isAnchor(ca) && isSelfIssued(ca));
    if (!ca.basicConstraints?.ca) throw new Refused('constraint_violation', `The certificate ${ca.subjectDn} signed ${chain[k - 1]!.subjectDn} but is not a CA certificate.`);
    if (ca.keyUsage && !hasKeyUsage(ca.keyUsage, KEY_USAGE.keyCertSign)) {
      throw new Refused('constraint_violation', `The CA certificate ${ca.subjectDn} may not sign certificates (no keyCertSign key usage).`);
    }
    checkCriticalExtensions(ca, 'CA certificate');
  }
  for (let k = chain.length - 1; k >= 1; k -= 1) {
    const ca = chain[k]!;
    const child = chain[k - 1]!;
    // §6.1.4 (l)–(m): self-issued intermediates do not count against pathLenConstraint.
    const below = chain.slice(1, k).filter((c) => !isSelfIssued(c)).length;
    const pathLen = ca.basicConstraints?.pathLen;
    if (pathLen !== undefined && below > pathLen) {
      throw new Refused('constraint_violation', `The CA certificate ${ca.subjectDn} allows ${pathLen} intermediate CAs below it; the path has ${below}.`);
    }
    if (ca.nameConstraints) {
      for (let j = k - 1; j >= 0; j -= 1) {
        if (j > 0 && isSelfIssued(chain[j]!)) continue;
        checkNameConstraints(ca, chain[j]!);
      }
    }
    checkRevocation(ca, child, trust, options, now, warnings);
  }
}

function checkRevocation(ca: ParsedCertificate, child: ParsedCertificate, trust: TrustSnapshot, options: VerifyOptions, now: Date, warnings: string[]): void {
  const lookup = trust.crlStatus(ca, now, options.clockSkewSeconds ?? DEFAULT_CLOCK_SKEW_SECONDS, options.algorithms ?? DEFAULT_ALGORITHM_POLICY);
  const unknown = (message: string) => new Refused('revocation_unknown', `${message}, so whether ${child.subjectDn} is revoked cannot be checked.`);
  if (lookup.status === 'missing') {
    if (options.crl.missing === 'refuse') throw unknown(`There is no CRL of ${ca.subjectDn}`);
    return;
  }
  // A certificate listed by its CA's signature is revoked, even in a list that is out of date or not valid yet.
  if (lookup.crl?.revoked.has(child.serial)) throw new Refused('revoked', `The certificate ${child.subjectDn} (serial ${child.serial}) has been revoked by ${ca.subjectDn}.`);
  if (lookup.status === 'unusable') {
    const message = `The CRL of ${ca.subjectDn} cannot be used: ${lookup.reason}`;
    if ((options.crl.unusable ?? 'refuse') === 'refuse') throw unknown(message);
    warnings.push(message);
    return;
  }
  const { crl } = lookup;
  if (crl.nextUpdate && crl.nextUpdate < now) {
    const message = `The CRL of ${ca.subjectDn} expired on ${day(crl.nextUpdate)}`;
    if (options.crl.expired === 'refuse') throw unknown(message);
    warnings.push(message);
  }
}

/** The EEC's last CN, and an email address from the subject or subjectAltName. */
function describe(eec: ParsedCertificate): { name?: string; email?: string } {
  const attributes = eec.subject.flat();
  const name = attributes.filter((a) => a.type === CN_OID && !a.ber).at(-1)?.value;
  const email = attributes.find((a) => a.type === EMAIL_OID && !a.ber)?.value ?? eec.subjectAltName?.email[0];
  return { ...(name ? { name } : {}), ...(email ? { email } : {}) };
}

/**
 * Validates a client certificate chain (DER, leaf first, then anything the
 * client sent along) against the trust anchors. Bounded: see
 * {@link VERIFY_LIMITS}.
 */
export function verifyChain(chain: readonly Buffer[], trust: TrustSnapshot, options: VerifyOptions): CertificateVerification {
  const now = options.now ?? new Date();
  const policy = options.algorithms ?? DEFAULT_ALGORITHM_POLICY;
  if (chain.length === 0) return { ok: false, reason: 'no_certificate', message: 'No client certificate was presented.' };
  if (chain.length > MAX_CHAIN_LENGTH) return { ok: false, reason: 'malformed', message: `The certificate chain is longer than ${MAX_CHAIN_LENGTH} certificates.` };
  let certs: ParsedCertificate[];
  try {
    certs = chain.map((der) => parseCertificate(der));
  } catch (err) {
    return { ok: false, reason: 'malformed', message: `The client certificate could not be read (${(err as Error).message}).` };
  }
  const work = new Work();
  let identity: { subject: string; issuer: string } | { subject?: undefined; issuer?: undefined } = {};
  const refuse = (err: unknown): CertificateRefusal => {
    if (err instanceof Refused) return { ok: false, reason: err.reason, message: err.message, ...identity, work: work.summary };
    throw err;
  };
  try {
    // RFC 3820 §4.1: walk the proxies down to the end-entity certificate.
    const proxies: ParsedCertificate[] = [];
    let current = certs[0]!;
    let pool = certs.slice(1);
    for (let kind = proxyKind(current); kind; kind = proxyKind(current)) {
      const issuer = pool.find((c) => c.subjectDn === current.issuerDn && !c.basicConstraints?.ca && work.signed(current, c));
      if (!issuer) {
        if (kind === 'legacy') break; // named like a proxy but not issued by an end entity: an ordinary certificate
        return { ok: false, reason: 'invalid_proxy', message: `The issuer of the proxy certificate ${current.subjectDn} was not sent with it.`, subject: current.issuerDn, work: work.summary };
      }
      proxies.push(current);
      current = issuer;
      pool = pool.filter((c) => c !== issuer);
    }
    const eec = current;
    identity = { subject: eec.subjectDn, issuer: eec.issuerDn };
    if (proxies.length && !options.proxyCertificates) {
      throw new Refused('invalid_proxy', 'Proxy certificates are not accepted here; use your own certificate.');
    }

    const paths = candidatePaths(eec, pool, trust, work);
    if (paths.length === 0) {
      throw new Refused('untrusted', `The certificate ${eec.subjectDn} was not issued by a trusted CA (issuer ${eec.issuerDn}).`);
    }
    let firstFailure: CertificateRefusal | undefined;
    for (const path of paths) {
      const warnings: string[] = [];
      try {
        // The presented certificates first: "your certificate expired" says more than a problem further up.
        checkEndEntity(eec, now, policy);
        // From the EEC down, so each proxy knows how many follow it.
        for (let i = proxies.length - 1; i >= 0; i -= 1) checkProxy(proxies[i]!, proxies[i + 1] ?? eec, i, now, policy);
        checkPath(eec, path, trust, options, now, warnings);
        return {
          ok: true,
          ...identity,
          ...describe(eec),
          endEntity: eec,
          proxies,
          limited: proxies.some(isLimited),
          path,
          warnings,
          work: work.summary,
        };
      } catch (err) {
        firstFailure ??= refuse(err);
      }
    }
    return firstFailure!;
  } catch (err) {
    return refuse(err);
  }
}
