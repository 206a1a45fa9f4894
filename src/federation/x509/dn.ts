/**
 * Distinguished names: one canonical string form for the DNs fedgate stores
 * (linked X.509 identities) and compares (chain building), whatever form
 * they were written in.
 *
 * The canonical form is OpenSSL's "compat" slash form (`openssl x509 -noout
 * -subject -nameopt compat`), the form grid-mapfiles, VOMS and IGTF use:
 *
 *     /DC=org/DC=example/O=Example, Inc./CN=Alice Émile
 *
 * - RDNs from the most significant (the first in the DER encoding, RFC 5280
 *   §4.1.2.4) to the least; each starts with `/`;
 * - a multi-valued RDN (RFC 4514 §2.2) joins its attributes with `+`, sorted
 *   by attribute name, then value, since a SET has no order;
 * - attribute names are OpenSSL's short names (`C`, `ST`, `L`, `O`, `OU`,
 *   `CN`, `DC`, `UID`, `emailAddress`, `serialNumber`, `SN`, `GN`, `title`...),
 *   whatever alias or case the input used (`E=`, `Email=`, `cn=`,
 *   `OID.2.5.4.3=`, `2.5.4.3=`); unknown types are written as dotted OIDs;
 * - values are Unicode (UTF-8), NFC-normalised, with exactly these escapes:
 *   `\\`, `\/`, `\+`, a leading `\#`, a trailing `\ ` and `\xHH` for
 *   control characters;
 *   a value that is not a string type is `#` and the hex of its DER
 *   (RFC 4514 §2.4). Values are otherwise compared exactly, case and inner
 *   spaces included, as OpenSSL and Globus compare them.
 *
 * Escaping `/` makes the form unambiguous (`/CN=host\/a.example.org` is one
 * RDN); the parser still accepts OpenSSL's unescaped output
 * (`/CN=host/a.example.org`), since a segment that does not start with a known
 * attribute name cannot start an RDN.
 */
import { X509Certificate } from 'node:crypto';
import { children, DerError, expectTag, readOne, readOid, TAG, type Tlv } from './der.ts';
import { FedgateError } from '../../util/errors.ts';

/** One attribute of an RDN. */
export interface DnAttribute {
  /** Dotted OID of the attribute type. */
  type: string;
  /** The value as text, or `#<hex of the DER>` when `ber` is set. */
  value: string;
  /** The value is not a string type and is kept as its encoding. */
  ber?: boolean;
}

/** A name: RDNs, most significant first, each one or more attributes. */
export type DistinguishedName = DnAttribute[][];

/** The input is not a distinguished name in any of the accepted forms. */
export class DnSyntaxError extends FedgateError {
  constructor(message: string) {
    super('invalid_dn', message);
  }
}

/** Attribute types by OID: the canonical (OpenSSL) name first, then accepted aliases. */
const ATTRIBUTES: ReadonlyArray<readonly [oid: string, name: string, ...aliases: string[]]> = [
  ['2.5.4.3', 'CN', 'commonName'],
  ['2.5.4.4', 'SN', 'surname'],
  ['2.5.4.5', 'serialNumber'],
  ['2.5.4.6', 'C', 'countryName'],
  ['2.5.4.7', 'L', 'localityName'],
  ['2.5.4.8', 'ST', 'S', 'stateOrProvinceName'],
  ['2.5.4.9', 'street', 'streetAddress'],
  ['2.5.4.10', 'O', 'organizationName'],
  ['2.5.4.11', 'OU', 'organizationalUnitName'],
  ['2.5.4.12', 'title'],
  ['2.5.4.13', 'description'],
  ['2.5.4.17', 'postalCode'],
  ['2.5.4.41', 'name'],
  ['2.5.4.42', 'GN', 'G', 'givenName'],
  ['2.5.4.43', 'initials'],
  ['2.5.4.44', 'generationQualifier'],
  ['2.5.4.46', 'dnQualifier'],
  ['2.5.4.65', 'pseudonym'],
  ['2.5.4.97', 'organizationIdentifier'],
  ['0.9.2342.19200300.100.1.1', 'UID', 'userId'],
  ['0.9.2342.19200300.100.1.25', 'DC', 'domainComponent'],
  ['1.2.840.113549.1.9.1', 'emailAddress', 'E', 'Email'],
];

const NAME_BY_OID = new Map(ATTRIBUTES.map(([oid, name]) => [oid, name]));
const OID_BY_NAME = new Map(ATTRIBUTES.flatMap(([oid, ...names]) => names.map((n) => [n.toLowerCase(), oid] as const)));

/** The OID of the commonName attribute. */
export const CN_OID = '2.5.4.3';
/** The OID of the PKCS #9 emailAddress attribute. */
export const EMAIL_OID = '1.2.840.113549.1.9.1';

/** Dotted OID for an attribute name, alias or OID (`CN`, `cn`, `OID.2.5.4.3`, `2.5.4.3`); undefined if unknown. */
export function attributeOid(name: string): string | undefined {
  const trimmed = name.trim();
  const dotted = /^(?:oid\.)?(\d+(?:\.\d+)+)$/i.exec(trimmed);
  if (dotted) return dotted[1];
  return OID_BY_NAME.get(trimmed.toLowerCase());
}

/** The canonical name of an attribute type: OpenSSL's short name, or the dotted OID. */
export function attributeName(oid: string): string {
  return NAME_BY_OID.get(oid) ?? oid;
}

// ------------------------------------------------------------ from DER

const utf8 = new TextDecoder('utf-8', { fatal: true });

function decodeUcs(value: Buffer, width: 2 | 4): string {
  if (value.length % width) throw new DerError('bad BMPString/UniversalString length');
  let out = '';
  for (let i = 0; i < value.length; i += width) {
    out += String.fromCodePoint(width === 2 ? value.readUInt16BE(i) : value.readUInt32BE(i));
  }
  return out;
}

/** A string-typed attribute value as text; undefined for other types. */
function directoryString(tlv: Tlv): string | undefined {
  switch (tlv.tag) {
    case TAG.UTF8_STRING:
      return utf8.decode(tlv.value);
    case TAG.PRINTABLE_STRING:
    case TAG.IA5_STRING:
    case TAG.NUMERIC_STRING:
    case TAG.VISIBLE_STRING:
    // TeletexString is read as Latin-1, as OpenSSL does: T.61 proper is not used in practice.
    case TAG.TELETEX_STRING:
      return tlv.value.toString('latin1');
    case TAG.BMP_STRING:
      return decodeUcs(tlv.value, 2);
    case TAG.UNIVERSAL_STRING:
      return decodeUcs(tlv.value, 4);
    default:
      return undefined;
  }
}

function attributeValue(type: string, tlv: Tlv): DnAttribute {
  const text = directoryString(tlv);
  if (text === undefined) return { type, value: `#${tlv.bytes.toString('hex')}`, ber: true };
  return { type, value: text.normalize('NFC') };
}

/**
 * Decodes a DER `Name` (RFC 5280 §4.1.2.4).
 *
 * @throws DerError when it is not one.
 */
export function decodeName(tlv: Tlv): DistinguishedName {
  expectTag(tlv, TAG.SEQUENCE, 'a Name');
  return children(tlv).map((rdn) => {
    const attributes = children(expectTag(rdn, TAG.SET, 'a RelativeDistinguishedName')).map((atv) => {
      const [type, value, ...rest] = children(expectTag(atv, TAG.SEQUENCE, 'an AttributeTypeAndValue'));
      if (!value || rest.length) throw new DerError('bad AttributeTypeAndValue');
      return attributeValue(readOid(type), value);
    });
    if (attributes.length === 0) throw new DerError('empty RelativeDistinguishedName');
    return attributes;
  });
}

// ------------------------------------------------------------ to text

function hexByte(byte: number): string {
  return `\\x${byte.toString(16).toUpperCase().padStart(2, '0')}`;
}

function escapeValue(attribute: DnAttribute): string {
  if (attribute.ber) return attribute.value;
  let out = '';
  for (const ch of attribute.value) {
    const code = ch.codePointAt(0)!;
    if (ch === '\\' || ch === '/' || ch === '+') out += `\\${ch}`;
    else if (code < 0x20 || code === 0x7f) out += hexByte(code);
    else out += ch;
  }
  // A leading # would read as a BER value; a trailing space would be lost to trimming.
  if (out.endsWith(' ')) out = `${out.slice(0, -1)}\\ `;
  return out.startsWith('#') ? `\\${out}` : out;
}

function compareAttributes(a: DnAttribute, b: DnAttribute): number {
  const an = attributeName(a.type);
  const bn = attributeName(b.type);
  if (an !== bn) return an < bn ? -1 : 1;
  return a.value < b.value ? -1 : a.value > b.value ? 1 : 0;
}

/** The canonical string of a parsed name (see the module comment). */
export function formatDn(dn: DistinguishedName): string {
  return dn.map((rdn) => `/${[...rdn].sort(compareAttributes).map((a) => `${attributeName(a.type)}=${escapeValue(a)}`).join('+')}`).join('');
}

/**
 * A looser key for matching an issuer field to a CA's subject while
 * building chains: values case-folded and runs of white space collapsed, as
 * RFC 5280 §7.1 (and OpenSSL's canonical name encoding) compare names.
 * Identities still use the exact {@link formatDn} form.
 */
export function dnMatchKey(dn: DistinguishedName): string {
  return formatDn(dn.map((rdn) => rdn.map((a) => (a.ber ? a : { ...a, value: a.value.trim().replace(/\s+/g, ' ').toLowerCase() }))));
}

// ------------------------------------------------------------ from text

/** Bytes collected while unescaping, decoded as UTF-8 at the end. */
class ValueBuilder {
  readonly #bytes: number[] = [];
  /** Length of the value up to its last character that must be kept (escaped or not a space). */
  keep = 0;
  text(ch: string, significant: boolean): void {
    this.#bytes.push(...Buffer.from(ch, 'utf8'));
    if (significant) this.keep = this.#bytes.length;
  }
  byte(byte: number): void {
    this.#bytes.push(byte);
    this.keep = this.#bytes.length;
  }
  finish(trimEnd: boolean): string {
    const bytes = Buffer.from(trimEnd ? this.#bytes.slice(0, this.keep) : this.#bytes);
    try {
      return utf8.decode(bytes).normalize('NFC');
    } catch {
      throw new DnSyntaxError('an escaped value is not valid UTF-8');
    }
  }
}

const HEX2 = /^[0-9A-Fa-f]{2}$/;

/** A `#hex` BER value (RFC 4514 §2.4): decoded to text when it is a string type. */
function berValue(type: string, hex: string): DnAttribute | undefined {
  if (hex.length === 0 || hex.length % 2) return undefined;
  try {
    return attributeValue(type, readOne(Buffer.from(hex, 'hex')));
  } catch {
    return undefined;
  }
}

function requireType(name: string): string {
  const type = attributeOid(name);
  if (!type) throw new DnSyntaxError(`unknown attribute type ${JSON.stringify(name.trim())}; write it as a dotted OID`);
  return type;
}

/**
 * RFC 4514 (and RFC 2253/1779) string form: RDNs least significant first,
 * separated by `,` (or `;`), attributes of one RDN by `+`, with `\`
 * escapes, `\XX` hex pairs, `"quoted"` values and `#hex` encodings. White
 * space around separators is ignored; unescaped leading and trailing spaces
 * of a value are not part of it. Returns RDNs in the order written.
 */
function parseRfc4514(input: string): DistinguishedName {
  const rdns: DistinguishedName = [];
  let pos = 0;
  const skipSpaces = () => {
    while (input[pos] === ' ') pos += 1;
  };
  const atv = (): DnAttribute => {
    skipSpaces();
    const eq = input.indexOf('=', pos);
    if (eq < 0) throw new DnSyntaxError(`expected type=value at ${JSON.stringify(input.slice(pos, pos + 20))}`);
    const type = requireType(input.slice(pos, eq));
    pos = eq + 1;
    skipSpaces();
    if (input[pos] === '#') {
      const hex = /^#([0-9A-Fa-f]*)/.exec(input.slice(pos))![1]!;
      const value = berValue(type, hex);
      if (!value) throw new DnSyntaxError('a #hex value is not a valid DER encoding');
      pos += 1 + hex.length;
      skipSpaces();
      return value;
    }
    const builder = new ValueBuilder();
    if (input[pos] === '"') {
      pos += 1;
      for (;;) {
        const ch = input[pos];
        if (ch === undefined) throw new DnSyntaxError('unterminated quoted value');
        if (ch === '"') break;
        if (ch === '\\') {
          const next = input.slice(pos + 1, pos + 3);
          if (HEX2.test(next)) { builder.byte(parseInt(next, 16)); pos += 3; continue; }
          const escaped = input.codePointAt(pos + 1);
          if (escaped === undefined) throw new DnSyntaxError('a value ends with \\');
          const char = String.fromCodePoint(escaped);
          builder.text(char, true);
          pos += 1 + char.length;
          continue;
        }
        const cp = input.codePointAt(pos)!;
        const char = String.fromCodePoint(cp);
        builder.text(char, true);
        pos += char.length;
      }
      pos += 1;
      skipSpaces();
      return { type, value: builder.finish(false) };
    }
    for (;;) {
      const ch = input[pos];
      if (ch === undefined || ch === ',' || ch === ';' || ch === '+') break;
      if (ch === '\\') {
        pos += readEscape(input, pos, builder);
        continue;
      }
      const char = String.fromCodePoint(input.codePointAt(pos)!);
      builder.text(char, char !== ' ');
      pos += char.length;
    }
    return { type, value: builder.finish(true) };
  };

  skipSpaces();
  if (pos === input.length) return rdns;
  for (;;) {
    const rdn = [atv()];
    while (input[pos] === '+') {
      pos += 1;
      rdn.push(atv());
    }
    rdns.push(rdn);
    skipSpaces();
    if (pos === input.length) return rdns;
    if (input[pos] !== ',' && input[pos] !== ';') throw new DnSyntaxError(`unexpected ${JSON.stringify(input[pos])}`);
    pos += 1;
  }
}

/**
 * Reads the escape at `text[at]` (a backslash): `\HH` is a byte, `\c` the
 * character c (RFC 4514 §3, and OpenSSL's slash form). Returns its length.
 */
function readEscape(text: string, at: number, builder: ValueBuilder): number {
  const next = text.slice(at + 1, at + 3);
  if (HEX2.test(next)) {
    builder.byte(parseInt(next, 16));
    return 3;
  }
  const escaped = text.codePointAt(at + 1);
  if (escaped === undefined) throw new DnSyntaxError('a value ends with \\');
  const char = String.fromCodePoint(escaped);
  builder.text(char, true);
  return 1 + char.length;
}

/**
 * Unescapes a slash-form value: `\xHH` and `\HH` are bytes; `\\`, `\/`, `\+`, `\#`,
 * `\=` and `\ ` the character escaped. Any other backslash is part of the
 * value: OpenSSL's compat form prints a backslash in a value as it is
 * (`/CN=f\g`), so `\g` is a backslash and a g.
 */
function unescapeSlashValue(raw: string): string {
  const builder = new ValueBuilder();
  for (let i = 0; i < raw.length;) {
    if (raw[i] === '\\') {
      const x = /^[xX]([0-9A-Fa-f]{2})/.exec(raw.slice(i + 1, i + 4));
      if (x) { builder.byte(parseInt(x[1]!, 16)); i += 4; continue; }
      if (HEX2.test(raw.slice(i + 1, i + 3))) { builder.byte(parseInt(raw.slice(i + 1, i + 3), 16)); i += 3; continue; }
      const next = raw[i + 1];
      if (next !== undefined && SLASH_ESCAPABLE.has(next)) { builder.text(next, true); i += 2; continue; }
      builder.text('\\', true);
      i += 1;
      continue;
    }
    const char = String.fromCodePoint(raw.codePointAt(i)!);
    builder.text(char, true);
    i += char.length;
  }
  return builder.finish(false);
}

/** The characters a backslash escapes in the slash form. */
const SLASH_ESCAPABLE = new Set(['\\', '/', '+', '#', '=', ' ']);

const SLASH_TYPE = /^\s*((?:[Oo][Ii][Dd]\.)?\d+(?:\.\d+)+|[A-Za-z][A-Za-z0-9-]*)\s*=/;

/**
 * OpenSSL's slash form (`/C=CH/O=Example/CN=Alice`, most significant
 * first; `+` joins attributes of one RDN). A `/` or `+` that is not followed
 * by a known attribute name and `=` belongs to the value, as in OpenSSL's
 * unescaped `/CN=host/a.example.org`.
 */
function parseSlash(input: string): DistinguishedName {
  // Split at unescaped separators, keeping each segment raw (escapes intact).
  const segments: Array<{ sep: '/' | '+'; raw: string }> = [];
  let current: { sep: '/' | '+'; raw: string } | undefined;
  for (let i = 0; i < input.length; i += 1) {
    const ch = input[i]!;
    if (ch === '\\') {
      if (!current) throw new DnSyntaxError('a slash-form name starts with /');
      current.raw += input.slice(i, i + 2);
      i += 1;
      continue;
    }
    if (ch === '/' || ch === '+') {
      current = { sep: ch, raw: '' };
      segments.push(current);
      continue;
    }
    if (!current) throw new DnSyntaxError('a slash-form name starts with /');
    current.raw += ch;
  }
  const rdns: DistinguishedName = [];
  let last: { type: string; raw: string } | undefined;
  const pending: Array<Array<{ type: string; raw: string }>> = [];
  for (const segment of segments) {
    const match = SLASH_TYPE.exec(segment.raw);
    if (!match) {
      if (!last) {
        if (segment.raw.trim() === '' && segments.length === 1) continue; // "/" alone: the empty name
        throw new DnSyntaxError(`expected type=value at ${JSON.stringify(segment.raw.slice(0, 20))}`);
      }
      last.raw += segment.sep + segment.raw;
      continue;
    }
    // "Name=" with an unknown name is more likely a typo than a value containing "/Name=".
    const type = requireType(match[1]!);
    last = { type, raw: segment.raw.slice(match[0].length) };
    if (segment.sep === '+' && pending.length) pending.at(-1)!.push(last);
    else pending.push([last]);
  }
  for (const rdn of pending) {
    rdns.push(rdn.map(({ type, raw }) => {
      if (/^#[0-9A-Fa-f]+$/.test(raw)) {
        const ber = berValue(type, raw.slice(1));
        if (ber) return ber;
      }
      return { type, value: unescapeSlashValue(raw) };
    }));
  }
  return rdns;
}

/** Trims white space around the input, but not an escaped trailing space (`CN=a\\ `). */
function trimOuter(input: string): string {
  let end = input.length;
  while (end > 0 && /\s/.test(input[end - 1]!)) {
    let slashes = 0;
    while (input[end - 2 - slashes] === '\\') slashes += 1;
    if (slashes % 2 === 1) break;
    end -= 1;
  }
  return input.slice(0, end).trimStart();
}

/**
 * Parses a distinguished name written in any of the forms fedgate meets:
 *
 * - OpenSSL's slash form, `/C=CH/O=Example/CN=Alice` (most significant first);
 * - RFC 4514 / RFC 2253 form, `CN=Alice,O=Example,C=CH` (least significant
 *   first; what `openssl x509 -nameopt RFC2253` and most LDAP tools print);
 * - node:crypto's `X509Certificate#subject`, one RDN per line, most
 *   significant first, each line in RFC 4514 syntax.
 *
 * - OpenSSL 3's default output (`-nameopt oneline`, `DC = org, DC = example,
 *   CN = Alice`): RFC 2253 syntax with ` = ` between type and value, most
 *   significant first. The spaces around `=` tell it from RFC 2253 (OpenSSL
 *   never writes them there), so it is read in its own order; RFC 1779 text
 *   with spaces around `=` is read as such only when it separates RDNs
 *   with `;`.
 *
 * A leading `subject=` or `issuer=` (as `openssl x509 -subject` prints) is
 * ignored.
 *
 * @throws DnSyntaxError when the input is none of these.
 */
export function parseDn(input: string): DistinguishedName {
  const text = trimOuter(input).replace(/^(?:subject|issuer)\s*=\s*/i, '');
  if (text.startsWith('/')) return parseSlash(text);
  if (text.includes('\n')) {
    return text.split(/\r?\n/).filter((line) => line.trim() !== '').map((line) => {
      const rdns = parseRfc4514(line);
      if (rdns.length !== 1) throw new DnSyntaxError('each line of a multi-line name holds one RDN');
      return rdns[0]!;
    });
  }
  // OpenSSL's oneline form: "DC = org, DC = example" (type, space, =, space).
  // RFC 1779 also allows spaces around "=", but OpenSSL never separates RDNs with ";".
  if (ONELINE.test(text) && !text.replace(/"(?:[^"\\]|\\.)*"/g, '').includes(';')) return parseRfc4514(text);
  return parseRfc4514(text).reverse();
}

const ONELINE = /^(?:[A-Za-z][A-Za-z0-9-]*|(?:[Oo][Ii][Dd]\.)?\d+(?:\.\d+)+) = /;

/**
 * The canonical form (see the module comment) of a DN written in any
 * accepted form (see {@link parseDn}): `CN=Alice,O=Example,C=CH` and
 * `/C=CH/O=Example/CN=Alice` both give `/C=CH/O=Example/CN=Alice`.
 *
 * @throws DnSyntaxError when the input is not a DN.
 */
export function normaliseDn(input: string): string {
  return formatDn(parseDn(input));
}

/** Does `value` parse as a DN? */
export function isDn(input: string): boolean {
  try {
    parseDn(input);
    return true;
  } catch {
    return false;
  }
}

/** The subject and issuer names of a DER certificate (RFC 5280 §4.1.2.4, §4.1.2.6). */
export function certificateNames(der: Buffer): { subject: DistinguishedName; issuer: DistinguishedName } {
  const certificate = readOne(der);
  const [tbs] = children(expectTag(certificate, TAG.SEQUENCE, 'a Certificate'));
  const fields = children(expectTag(tbs, TAG.SEQUENCE, 'a TBSCertificate'));
  const offset = fields[0]?.tag === 0xa0 ? 1 : 0;
  const issuer = fields[offset + 2];
  const subject = fields[offset + 4];
  if (!issuer || !subject) throw new DerError('truncated TBSCertificate');
  return { subject: decodeName(subject), issuer: decodeName(issuer) };
}

function toDer(certificate: Buffer | string | X509Certificate): Buffer {
  if (certificate instanceof X509Certificate) return certificate.raw;
  if (typeof certificate === 'string') return new X509Certificate(certificate).raw;
  return certificate;
}

/**
 * The canonical subject DN of a certificate (DER, PEM or node:crypto
 * X509Certificate).
 *
 * @throws Error when the certificate cannot be parsed.
 */
export function certificateSubjectDn(certificate: Buffer | string | X509Certificate): string {
  return formatDn(certificateNames(toDer(certificate)).subject);
}

/** The canonical issuer DN of a certificate; see {@link certificateSubjectDn}. */
export function certificateIssuerDn(certificate: Buffer | string | X509Certificate): string {
  return formatDn(certificateNames(toDer(certificate)).issuer);
}
