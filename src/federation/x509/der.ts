/**
 * A small DER (ITU-T X.690) reader and writer: just enough to take
 * certificates, CRLs and names apart (RFC 5280 §4.1, §5.1) and to build
 * the listener's self-signed certificate.
 *
 * Why not a library: @peculiar/x509 needs a global `Reflect.getMetadata`
 * polyfill (tsyringe) at import time, which fedgate does not install, and
 * node:crypto's X509Certificate exposes neither extensions nor CRLs. What is
 * needed here is a few dozen lines of TLV walking.
 */
import { FedgateError } from '../../util/errors.ts';

/** The value could not be decoded as DER. */
export class DerError extends FedgateError {
  constructor(message: string) {
    super('malformed', message);
  }
}

/** Universal tags used here. */
export const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  UTF8_STRING: 0x0c,
  NUMERIC_STRING: 0x12,
  PRINTABLE_STRING: 0x13,
  TELETEX_STRING: 0x14,
  IA5_STRING: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  VISIBLE_STRING: 0x1a,
  UNIVERSAL_STRING: 0x1c,
  BMP_STRING: 0x1e,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

/** One decoded tag-length-value. */
export interface Tlv {
  /** The identifier octet (class, constructed bit and tag number together). */
  tag: number;
  /** The whole encoding, header included. */
  bytes: Buffer;
  /** The contents octets. */
  value: Buffer;
}

/** Context-specific tag octet for `[n]`, constructed or primitive. */
export function contextTag(n: number, constructed: boolean): number {
  return 0x80 | (constructed ? 0x20 : 0) | n;
}

/**
 * Reads the TLV starting at `offset`.
 *
 * @throws DerError on truncated input, indefinite or non-minimal lengths and
 *   high tag numbers (none of which DER certificates use).
 */
export function readTlv(buf: Buffer, offset = 0): Tlv {
  if (offset + 2 > buf.length) throw new DerError('truncated DER');
  const tag = buf[offset]!;
  if ((tag & 0x1f) === 0x1f) throw new DerError('high tag numbers are not supported');
  let length = buf[offset + 1]!;
  let header = 2;
  if (length & 0x80) {
    const count = length & 0x7f;
    if (count === 0) throw new DerError('indefinite length is not DER');
    if (count > 4) throw new DerError('DER length too large');
    if (offset + 2 + count > buf.length) throw new DerError('truncated DER length');
    length = 0;
    for (let i = 0; i < count; i += 1) length = length * 256 + buf[offset + 2 + i]!;
    if (length < 0x80 || (count > 1 && buf[offset + 2] === 0)) throw new DerError('non-minimal DER length');
    header += count;
  }
  const end = offset + header + length;
  if (end > buf.length) throw new DerError('truncated DER value');
  return { tag, bytes: buf.subarray(offset, end), value: buf.subarray(offset + header, end) };
}

/** Reads exactly one TLV filling `buf`. */
export function readOne(buf: Buffer): Tlv {
  const tlv = readTlv(buf, 0);
  if (tlv.bytes.length !== buf.length) throw new DerError('trailing data after DER value');
  return tlv;
}

/** The TLVs inside a constructed value, in order. */
export function children(tlv: Tlv): Tlv[] {
  if (!(tlv.tag & 0x20)) throw new DerError('expected a constructed value');
  const out: Tlv[] = [];
  let offset = 0;
  while (offset < tlv.value.length) {
    const child = readTlv(tlv.value, offset);
    out.push(child);
    offset += child.bytes.length;
  }
  return out;
}

/** Asserts the tag of a TLV. */
export function expectTag(tlv: Tlv | undefined, tag: number, what: string): Tlv {
  if (!tlv || tlv.tag !== tag) throw new DerError(`expected ${what}`);
  return tlv;
}

/** Dotted form of an OBJECT IDENTIFIER's contents. */
export function decodeOid(value: Buffer): string {
  if (value.length === 0) throw new DerError('empty OID');
  const arcs: number[] = [];
  let n = 0;
  for (let i = 0; i < value.length; i += 1) {
    const byte = value[i]!;
    if (n === 0 && byte === 0x80) throw new DerError('non-minimal OID arc');
    n = n * 128 + (byte & 0x7f);
    if (n > Number.MAX_SAFE_INTEGER / 128) throw new DerError('OID arc too large');
    if (!(byte & 0x80)) {
      if (arcs.length === 0) arcs.push(n < 80 ? Math.floor(n / 40) : 2, n < 80 ? n % 40 : n - 80);
      else arcs.push(n);
      n = 0;
    } else if (i === value.length - 1) {
      throw new DerError('truncated OID');
    }
  }
  return arcs.join('.');
}

/** OBJECT IDENTIFIER TLV → dotted string. */
export function readOid(tlv: Tlv | undefined, what = 'an OBJECT IDENTIFIER'): string {
  return decodeOid(expectTag(tlv, TAG.OID, what).value);
}

/** A non-negative INTEGER as a number (small values: path lengths, versions). */
export function readSmallInteger(tlv: Tlv | undefined, what = 'an INTEGER'): number {
  const value = expectTag(tlv, TAG.INTEGER, what).value;
  if (value.length === 0 || value.length > 6 || value[0]! & 0x80) throw new DerError(`${what} out of range`);
  return value.readUIntBE(0, value.length);
}

/**
 * An INTEGER (a serial number) as lower-case hex without leading zeros, the
 * one form both certificates and CRL entries are compared in.
 */
export function integerHex(tlv: Tlv | undefined, what = 'an INTEGER'): string {
  const value = expectTag(tlv, TAG.INTEGER, what).value;
  if (value.length === 0) throw new DerError(`empty ${what}`);
  const hex = value.toString('hex').replace(/^0+/, '');
  return hex === '' ? '0' : hex;
}

/** BOOLEAN TLV → boolean. */
export function readBoolean(tlv: Tlv | undefined): boolean {
  const value = expectTag(tlv, TAG.BOOLEAN, 'a BOOLEAN').value;
  if (value.length !== 1) throw new DerError('bad BOOLEAN');
  return value[0] !== 0;
}

/** A BIT STRING's unused-bits count and bytes. */
export function readBitString(tlv: Tlv | undefined, what = 'a BIT STRING'): { unused: number; bytes: Buffer } {
  const value = expectTag(tlv, TAG.BIT_STRING, what).value;
  if (value.length === 0 || value[0]! > 7) throw new DerError(`bad ${what}`);
  return { unused: value[0]!, bytes: value.subarray(1) };
}

/**
 * UTCTime or GeneralizedTime (RFC 5280 §4.1.2.5: UTCTime years 50–99 are
 * 19xx; both in Zulu time).
 */
export function readTime(tlv: Tlv | undefined, what = 'a time'): Date {
  if (!tlv || (tlv.tag !== TAG.UTC_TIME && tlv.tag !== TAG.GENERALIZED_TIME)) throw new DerError(`expected ${what}`);
  const text = tlv.value.toString('latin1');
  const match = tlv.tag === TAG.UTC_TIME
    ? /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})?Z$/.exec(text)
    : /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})?(?:\.\d+)?Z$/.exec(text);
  if (!match) throw new DerError(`bad ${what}`);
  let year = Number(match[1]);
  if (tlv.tag === TAG.UTC_TIME) year += year >= 50 ? 1900 : 2000;
  const date = new Date(Date.UTC(year, Number(match[2]) - 1, Number(match[3]), Number(match[4]), Number(match[5]), Number(match[6] ?? 0)));
  if (Number.isNaN(date.getTime())) throw new DerError(`bad ${what}`);
  return date;
}

// ---------------------------------------------------------------- writing

function encodeLength(length: number): Buffer {
  if (length < 0x80) return Buffer.from([length]);
  const bytes: number[] = [];
  for (let n = length; n > 0; n = Math.floor(n / 256)) bytes.unshift(n & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

/** One TLV from a tag and contents. */
export function tlv(tag: number, value: Buffer): Buffer {
  return Buffer.concat([Buffer.from([tag]), encodeLength(value.length), value]);
}

/** A SEQUENCE of already encoded values. */
export function sequence(...items: Buffer[]): Buffer {
  return tlv(TAG.SEQUENCE, Buffer.concat(items));
}

/** A SET of already encoded values (callers pass one item or sorted items). */
export function set(...items: Buffer[]): Buffer {
  return tlv(TAG.SET, Buffer.concat(items));
}

/** Dotted OID → OBJECT IDENTIFIER TLV. */
export function oid(dotted: string): Buffer {
  const arcs = dotted.split('.').map(Number);
  if (arcs.length < 2 || arcs.some((a) => !Number.isSafeInteger(a) || a < 0)) throw new DerError(`bad OID ${dotted}`);
  const bytes: number[] = [];
  const push = (n: number) => {
    const chunk = [n & 0x7f];
    for (let rest = Math.floor(n / 128); rest > 0; rest = Math.floor(rest / 128)) chunk.unshift((rest & 0x7f) | 0x80);
    bytes.push(...chunk);
  };
  push(arcs[0]! * 40 + arcs[1]!);
  for (const arc of arcs.slice(2)) push(arc);
  return tlv(TAG.OID, Buffer.from(bytes));
}

/** A non-negative INTEGER from big-endian magnitude bytes. */
export function integer(magnitude: Buffer): Buffer {
  let bytes = magnitude;
  while (bytes.length > 1 && bytes[0] === 0 && !(bytes[1]! & 0x80)) bytes = bytes.subarray(1);
  if (bytes.length === 0) bytes = Buffer.from([0]);
  if (bytes[0]! & 0x80) bytes = Buffer.concat([Buffer.from([0]), bytes]);
  return tlv(TAG.INTEGER, bytes);
}

/** UTF8String TLV. */
export function utf8String(text: string): Buffer {
  return tlv(TAG.UTF8_STRING, Buffer.from(text, 'utf8'));
}

/** GeneralizedTime TLV (RFC 5280 §4.1.2.5.2: seconds, Zulu, no fraction). */
export function generalizedTime(date: Date): Buffer {
  const text = date.toISOString().replace(/[-:T]/g, '').replace(/\.\d+Z$/, 'Z');
  return tlv(TAG.GENERALIZED_TIME, Buffer.from(text, 'latin1'));
}

/** BIT STRING TLV with no unused bits. */
export function bitString(bytes: Buffer): Buffer {
  return tlv(TAG.BIT_STRING, Buffer.concat([Buffer.from([0]), bytes]));
}

/** OCTET STRING TLV. */
export function octetString(bytes: Buffer): Buffer {
  return tlv(TAG.OCTET_STRING, bytes);
}
