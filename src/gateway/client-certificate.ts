/**
 * The client certificate of a request, for certificate-bound access tokens
 * (RFC 8705 §3) and, later, X.509 login.
 *
 * The certificate comes from the TLS connection when fedgate terminates TLS
 * itself, or from a header set by a TLS-terminating proxy — but a header is
 * only believed when the connection comes from one of
 * `config.trustedProxies`: from anywhere else it is the client's own claim
 * and is ignored (with a warning, since it hints at a misconfigured proxy or
 * an attempt to impersonate one).
 */
import { createHash, X509Certificate } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { BlockList } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { parseAddressRange } from '../config/index.ts';
import type { Logger } from '../observability/logger.ts';
import { InvalidToken } from './errors.ts';

/** Where a certificate came from. */
export type CertificateSource = 'tls' | 'header';

/** A client certificate, as DER. */
export interface ClientCertificate {
  der: Buffer;
  source: CertificateSource;
  /** The header it was read from, for `header` certificates. */
  header?: string;
}

/**
 * One way a trusted proxy passes the client certificate: a header name
 * (lower case) and a parser from its value to DER (undefined when the value
 * is malformed). X.509 login adds the nginx (`ssl-client-cert`, URL-encoded
 * PEM) and Envoy (`x-forwarded-client-cert`) forms.
 */
export interface CertificateHeaderForm {
  name: string;
  parse(value: string): Buffer | undefined;
}

/**
 * RFC 9440 §2.2: `Client-Cert` carries the DER certificate as a Structured
 * Field Byte Sequence (RFC 8941 §3.3.5), `:<base64>:`.
 */
export function parseClientCertHeader(value: string): Buffer | undefined {
  const match = /^\s*:([A-Za-z0-9+/]+={0,2}):\s*$/.exec(value);
  if (!match || match[1]!.length % 4 !== 0) return undefined;
  return Buffer.from(match[1]!, 'base64');
}

/** The RFC 9440 `Client-Cert` form. */
export const RFC9440_CLIENT_CERT: CertificateHeaderForm = { name: 'client-cert', parse: parseClientCertHeader };

/** RFC 8705 §3.1: the `x5t#S256` confirmation value, base64url(SHA-256(DER)). */
export function certificateThumbprint(der: Buffer): string {
  return createHash('sha256').update(der).digest('base64url');
}

/** `::ffff:10.0.0.1` (an IPv4 peer on a dual-stack socket) as `10.0.0.1`. */
export function normaliseAddress(address: string): string {
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

export interface ClientCertificateOptions {
  /** IPs or CIDR ranges of proxies whose certificate headers are believed (`config.trustedProxies`). */
  trustedProxies: readonly string[];
  logger: Logger;
  /** Header forms to read, in order (default: RFC 9440 `Client-Cert` only). */
  headerForms?: readonly CertificateHeaderForm[];
}

/** Reads the client certificate of a request; see {@link createClientCertificateReader}. */
export type ClientCertificateReader = (req: IncomingMessage) => ClientCertificate | undefined;

function isDerCertificate(der: Buffer): boolean {
  try {
    new X509Certificate(der);
    return true;
  } catch {
    return false;
  }
}

/**
 * Builds the reader of client certificates: the peer certificate of a TLS
 * socket first; else, when the direct peer is a trusted proxy, the first
 * configured header form that is present and parses as a certificate.
 * Headers from other peers are ignored and logged at warn (without their value).
 */
export function createClientCertificateReader(options: ClientCertificateOptions): ClientCertificateReader {
  const trusted = new BlockList();
  for (const entry of options.trustedProxies) {
    const range = parseAddressRange(entry);
    if (!range) throw new Error(`trustedProxies: ${entry} is not an IP address or CIDR range`);
    trusted.addSubnet(range.address, range.prefix, range.family);
  }
  const forms = options.headerForms ?? [RFC9440_CLIENT_CERT];
  const logger = options.logger;

  const isTrusted = (address: string | undefined): boolean => {
    if (!address) return false;
    const normalised = normaliseAddress(address);
    return trusted.check(normalised, normalised.includes(':') ? 'ipv6' : 'ipv4');
  };

  return (req) => {
    const socket = req.socket as Partial<TLSSocket>;
    if (socket.encrypted && typeof socket.getPeerCertificate === 'function') {
      const raw = socket.getPeerCertificate(false)?.raw;
      if (raw?.length) return { der: raw, source: 'tls' };
    }
    const present = forms.filter((form) => req.headers[form.name] !== undefined);
    if (present.length === 0) return undefined;
    if (!isTrusted(req.socket.remoteAddress)) {
      logger.warn({ peer: req.socket.remoteAddress, headers: present.map((f) => f.name) }, 'client certificate header from an address that is not a trusted proxy: ignored');
      return undefined;
    }
    for (const form of present) {
      const value = req.headers[form.name];
      // Several values mean several certificates or a spliced header: neither identifies one client.
      if (typeof value !== 'string' || value.includes(',')) continue;
      const der = form.parse(value);
      if (der && isDerCertificate(der)) return { der, source: 'header', header: form.name };
    }
    return undefined;
  };
}

/**
 * RFC 8705 §3: a certificate-bound token is only accepted with the
 * certificate whose SHA-256 thumbprint it carries in `cnf.x5t#S256`.
 *
 * @throws InvalidToken when no certificate was presented or it is another one.
 */
export function checkCertificateBinding(certificate: ClientCertificate | undefined, expected: string): void {
  if (!certificate) throw new InvalidToken('the access token is bound to a client certificate, and none was presented');
  if (certificateThumbprint(certificate.der) !== expected) {
    throw new InvalidToken('the access token is bound to another client certificate');
  }
}
