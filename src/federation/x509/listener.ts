/**
 * fedgate's own TLS listener for client certificates (FEDGATE_MTLS_PORT).
 *
 * It asks every client for a certificate (`requestCert`) but lets the
 * handshake succeed whatever it sends (`rejectUnauthorized: false`):
 * validation is fedgate's (verify.ts), so a bad certificate gets a page
 * that says what is wrong instead of a TLS alert the browser shows as a
 * connection error. The trust anchors are sent as the acceptable CA list
 * (RFC 8446 §4.2.4 certificate_authorities, RFC 5246 §7.4.4), so browsers
 * offer only certificates that can work. Requests on this listener are
 * judged by the certificate of their TLS connection only: certificate
 * headers, even from `trustedProxies`, belong to the main listener.
 *
 * The server certificate comes from `x509.tlsCertFile` / `x509.tlsKeyFile`,
 * or is a self-signed one for the issuer's host made at first start and
 * kept in the keys directory (`mtls-server.pem`, key and certificate, 0600).
 */
import { createPrivateKey, generateKeyPairSync, sign, X509Certificate } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import type { RequestListener } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { SecureContextOptions } from 'node:tls';
import { peerCertificateChain } from '../../http/client-certificate.ts';
import type { Logger } from '../../observability/logger.ts';
import { selfSignedCertificate } from '../../keys/self-signed.ts';
import { writeFileAtomic } from '../../util/atomic-file.ts';
import { bitString, generalizedTime, integer, oid, sequence, set, tlv, utf8String, TAG } from './der.ts';
import { derToPem, pemBlocks } from './certificate.ts';

/** File name of the generated server certificate and key inside the keys directory. */
export const MTLS_SERVER_FILE = 'mtls-server.pem';

/** Key and certificate chain (PEM) of the listener. */
export interface ServerCredentials {
  key: string;
  cert: string;
}

const ECDSA_WITH_SHA256 = '1.2.840.10045.4.3.2';

/** RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime after. */
function time(date: Date): Buffer {
  if (date.getUTCFullYear() >= 2050) return generalizedTime(date);
  const text = date.toISOString().replace(/^\d\d/, '').replace(/[-:T]/g, '').replace(/\.\d+Z$/, 'Z');
  return tlv(TAG.UTC_TIME, Buffer.from(text, 'latin1'));
}

/**
 * A self-signed P-256 server certificate for `host` (a DNS name or an IP
 * address), valid for `days`: serverAuth, digitalSignature, not a CA.
 */
export async function selfSignedServerCertificate(host: string, days = 365, now = new Date()): Promise<ServerCredentials> {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const cert = await selfSignedCertificate({ privateKey, commonName: host, days, now, serverHost: host });
  return { key: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, cert };
}

function splitCredentials(text: string, source: string): ServerCredentials {
  const blocks = pemBlocks(text);
  const key = blocks.find((b) => b.label === 'PRIVATE KEY');
  const certs = blocks.filter((b) => b.label === 'CERTIFICATE');
  if (!key || certs.length === 0) throw new Error(`${source} does not hold a private key and a certificate`);
  return { key: derToPem(key.der, 'PRIVATE KEY'), cert: certs.map((c) => derToPem(c.der)).join('') };
}

/** Options of {@link loadServerCredentials}. */
export interface ServerCredentialOptions {
  tlsCertFile?: string | undefined;
  tlsKeyFile?: string | undefined;
  keysDir: string;
  /** Host name of the generated certificate (the issuer's). */
  host: string;
  logger: Logger;
}

/**
 * The listener's key and certificate: the configured files, else the
 * generated self-signed pair in the keys directory (made now if absent or
 * expired; replicas starting together agree on one file).
 *
 * @throws Error naming the file when it cannot be read (never its contents).
 */
export async function loadServerCredentials(options: ServerCredentialOptions): Promise<ServerCredentials> {
  if (options.tlsCertFile && options.tlsKeyFile) {
    const [cert, key] = await Promise.all([readFile(options.tlsCertFile, 'utf8'), readFile(options.tlsKeyFile, 'utf8')]);
    createPrivateKey(key);
    new X509Certificate(cert);
    return { key, cert };
  }
  const path = join(options.keysDir, MTLS_SERVER_FILE);
  await mkdir(options.keysDir, { recursive: true, mode: 0o700 });
  let existing: ServerCredentials | undefined;
  try {
    existing = splitCredentials(await readFile(path, 'utf8'), path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (existing && new X509Certificate(existing.cert).validToDate.getTime() > Date.now() + 86_400_000) return existing;

  const fresh = await selfSignedServerCertificate(options.host);
  // Exclusive on first start: when another replica created the file first, its pair is the one. An expired pair is replaced.
  await writeFileAtomic(path, fresh.key + fresh.cert, { mode: 0o600, exclusive: !existing });
  options.logger.warn({ file: path, host: options.host }, 'mTLS listener: using a generated self-signed server certificate; configure x509.tlsCertFile and x509.tlsKeyFile for browsers');
  return splitCredentials(await readFile(path, 'utf8'), path);
}

/** Options of {@link startMtlsListener}. */
export interface MtlsListenerOptions {
  callback: RequestListener;
  port: number;
  host?: string | undefined;
  credentials: ServerCredentials;
  /** PEM of the CAs to name in the certificate request; empty = name none (clients offer any certificate). */
  caCertificates: string[];
  logger: Logger;
}

let keeperCrl: string | undefined;

/**
 * A CRL of a made-up issuer, signed by a throw-away key, that only turns on
 * OpenSSL's CRL checking for the listener's own (unused) verification.
 *
 * Why: node 24.21 keeps the chain a client sent only when its own
 * verification of the handshake fails; when it succeeds (a leaf and an
 * intermediate that chain to one of the `ca` certificates), the sent
 * intermediates are gone before `secureConnection` (nodejs/node#65579), and
 * fedgate's validation, which needs them, refused good chains. With CRL
 * checking on and no CRL for any real CA, node's verification never
 * succeeds (UNABLE_TO_GET_CRL), so the chain always stays; the handshake
 * goes on (`rejectUnauthorized: false`) and verify.ts decides, as before.
 * The `ca` list still names the acceptable CAs to browsers.
 */
export function chainKeeperCrl(now = new Date()): string {
  if (keeperCrl) return keeperCrl;
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const algorithm = sequence(oid(ECDSA_WITH_SHA256));
  const issuer = sequence(set(sequence(oid('2.5.4.3'), utf8String('fedgate mTLS listener: chain keeper (not a CA)'))));
  const tbs = sequence(
    integer(Buffer.from([1])), // v2
    algorithm,
    issuer,
    time(new Date(now.getTime() - 86_400_000)),
    time(new Date(now.getTime() + 100 * 365 * 86_400_000)),
  );
  keeperCrl = derToPem(sequence(tbs, algorithm, bitString(sign('sha256', tbs, privateKey))), 'X509 CRL');
  return keeperCrl;
}

function secureOptions(credentials: ServerCredentials, ca: string[]): SecureContextOptions {
  return { key: credentials.key, cert: credentials.cert, minVersion: 'TLSv1.2', crl: chainKeeperCrl(), ...(ca.length ? { ca } : {}) };
}

/** The mTLS listener, started; `updateCas` replaces the CA list after a trust anchor reload. */
export interface MtlsListener {
  server: Server;
  updateCas(caCertificates: string[]): void;
}

/** Starts the listener on `port` (0 picks a free one). */
export function startMtlsListener(options: MtlsListenerOptions): Promise<MtlsListener> {
  const { credentials, logger } = options;
  const server = createServer({
    ...secureOptions(credentials, options.caCertificates),
    requestCert: true,
    rejectUnauthorized: false,
    maxHeaderSize: 16 * 1024,
    requestTimeout: 30_000,
    headersTimeout: 10_000,
  }, options.callback);
  server.keepAliveTimeout = 65_000;
  // A client that gives up mid-handshake is not worth an error log line each time.
  server.on('tlsClientError', (err) => logger.debug({ err: { message: err.message } }, 'mTLS handshake failed'));
  // Read the peer's chain before anything can consume it (see peerCertificateChain).
  server.on('secureConnection', (socket) => {
    peerCertificateChain(socket);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      const address = server.address() as AddressInfo;
      logger.info({ port: address.port, cas: options.caCertificates.length }, 'mTLS listener for client certificates listening');
      resolve({
        server,
        updateCas: (ca) => server.setSecureContext(secureOptions(credentials, ca)),
      });
    });
  });
}
