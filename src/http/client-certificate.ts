/**
 * The client certificate of a request, for certificate-bound access tokens
 * (RFC 8705 §3, src/gateway) and X.509 login (src/federation/x509): one
 * extraction for both, below both (neither bridge nor gateway imports the other).
 *
 * The certificate comes from the TLS connection when fedgate terminates TLS
 * itself, or from a header set by a TLS-terminating proxy — but a header is
 * only believed when the connection comes from one of
 * `config.trustedProxies`: from anywhere else it is the client's own claim
 * and is ignored (with a warning, since it hints at a misconfigured proxy or
 * an attempt to impersonate one).
 */
import { createHash, X509Certificate } from 'node:crypto';
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { addressMatcher } from './client-address.ts';
import type { Logger } from '../observability/logger.ts';

/** Where a certificate came from. */
export type CertificateSource = 'tls' | 'header';

/** A client certificate, as DER. */
export interface ClientCertificate {
  der: Buffer;
  source: CertificateSource;
  /** The header it was read from, for `header` certificates. */
  header?: string;
  /**
   * The other certificates the client sent (DER, leaf excluded): CA
   * intermediates, or the issuers of a proxy certificate. Only read when the
   * reader was built `withChain`; empty when there were none.
   */
  chain?: Buffer[];
}

/**
 * One way a trusted proxy passes the client certificate: a header name
 * (lower case) and a parser from its value to DER (undefined when the value
 * is malformed). See {@link RFC9440_CLIENT_CERT}, {@link nginxForm},
 * {@link envoyForm} and {@link certificateHeaderForms}.
 */
export interface CertificateHeaderForm {
  name: string;
  parse(value: string): Buffer | undefined;
  /**
   * The certificates sent along with the leaf (DER, leaf excluded), read from
   * this header's value or a companion header; undefined when malformed.
   * Absent: the form carries no chain.
   */
  chain?(value: string, headers: IncomingHttpHeaders): Buffer[] | undefined;
  /**
   * The value is a comma-separated list by design (Envoy's XFCC). For other
   * forms a comma means the header came twice, which identifies no one client.
   */
  list?: boolean;
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

/** The RFC 9440 `Client-Cert` form (the certificate only; see {@link rfc9440Form} for the chain too). */
export const RFC9440_CLIENT_CERT: CertificateHeaderForm = { name: 'client-cert', parse: parseClientCertHeader };

/**
 * RFC 9440 §2.3: `Client-Cert-Chain` is a Structured Field List (RFC 8941
 * §3.1) of Byte Sequences, the DER certificates after the leaf. Repeated
 * header lines arrive joined with commas, which is the same list.
 */
export function parseClientCertChainHeader(value: string): Buffer[] | undefined {
  if (value.trim() === '') return [];
  const out: Buffer[] = [];
  for (const member of value.split(',')) {
    const der = parseClientCertHeader(member);
    if (!der) return undefined;
    out.push(der);
  }
  return out;
}

/** RFC 9440 `Client-Cert` with its `Client-Cert-Chain` companion, under configurable names. */
export function rfc9440Form(name = 'client-cert', chainName: string | false = 'client-cert-chain'): CertificateHeaderForm {
  return {
    name,
    parse: parseClientCertHeader,
    chain: (_value, headers) => {
      const chain = chainName ? headers[chainName] : undefined;
      if (chain === undefined) return [];
      return parseClientCertChainHeader(Array.isArray(chain) ? chain.join(',') : chain);
    },
  };
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/g;

/** The certificates of PEM text (DER, in order); undefined when a block is not base64 or there is none. */
export function pemCertificates(text: string): Buffer[] | undefined {
  const out: Buffer[] = [];
  for (const match of text.matchAll(PEM_CERTIFICATE)) {
    const body = match[1]!.replace(/\s+/g, '');
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(body) || body.length % 4 !== 0) return undefined;
    out.push(Buffer.from(body, 'base64'));
  }
  return out.length ? out : undefined;
}

function urlDecode(value: string): string | undefined {
  try {
    return decodeURIComponent(value);
  } catch {
    return undefined;
  }
}

/**
 * nginx's `$ssl_client_escaped_cert`: the PEM certificate, URL-encoded.
 * Also reads the deprecated `$ssl_client_cert` (raw PEM with folded lines)
 * and the bare base64 DER some proxies (Traefik) send.
 */
export function parseEscapedPemHeader(value: string): Buffer | undefined {
  const text = urlDecode(value.trim());
  if (text === undefined || text === '') return undefined;
  if (text.includes('-----BEGIN')) {
    const certs = pemCertificates(text);
    return certs?.length === 1 ? certs[0] : undefined;
  }
  const body = text.replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(body) || body.length % 4 !== 0) return undefined;
  return Buffer.from(body, 'base64');
}

/** The nginx form (`proxy_set_header X-SSL-Client-Cert $ssl_client_escaped_cert;`). */
export function nginxForm(name = 'x-ssl-client-cert'): CertificateHeaderForm {
  return { name, parse: parseEscapedPemHeader };
}

/** One element of Envoy's `x-forwarded-client-cert`: keys (lower case) and their values, unquoted. */
export type XfccElement = Map<string, string[]>;

/**
 * Parses Envoy's `x-forwarded-client-cert`: elements separated by `,`,
 * each `key=value` pairs separated by `;`; a value may be a double-quoted
 * string, inside which `\` escapes the next character and `,`, `;`, `=` are
 * plain text. Undefined when the value does not follow this grammar.
 */
export function parseForwardedClientCert(value: string): XfccElement[] | undefined {
  const elements: XfccElement[] = [];
  let element: XfccElement = new Map();
  let i = 0;
  const n = value.length;
  const skipSpace = () => {
    while (i < n && (value[i] === ' ' || value[i] === '\t')) i += 1;
  };
  for (;;) {
    skipSpace();
    const keyStart = i;
    while (i < n && /[A-Za-z0-9_-]/.test(value[i]!)) i += 1;
    const key = value.slice(keyStart, i).toLowerCase();
    skipSpace();
    if (!key || value[i] !== '=') return undefined;
    i += 1;
    skipSpace();
    let text = '';
    if (value[i] === '"') {
      i += 1;
      for (;;) {
        if (i >= n) return undefined;
        const ch = value[i]!;
        if (ch === '"') { i += 1; break; }
        if (ch === '\\') {
          if (i + 1 >= n) return undefined;
          text += value[i + 1];
          i += 2;
          continue;
        }
        text += ch;
        i += 1;
      }
    } else {
      const start = i;
      while (i < n && value[i] !== ';' && value[i] !== ',') i += 1;
      text = value.slice(start, i).trim();
      if (text.includes('"')) return undefined;
    }
    element.set(key, [...(element.get(key) ?? []), text]);
    skipSpace();
    if (i >= n) {
      elements.push(element);
      return elements;
    }
    if (value[i] === ',') {
      elements.push(element);
      element = new Map();
    } else if (value[i] !== ';') {
      return undefined;
    }
    i += 1;
  }
}

/**
 * The element Envoy's XFCC describes our client in: the last one. Each proxy
 * appends an element for its own client (forward_client_cert_details
 * APPEND_FORWARD), so the last is the one the trusted proxy in front of
 * fedgate added; earlier ones came from further away, possibly from the
 * client itself.
 */
function lastXfccCertificates(value: string): Buffer[] | undefined {
  const element = parseForwardedClientCert(value)?.at(-1);
  if (!element) return undefined;
  const cert = element.get('cert');
  const chain = element.get('chain');
  if ((cert && cert.length !== 1) || (chain && chain.length !== 1)) return undefined;
  let leaf: Buffer | undefined;
  if (cert) {
    const decoded = urlDecode(cert[0]!);
    const certs = decoded === undefined ? undefined : pemCertificates(decoded);
    if (certs?.length !== 1) return undefined;
    leaf = certs[0]!;
  }
  let rest: Buffer[] = [];
  if (chain) {
    const decoded = urlDecode(chain[0]!);
    const certs = decoded === undefined ? undefined : pemCertificates(decoded);
    if (!certs) return undefined;
    rest = certs;
  }
  // Envoy's Chain holds the whole chain, leaf included.
  leaf ??= rest[0];
  if (!leaf) return undefined;
  return [leaf, ...rest.filter((c) => !c.equals(leaf))];
}

/** Envoy's form (`forward_client_cert_details` with `set_current_client_cert_details: { cert: true, chain: true }`). */
export function envoyForm(name = 'x-forwarded-client-cert'): CertificateHeaderForm {
  return {
    name,
    list: true,
    parse: (value) => lastXfccCertificates(value)?.[0],
    chain: (value) => lastXfccCertificates(value)?.slice(1),
  };
}

/** Header names of the forms a trusted proxy may use; `false` turns a form off. */
export interface CertificateHeaderNames {
  /** RFC 9440 `Client-Cert`. */
  clientCert?: string | false | undefined;
  /** RFC 9440 `Client-Cert-Chain`. */
  clientCertChain?: string | false | undefined;
  /** Envoy `x-forwarded-client-cert`. */
  envoy?: string | false | undefined;
  /** nginx `$ssl_client_escaped_cert`. */
  nginx?: string | false | undefined;
}

/**
 * The header forms for configured names (`config.x509.headerNames`), in the
 * order they are tried: RFC 9440, Envoy, nginx.
 */
export function certificateHeaderForms(names: CertificateHeaderNames): CertificateHeaderForm[] {
  const forms: CertificateHeaderForm[] = [];
  if (names.clientCert) forms.push(rfc9440Form(names.clientCert.toLowerCase(), names.clientCertChain ? names.clientCertChain.toLowerCase() : false));
  if (names.envoy) forms.push(envoyForm(names.envoy.toLowerCase()));
  if (names.nginx) forms.push(nginxForm(names.nginx.toLowerCase()));
  return forms;
}

/** RFC 8705 §3.1: the `x5t#S256` confirmation value, base64url(SHA-256(DER)). */
export function certificateThumbprint(der: Buffer): string {
  return createHash('sha256').update(der).digest('base64url');
}


export interface ClientCertificateOptions {
  /** IPs or CIDR ranges of proxies whose certificate headers are believed (`config.trustedProxies`). */
  trustedProxies: readonly string[];
  logger: Logger;
  /** Header forms to read, in order (default: RFC 9440 `Client-Cert` only). */
  headerForms?: readonly CertificateHeaderForm[];
  /** Also read the certificates sent along with the leaf (TLS peer chain, `Client-Cert-Chain`, XFCC `Chain`). */
  withChain?: boolean;
}

/** Reads the client certificate of a request; see {@link createClientCertificateReader}. */
export type ClientCertificateReader = (req: IncomingMessage) => ClientCertificate | undefined;

/** What {@link createClientCertificateInspector} found. */
export type CertificateLookup =
  | { status: 'found'; certificate: ClientCertificate }
  /** No certificate; `ignored` names the certificate headers an untrusted peer sent. */
  | { status: 'none'; ignored?: string[] }
  /** A trusted proxy sent certificate headers, and none of them could be read. */
  | { status: 'malformed'; header: string; message: string };

/** Inspects the client certificate of a request; see {@link createClientCertificateInspector}. */
export type ClientCertificateInspector = (req: IncomingMessage) => CertificateLookup;

function isDerCertificate(der: Buffer): boolean {
  try {
    new X509Certificate(der);
    return true;
  } catch {
    return false;
  }
}

const peerChains = new WeakMap<TLSSocket, Buffer[]>();

/**
 * The certificates a TLS peer sent after its leaf (DER, in the order sent),
 * read once per connection and remembered.
 *
 * node 24 offers two views, neither complete alone: `getPeerCertificate(true)`
 * follows issuer links it checks with X509_check_issued, which drops legacy
 * Globus proxies (an end-entity "issuer" without keyCertSign), while
 * `getPeerX509Certificate()` walks the raw chain but consumes it (a second
 * call, or a later `getPeerCertificate(true)`, sees only the leaf). So the
 * first is read, then the second, and their union kept for the connection's
 * later requests. The mTLS listener calls this at `secureConnection`,
 * before anything else can consume the chain.
 */
export function peerCertificateChain(socket: TLSSocket): Buffer[] {
  const cached = peerChains.get(socket);
  if (cached) return cached;
  const leaf = socket.getPeerCertificate(true);
  if (!leaf?.raw?.length) return [];
  const linked: Buffer[] = [];
  const seen = new Set<object>([leaf]);
  for (let next = leaf.issuerCertificate; next && !seen.has(next); next = next.issuerCertificate) {
    seen.add(next);
    if (next.raw?.length) linked.push(next.raw);
  }
  const sent: Buffer[] = [];
  const seenSent = new Set<string>();
  for (let cert = socket.getPeerX509Certificate()?.issuerCertificate; cert && !seenSent.has(cert.fingerprint256); cert = cert.issuerCertificate) {
    seenSent.add(cert.fingerprint256);
    sent.push(cert.raw);
  }
  // The order sent first, then anything only the linked view had; never the leaf, never twice.
  const chain: Buffer[] = [];
  for (const raw of [...sent, ...linked]) {
    if (!raw.equals(leaf.raw) && !chain.some((c) => c.equals(raw))) chain.push(raw);
  }
  peerChains.set(socket, chain);
  return chain;
}

/**
 * Builds the inspector of client certificates: the peer certificate of a
 * TLS socket first (and only: a request over TLS that fedgate terminates
 * never takes a certificate header); else, when the direct peer is a trusted proxy, the first
 * configured header form that is present and parses as a certificate (and,
 * `withChain`, whose chain parses too). Present headers of which none can
 * be read make the request `malformed`. Headers from other peers are
 * ignored and logged at warn (without their value).
 *
 * @throws Error when `trustedProxies` holds an entry that is not an address or range.
 */
export function createClientCertificateInspector(options: ClientCertificateOptions): ClientCertificateInspector {
  const isTrusted = addressMatcher(options.trustedProxies);
  const forms = options.headerForms ?? [RFC9440_CLIENT_CERT];
  const logger = options.logger;
  const withChain = options.withChain ?? false;


  return (req) => {
    const socket = req.socket as Partial<TLSSocket>;
    if (socket.encrypted && typeof socket.getPeerCertificate === 'function') {
      const raw = socket.getPeerCertificate(false)?.raw;
      if (raw?.length) {
        return { status: 'found', certificate: { der: raw, source: 'tls', ...(withChain ? { chain: peerCertificateChain(socket as TLSSocket) } : {}) } };
      }
    }
    const present = forms.filter((form) => req.headers[form.name] !== undefined && req.headers[form.name] !== '');
    if (present.length === 0) return { status: 'none' };
    // TLS that fedgate terminates itself (the mTLS listener): the connection is the only source, headers belong to the main listener.
    if (socket.encrypted) return { status: 'none', ignored: present.map((f) => f.name) };
    if (!isTrusted(req.socket.remoteAddress)) {
      const headers = present.map((f) => f.name);
      logger.warn({ peer: req.socket.remoteAddress, headers }, 'client certificate header from an address that is not a trusted proxy: ignored');
      return { status: 'none', ignored: headers };
    }
    let problem: { header: string; message: string } | undefined;
    for (const form of present) {
      const value = req.headers[form.name];
      // Several values mean several certificates or a spliced header: neither identifies one client.
      if (typeof value !== 'string' || (!form.list && value.includes(','))) {
        problem ??= { header: form.name, message: `the ${form.name} header was sent more than once` };
        continue;
      }
      const der = form.parse(value);
      if (!der || !isDerCertificate(der)) {
        problem ??= { header: form.name, message: `the ${form.name} header does not hold a certificate in the expected form` };
        continue;
      }
      if (!withChain) return { status: 'found', certificate: { der, source: 'header', header: form.name } };
      const chain = form.chain ? form.chain(value, req.headers) : [];
      if (!chain?.every(isDerCertificate)) {
        problem ??= { header: form.name, message: `the certificate chain that came with the ${form.name} header cannot be read` };
        continue;
      }
      return { status: 'found', certificate: { der, source: 'header', header: form.name, chain } };
    }
    return { status: 'malformed', ...problem! };
  };
}

/**
 * Builds the reader of client certificates: what
 * {@link createClientCertificateInspector} finds, or undefined when there is
 * none or it cannot be read.
 */
export function createClientCertificateReader(options: ClientCertificateOptions): ClientCertificateReader {
  const inspect = createClientCertificateInspector(options);
  return (req) => {
    const lookup = inspect(req);
    return lookup.status === 'found' ? lookup.certificate : undefined;
  };
}
