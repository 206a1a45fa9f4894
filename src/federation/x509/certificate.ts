/**
 * Certificates and CRLs taken apart: the fields and extensions path
 * validation needs (RFC 5280 §4.1, §4.2, §5.1), RFC 3820 proxyCertInfo,
 * PEM handling and signature checks.
 *
 * node:crypto's X509Certificate parses each certificate too (a certificate
 * it refuses is malformed) and checks certificate signatures; CRL signatures
 * are checked with crypto.verify over the DER `tbsCertList`.
 */
import { constants, createHash, verify as verifySignature, X509Certificate, type KeyObject } from 'node:crypto';
import {
  children, contextTag, DerError, expectTag, integerHex, readBitString, readBoolean, readOne, readOid, readSmallInteger, readTime, TAG, type Tlv,
} from './der.ts';
import { decodeName, dnMatchKey, formatDn, type DistinguishedName } from './dn.ts';
import { FedgateError } from '../../util/errors.ts';

/** Extension OIDs (RFC 5280 §4.2.1, RFC 3820 §3.8). */
export const OID = {
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  issuerAltName: '2.5.29.18',
  basicConstraints: '2.5.29.19',
  cRLNumber: '2.5.29.20',
  deltaCRLIndicator: '2.5.29.27',
  issuingDistributionPoint: '2.5.29.28',
  nameConstraints: '2.5.29.30',
  cRLDistributionPoints: '2.5.29.31',
  certificatePolicies: '2.5.29.32',
  policyMappings: '2.5.29.33',
  authorityKeyIdentifier: '2.5.29.35',
  policyConstraints: '2.5.29.36',
  extKeyUsage: '2.5.29.37',
  inhibitAnyPolicy: '2.5.29.54',
  authorityInfoAccess: '1.3.6.1.5.5.7.1.1',
  /** RFC 3820 §3.8 id-pe-proxyCertInfo. */
  proxyCertInfo: '1.3.6.1.5.5.7.1.14',
  /** The pre-RFC draft's OID, still in Globus Toolkit 3 era proxies. */
  proxyCertInfoDraft: '1.3.6.1.4.1.3536.1.222',
  netscapeCertType: '2.16.840.1.113730.1.1',
  /** RFC 3820 §3.8.1 policy languages, and Globus' limited proxy policy. */
  pplInheritAll: '1.3.6.1.5.5.7.21.1',
  pplIndependent: '1.3.6.1.5.5.7.21.2',
  globusLimitedProxy: '1.3.6.1.4.1.3536.1.1.1.9',
  ekuClientAuth: '1.3.6.1.5.5.7.3.2',
  ekuAny: '2.5.29.37.0',
} as const;

/**
 * Extensions whose meaning path validation knows: a critical extension not
 * in this list makes a certificate unusable (RFC 5280 §4.2). Policy
 * extensions are listed since fedgate requires no particular policy
 * (RFC 5280 §6.1 with initial-policy-set = any-policy).
 */
export const KNOWN_EXTENSIONS: ReadonlySet<string> = new Set([
  OID.subjectKeyIdentifier, OID.keyUsage, OID.subjectAltName, OID.issuerAltName, OID.basicConstraints, OID.nameConstraints,
  OID.cRLDistributionPoints, OID.certificatePolicies, OID.policyMappings, OID.authorityKeyIdentifier, OID.policyConstraints,
  OID.extKeyUsage, OID.inhibitAnyPolicy, OID.authorityInfoAccess, OID.proxyCertInfo, OID.proxyCertInfoDraft, OID.netscapeCertType,
]);

/** keyUsage bits (RFC 5280 §4.2.1.3). */
export const KEY_USAGE = {
  digitalSignature: 0,
  nonRepudiation: 1,
  keyEncipherment: 2,
  dataEncipherment: 3,
  keyAgreement: 4,
  keyCertSign: 5,
  cRLSign: 6,
  encipherOnly: 7,
  decipherOnly: 8,
} as const;

/** One extension. */
export interface Extension {
  oid: string;
  critical: boolean;
  value: Buffer;
}

/** The names of a GeneralNames value that fedgate looks at (RFC 5280 §4.2.1.6). */
export interface GeneralNames {
  email: string[];
  dns: string[];
  uri: string[];
  ip: string[];
  directory: DistinguishedName[];
  /** otherName, x400Address, ediPartyName and registeredID entries. */
  other: number;
}

/** A GeneralSubtree base of name constraints (RFC 5280 §4.2.1.10), by name form. */
export interface NameConstraints {
  permitted: GeneralNames;
  excluded: GeneralNames;
}

/** RFC 3820 §3.8 ProxyCertInfo. */
export interface ProxyCertInfo {
  /** Most proxies that may follow this one (pCPathLenConstraint); undefined = no limit. */
  pathLen?: number | undefined;
  /** The proxy policy language OID. */
  policyLanguage: string;
  /** Read from the pre-RFC draft's extension OID. */
  draft: boolean;
}

/** A certificate and the parts of it that validation uses. */
export interface ParsedCertificate {
  der: Buffer;
  x509: X509Certificate;
  /** SHA-256 of the DER, hex. */
  fingerprint: string;
  /** 1, 2 or 3. */
  version: number;
  /** Lower-case hex without leading zeros. */
  serial: string;
  subject: DistinguishedName;
  issuer: DistinguishedName;
  /** Canonical DNs (see dn.ts). */
  subjectDn: string;
  issuerDn: string;
  /** Looser keys for chain building (see dnMatchKey). */
  subjectKey: string;
  issuerKey: string;
  notBefore: Date;
  notAfter: Date;
  /** The subject's public key, read once (each `x509.publicKey` read builds a new KeyObject). */
  publicKey: KeyObject;
  /** SHA-256 of the subjectPublicKeyInfo, hex: certificates with one key share it. */
  keyId: string;
  /** The outer signatureAlgorithm (RFC 5280 §4.1.1.2). */
  signatureAlgorithm: Tlv;
  extensions: ReadonlyMap<string, Extension>;
  basicConstraints?: { ca: boolean; pathLen?: number | undefined } | undefined;
  /** keyUsage bit string, bit 0 first; undefined when the extension is absent. */
  keyUsage?: Buffer | undefined;
  extKeyUsage?: string[] | undefined;
  subjectAltName?: GeneralNames | undefined;
  nameConstraints?: NameConstraints | undefined;
  proxyCertInfo?: ProxyCertInfo | undefined;
  /** subjectKeyIdentifier, hex. */
  subjectKeyId?: string | undefined;
  /** The keyIdentifier of authorityKeyIdentifier, hex. */
  authorityKeyId?: string | undefined;
}

/** A CRL and what revocation checks need (RFC 5280 §5.1). */
export interface ParsedCrl {
  der: Buffer;
  issuer: DistinguishedName;
  issuerDn: string;
  issuerKey: string;
  thisUpdate: Date;
  nextUpdate?: Date | undefined;
  /** Serials (lower-case hex, no leading zeros) of the revoked certificates. */
  revoked: ReadonlySet<string>;
  /** Critical CRL extensions fedgate does not process (delta CRLs, partitioned CRLs): such a CRL is not used. */
  unsupportedCritical: string[];
  tbs: Buffer;
  signatureAlgorithm: Tlv;
  signature: Buffer;
}

/** The input is not a certificate (or CRL) fedgate can read. */
export class CertificateParseError extends FedgateError {
  constructor(message: string) {
    super('malformed', message);
  }
}

function emptyNames(): GeneralNames {
  return { email: [], dns: [], uri: [], ip: [], directory: [], other: 0 };
}

function formatIp(bytes: Buffer): string {
  if (bytes.length === 4) return [...bytes].join('.');
  if (bytes.length === 16) {
    const groups: string[] = [];
    for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16));
    return groups.join(':');
  }
  return bytes.toString('hex');
}

function addGeneralName(names: GeneralNames, name: Tlv): void {
  switch (name.tag) {
    case contextTag(1, false): names.email.push(name.value.toString('latin1')); break;
    case contextTag(2, false): names.dns.push(name.value.toString('latin1')); break;
    case contextTag(6, false): names.uri.push(name.value.toString('latin1')); break;
    case contextTag(7, false): names.ip.push(formatIp(name.value)); break;
    case contextTag(4, true): names.directory.push(decodeName(readOne(name.value))); break;
    default: names.other += 1;
  }
}

function generalNames(value: Buffer): GeneralNames {
  const names = emptyNames();
  for (const name of children(expectTag(readOne(value), TAG.SEQUENCE, 'GeneralNames'))) addGeneralName(names, name);
  return names;
}

function nameConstraints(value: Buffer): NameConstraints {
  const result: NameConstraints = { permitted: emptyNames(), excluded: emptyNames() };
  for (const part of children(expectTag(readOne(value), TAG.SEQUENCE, 'NameConstraints'))) {
    const target = part.tag === contextTag(0, true) ? result.permitted : part.tag === contextTag(1, true) ? result.excluded : undefined;
    if (!target) throw new DerError('bad NameConstraints');
    for (const subtree of children(part)) {
      const [base] = children(expectTag(subtree, TAG.SEQUENCE, 'GeneralSubtree'));
      if (!base) throw new DerError('bad GeneralSubtree');
      addGeneralName(target, base);
    }
  }
  return result;
}

/**
 * RFC 3820 §3.8: `SEQUENCE { pCPathLenConstraint INTEGER OPTIONAL,
 * proxyPolicy SEQUENCE { policyLanguage OID, policy OCTET STRING OPTIONAL } }`.
 * The draft encodings put the path length in `[1]` and may order the
 * fields differently, so fields are recognised by tag.
 */
function proxyCertInfo(value: Buffer, draft: boolean): ProxyCertInfo {
  let pathLen: number | undefined;
  let policyLanguage: string | undefined;
  for (const field of children(expectTag(readOne(value), TAG.SEQUENCE, 'ProxyCertInfo'))) {
    if (field.tag === TAG.INTEGER) pathLen = readSmallInteger(field, 'pCPathLenConstraint');
    else if (field.tag === contextTag(1, true)) pathLen = readSmallInteger(readOne(field.value), 'pCPathLenConstraint');
    else if (field.tag === TAG.SEQUENCE) policyLanguage = readOid(children(field)[0], 'policyLanguage');
    else throw new DerError('bad ProxyCertInfo');
  }
  if (!policyLanguage) throw new DerError('ProxyCertInfo without a proxy policy');
  return { pathLen, policyLanguage, draft };
}

function readExtensions(list: Tlv): Map<string, Extension> {
  const extensions = new Map<string, Extension>();
  for (const ext of children(expectTag(list, TAG.SEQUENCE, 'Extensions'))) {
    const fields = children(expectTag(ext, TAG.SEQUENCE, 'an Extension'));
    if (fields.length < 2 || fields.length > 3) throw new DerError('bad Extension');
    const oid = readOid(fields[0]);
    const critical = fields.length === 3 ? readBoolean(fields[1]) : false;
    const value = expectTag(fields.at(-1), TAG.OCTET_STRING, 'extnValue').value;
    // RFC 5280 §4.2: "A certificate MUST NOT include more than one instance of a particular extension."
    if (extensions.has(oid)) throw new DerError(`duplicate extension ${oid}`);
    extensions.set(oid, { oid, critical, value });
  }
  return extensions;
}

/** Does the keyUsage bit string assert `bit`? */
export function hasKeyUsage(keyUsage: Buffer, bit: number): boolean {
  const byte = keyUsage[bit >> 3];
  return byte !== undefined && (byte & (0x80 >> (bit & 7))) !== 0;
}

/**
 * Parses a DER certificate.
 *
 * @throws CertificateParseError when it is not a well-formed X.509 certificate.
 */
export function parseCertificate(der: Buffer): ParsedCertificate {
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(der);
  } catch {
    throw new CertificateParseError('not an X.509 certificate');
  }
  try {
    const [tbs, signatureAlgorithm] = children(expectTag(readOne(der), TAG.SEQUENCE, 'a Certificate'));
    const publicKey = x509.publicKey;
    const fields = children(expectTag(tbs, TAG.SEQUENCE, 'a TBSCertificate'));
    let i = 0;
    let version = 1;
    if (fields[0]?.tag === contextTag(0, true)) {
      version = readSmallInteger(readOne(fields[0].value), 'version') + 1;
      i = 1;
    }
    const serial = integerHex(fields[i], 'serialNumber');
    const issuer = decodeName(fields[i + 2]!);
    const [notBeforeTlv, notAfterTlv] = children(expectTag(fields[i + 3], TAG.SEQUENCE, 'Validity'));
    const subject = decodeName(fields[i + 4]!);
    const extensionsTlv = fields.slice(i + 6).find((f) => f.tag === contextTag(3, true));
    const extensions = extensionsTlv ? readExtensions(readOne(extensionsTlv.value)) : new Map<string, Extension>();

    const parsed: ParsedCertificate = {
      der,
      x509,
      fingerprint: createHash('sha256').update(der).digest('hex'),
      version,
      serial,
      subject,
      issuer,
      subjectDn: formatDn(subject),
      issuerDn: formatDn(issuer),
      subjectKey: dnMatchKey(subject),
      issuerKey: dnMatchKey(issuer),
      notBefore: readTime(notBeforeTlv, 'notBefore'),
      notAfter: readTime(notAfterTlv, 'notAfter'),
      publicKey,
      keyId: createHash('sha256').update(expectTag(fields[i + 5], TAG.SEQUENCE, 'subjectPublicKeyInfo').bytes).digest('hex'),
      signatureAlgorithm: expectTag(signatureAlgorithm, TAG.SEQUENCE, 'signatureAlgorithm'),
      extensions,
    };
    const bc = extensions.get(OID.basicConstraints);
    if (bc) {
      let ca = false;
      let pathLen: number | undefined;
      for (const field of children(expectTag(readOne(bc.value), TAG.SEQUENCE, 'BasicConstraints'))) {
        if (field.tag === TAG.BOOLEAN) ca = readBoolean(field);
        else pathLen = readSmallInteger(field, 'pathLenConstraint');
      }
      parsed.basicConstraints = { ca, pathLen };
    }
    const ku = extensions.get(OID.keyUsage);
    if (ku) parsed.keyUsage = readBitString(readOne(ku.value), 'keyUsage').bytes;
    const eku = extensions.get(OID.extKeyUsage);
    if (eku) parsed.extKeyUsage = children(expectTag(readOne(eku.value), TAG.SEQUENCE, 'ExtKeyUsageSyntax')).map((o) => readOid(o));
    const san = extensions.get(OID.subjectAltName);
    if (san) parsed.subjectAltName = generalNames(san.value);
    const nc = extensions.get(OID.nameConstraints);
    if (nc) parsed.nameConstraints = nameConstraints(nc.value);
    const pci = extensions.get(OID.proxyCertInfo) ?? extensions.get(OID.proxyCertInfoDraft);
    if (pci) parsed.proxyCertInfo = proxyCertInfo(pci.value, pci.oid === OID.proxyCertInfoDraft);
    const ski = extensions.get(OID.subjectKeyIdentifier);
    if (ski) parsed.subjectKeyId = expectTag(readOne(ski.value), TAG.OCTET_STRING, 'SubjectKeyIdentifier').value.toString('hex');
    const aki = extensions.get(OID.authorityKeyIdentifier);
    if (aki) {
      const keyId = children(expectTag(readOne(aki.value), TAG.SEQUENCE, 'AuthorityKeyIdentifier')).find((f) => f.tag === contextTag(0, false));
      if (keyId) parsed.authorityKeyId = keyId.value.toString('hex');
    }
    return parsed;
  } catch (err) {
    if (err instanceof DerError || err instanceof RangeError || err instanceof TypeError) {
      throw new CertificateParseError(`malformed certificate: ${err.message}`);
    }
    throw err;
  }
}

/**
 * Can `issuer` have issued `subject`, before any signature check? Names
 * match, and the authorityKeyIdentifier (when both sides carry key
 * identifiers) names the issuer's key (RFC 5280 §4.2.1.1, as OpenSSL's
 * X509_check_issued).
 */
export function mayHaveIssued(subject: ParsedCertificate, issuer: ParsedCertificate): boolean {
  if (subject.issuerKey !== issuer.subjectKey) return false;
  return !subject.authorityKeyId || !issuer.subjectKeyId || subject.authorityKeyId === issuer.subjectKeyId;
}

/** Does `subject`'s signature verify with `issuer`'s public key? */
export function signedBy(subject: ParsedCertificate, issuer: ParsedCertificate): boolean {
  try {
    return subject.x509.verify(issuer.publicKey);
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------- CRLs

/** CRL extensions that a CRL may mark critical and still be a complete, direct CRL for its issuer. */
const KNOWN_CRL_EXTENSIONS: ReadonlySet<string> = new Set([OID.authorityKeyIdentifier, OID.cRLNumber, OID.issuerAltName]);

/**
 * Parses a DER CRL.
 *
 * @throws CertificateParseError when it is not a well-formed CRL.
 */
export function parseCrl(der: Buffer): ParsedCrl {
  try {
    const [tbs, signatureAlgorithm, signatureValue] = children(expectTag(readOne(der), TAG.SEQUENCE, 'a CertificateList'));
    const fields = children(expectTag(tbs, TAG.SEQUENCE, 'a TBSCertList'));
    let i = fields[0]?.tag === TAG.INTEGER ? 1 : 0;
    i += 1; // signature AlgorithmIdentifier
    const issuer = decodeName(fields[i++]!);
    const thisUpdate = readTime(fields[i++], 'thisUpdate');
    let nextUpdate: Date | undefined;
    if (fields[i]?.tag === TAG.UTC_TIME || fields[i]?.tag === TAG.GENERALIZED_TIME) nextUpdate = readTime(fields[i++], 'nextUpdate');
    const revoked = new Set<string>();
    if (fields[i]?.tag === TAG.SEQUENCE) {
      for (const entry of children(fields[i++]!)) revoked.add(integerHex(children(expectTag(entry, TAG.SEQUENCE, 'a revoked certificate'))[0], 'userCertificate'));
    }
    const unsupportedCritical: string[] = [];
    if (fields[i]?.tag === contextTag(0, true)) {
      for (const ext of readExtensions(readOne(fields[i]!.value)).values()) {
        if (ext.critical && !KNOWN_CRL_EXTENSIONS.has(ext.oid)) unsupportedCritical.push(ext.oid);
      }
    }
    return {
      der,
      issuer,
      issuerDn: formatDn(issuer),
      issuerKey: dnMatchKey(issuer),
      thisUpdate,
      nextUpdate,
      revoked,
      unsupportedCritical,
      tbs: tbs!.bytes,
      signatureAlgorithm: expectTag(signatureAlgorithm, TAG.SEQUENCE, 'signatureAlgorithm'),
      signature: readBitString(signatureValue, 'signatureValue').bytes,
    };
  } catch (err) {
    if (err instanceof DerError || err instanceof RangeError || err instanceof TypeError) throw new CertificateParseError(`malformed CRL: ${err.message}`);
    throw err;
  }
}

const HASHES: Record<string, string> = {
  '1.2.840.113549.2.5': 'md5',
  '1.3.14.3.2.26': 'sha1',
  '2.16.840.1.101.3.4.2.1': 'sha256',
  '2.16.840.1.101.3.4.2.2': 'sha384',
  '2.16.840.1.101.3.4.2.3': 'sha512',
  '2.16.840.1.101.3.4.2.4': 'sha224',
};

/** Signature algorithms (RFC 3279, RFC 4055, RFC 5758, RFC 8410) and the digest each signs; null = the algorithm hashes itself (EdDSA). */
const SIGNATURE_HASHES: Record<string, string | null> = {
  '1.2.840.113549.1.1.2': 'md2',
  '1.2.840.113549.1.1.3': 'md4',
  '1.2.840.113549.1.1.4': 'md5',
  '1.2.840.113549.1.1.5': 'sha1',
  '1.2.840.113549.1.1.11': 'sha256',
  '1.2.840.113549.1.1.12': 'sha384',
  '1.2.840.113549.1.1.13': 'sha512',
  '1.2.840.113549.1.1.14': 'sha224',
  '1.2.840.10045.4.1': 'sha1',
  '1.2.840.10045.4.3.1': 'sha224',
  '1.2.840.10045.4.3.2': 'sha256',
  '1.2.840.10045.4.3.3': 'sha384',
  '1.2.840.10045.4.3.4': 'sha512',
  '1.2.840.10040.4.3': 'sha1',
  '2.16.840.1.101.3.4.3.2': 'sha256',
  '1.3.101.112': null,
  '1.3.101.113': null,
};
const RSASSA_PSS = '1.2.840.113549.1.1.10';

/** How a signature is verified: its digest (null for EdDSA) and, for RSASSA-PSS, the salt length. */
export interface SignatureScheme {
  digest: string | null;
  pss?: { saltLength: number } | undefined;
}

/**
 * The scheme of a signatureAlgorithm AlgorithmIdentifier; undefined when
 * fedgate does not know it (such a signature never verifies).
 */
export function signatureScheme(algorithm: Tlv): SignatureScheme | undefined {
  try {
    const [id, params] = children(algorithm);
    const oid = readOid(id);
    if (oid === RSASSA_PSS) {
      // RFC 4055 §3.1 RSASSA-PSS-params; MGF1 is assumed to use the same digest, as every profile requires.
      let digest = 'sha1';
      let saltLength = 20;
      for (const field of params ? children(params) : []) {
        if (field.tag === contextTag(0, true)) digest = HASHES[readOid(children(readOne(field.value))[0])] ?? '';
        else if (field.tag === contextTag(2, true)) saltLength = readSmallInteger(readOne(field.value), 'saltLength');
      }
      return digest ? { digest, pss: { saltLength } } : undefined;
    }
    const digest = SIGNATURE_HASHES[oid];
    return digest === undefined ? undefined : { digest };
  } catch {
    return undefined;
  }
}

/** Does the CRL's signature verify with `key` (RFC 5280 §6.3.3 (g))? */
export function crlSignedBy(crl: ParsedCrl, key: KeyObject): boolean {
  const scheme = signatureScheme(crl.signatureAlgorithm);
  if (!scheme) return false;
  try {
    if (scheme.pss) return verifySignature(scheme.digest, crl.tbs, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: scheme.pss.saltLength }, crl.signature);
    return verifySignature(scheme.digest, crl.tbs, key, crl.signature);
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------- PEM

/** One PEM block (RFC 7468). */
export interface PemBlock {
  label: string;
  der: Buffer;
}

/**
 * The PEM blocks in `text`, in order. Explanatory text between blocks is
 * ignored, as are RFC 1421 headers inside a block.
 *
 * @throws CertificateParseError when a block's body is not base64.
 */
export function pemBlocks(text: string): PemBlock[] {
  const blocks: PemBlock[] = [];
  const re = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g;
  for (let match = re.exec(text); match; match = re.exec(text)) {
    const body = match[2]!.split(/\r?\n/).filter((line) => !line.includes(':')).join('').replace(/\s+/g, '');
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(body) || body.length % 4 !== 0) throw new CertificateParseError(`bad base64 in a PEM ${match[1]} block`);
    blocks.push({ label: match[1]!, der: Buffer.from(body, 'base64') });
  }
  return blocks;
}

/** DER → PEM `CERTIFICATE`. */
export function derToPem(der: Buffer, label = 'CERTIFICATE'): string {
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

const CERTIFICATE_LABELS = new Set(['CERTIFICATE', 'X509 CERTIFICATE']);

/**
 * Certificates (DER), in order, from PEM text (one or several
 * `CERTIFICATE` blocks), DER bytes, or a list of either.
 *
 * @throws CertificateParseError when something in the input is not a certificate encoding.
 */
export function certificatesFromInput(input: string | Buffer | ReadonlyArray<string | Buffer>): Buffer[] {
  if (Array.isArray(input)) return (input as ReadonlyArray<string | Buffer>).flatMap((item) => certificatesFromInput(item));
  const one = input as string | Buffer;
  const text = typeof one === 'string' ? one : one.subarray(0, 64).toString('latin1').includes('-----BEGIN') ? one.toString('latin1') : undefined;
  if (text === undefined) return [one as Buffer];
  const blocks = pemBlocks(text).filter((b) => CERTIFICATE_LABELS.has(b.label));
  if (blocks.length === 0) throw new CertificateParseError('no PEM CERTIFICATE block');
  return blocks.map((b) => b.der);
}
