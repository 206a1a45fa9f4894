/**
 * X.509 certificate login: the bridge between client certificates (grid
 * and personal certificates from IGTF CAs, RFC 3820 proxies) and fedgate
 * accounts.
 *
 * A certificate arrives on fedgate's own mTLS listener (listener.ts) or,
 * behind a TLS-terminating proxy, in a header the proxy sets
 * (src/http/client-certificate.ts: RFC 9440, Envoy XFCC, nginx), only
 * believed from `trustedProxies`. It is validated against the trust anchor
 * directory (trust-store.ts, verify.ts); its end-entity subject and issuer
 * DNs, in the canonical form of dn.ts, are the linked identity
 * (`accounts.findByIdentity('x509', issuerDn, subjectDn)`).
 *
 * The same extraction serves RFC 8705 (certificate-bound tokens,
 * tls_client_auth): {@link X509Bridge.clientCertificatePem},
 * {@link X509Bridge.certificateAuthorized} and
 * {@link X509Bridge.certificateSubjectMatches} are written for
 * oidc-provider's `features.mTLS` hooks.
 */
import type { IncomingMessage, RequestListener } from 'node:http';
import type { Server } from 'node:https';
import { isIP } from 'node:net';
import type { Context, Middleware } from 'koa';
import type { Accounts } from '../../accounts/accounts.ts';
import type { Config } from '../../config/schema.ts';
import { drainServer } from '../../http/drain.ts';
import {
  certificateHeaderForms, createClientCertificateInspector, type CertificateLookup, type ClientCertificateInspector,
} from '../../http/client-certificate.ts';
import type { Audit } from '../../observability/audit.ts';
import type { Logger } from '../../observability/logger.ts';
import type { FederationHooks } from '../types.ts';
import { certificatesFromInput, derToPem, parseCertificate, type ParsedCertificate } from './certificate.ts';
import { normaliseDn } from './dn.ts';
import { loadServerCredentials, startMtlsListener, type MtlsListener } from './listener.ts';
import { LINK_PATH, LOGIN_PATH, x509Routes } from './routes.ts';
import { TrustSnapshot, TrustStore } from './trust-store.ts';
import { verifyChain, verifyOptionsFrom, type CertificateVerification } from './verify.ts';

export { certificateIssuerDn, certificateSubjectDn, DnSyntaxError, formatDn, isDn, normaliseDn, parseDn, type DistinguishedName } from './dn.ts';
export { certificatesFromInput, derToPem, parseCertificate, parseCrl, type ParsedCertificate, type ParsedCrl } from './certificate.ts';
export { loadTrustDirectory, TrustSnapshot, TrustStore } from './trust-store.ts';
export { MAX_CHAIN_LENGTH, verifyChain, verifyOptionsFrom, type CertificateRefusal, type CertificateVerification, type VerifiedCertificate, type VerifyOptions, type X509FailureReason } from './verify.ts';
export { LINK_PATH, LOGIN_PATH, usernameFromName, X509_PREFIX, type X509RefusalReason } from './routes.ts';
export { MTLS_SERVER_FILE, selfSignedServerCertificate } from './listener.ts';

/** What the bridge needs from the rest of fedgate. */
export interface X509BridgeDeps {
  config: Config;
  logger: Logger;
  audit: Audit;
  accounts: Accounts;
  hooks: FederationHooks;
}

/** A Koa context or the bare request: either is accepted where a request is read. */
export type RequestLike = Context | IncomingMessage;

/** The X.509 bridge, assembled. */
export interface X509Bridge {
  /** `GET /x509/login?interaction=<uid>` and `GET /x509/link`; passes anything outside `/x509/` on (and everything when disabled). */
  routes: Middleware;
  /**
   * Validates a certificate chain (leaf first: PEM text with one or more
   * certificates, DER, or a list of either) against the trust anchors.
   * Synchronous, so oidc-provider's synchronous hooks can use it.
   */
  verifyCertificate(chain: string | Buffer | ReadonlyArray<string | Buffer>, options?: { now?: Date }): CertificateVerification;
  /** The request's client certificate with the chain sent along, or why there is none. */
  clientCertificate(request: RequestLike): CertificateLookup;
  /** The request's client certificate as PEM (TLS connection, or a trusted proxy's header): RFC 8705 `getCertificate`. */
  clientCertificatePem(request: RequestLike): string | undefined;
  /** Does the request's certificate (and chain) validate against the trust anchors? RFC 8705 `certificateAuthorized` (tls_client_auth). */
  certificateAuthorized(request: RequestLike): boolean;
  /**
   * RFC 8705 §2.1.2 `certificateSubjectMatches`: `tls_client_auth_subject_dn`
   * compared as normalised DNs (RFC 4514 text or OpenSSL slash form);
   * `tls_client_auth_san_dns` / `_san_uri` / `_san_ip` / `_san_email`
   * against the subjectAltName entries.
   */
  certificateSubjectMatches(request: RequestLike, property: string, expected: string): boolean;
  /** Where the login page sends a user to sign in with a certificate for interaction `uid`. */
  loginUrl(uid: string): string;
  /** Where the account page sends a signed-in user to link a certificate. */
  linkUrl(): string;
  /** The trust anchors in use (undefined without `x509.trustAnchorsDir`). */
  readonly trustAnchors: TrustSnapshot | undefined;
  /** Re-reads the trust anchor directory if it changed; resolves to whether it did. */
  reloadTrustAnchors(): Promise<boolean>;
  /** Starts the mTLS listener serving `callback` (the Koa app's); port 0 picks a free one. */
  listen(callback: RequestListener, port: number, host?: string): Promise<Server>;
  /** Stops polling the trust anchors and closes the listeners it started. */
  close(): Promise<void>;
}

const EMPTY = new TrustSnapshot([], [], []);

function requestOf(request: RequestLike): IncomingMessage {
  const ctx = request as Partial<Context>;
  return ctx.req && ctx.request ? ctx.req : (request as IncomingMessage);
}

/**
 * fedgate's one client certificate extraction, configured: the TLS
 * connection's certificate first, else a header of a trusted proxy
 * (`trustedProxies`) in the forms of `x509.headerNames`.
 */
export interface CertificateExtraction {
  /** The certificate and the chain sent along it, or why there is none. */
  inspect(request: RequestLike): CertificateLookup;
  /** The certificate as PEM; undefined when there is none or it cannot be read. */
  pem(request: RequestLike): string | undefined;
}

/**
 * Builds the extraction from the configuration. The bridge uses it; the
 * gateway's reader is the same code (`createClientCertificateReader` with
 * `headerForms: certificateHeaderForms(config.x509.headerNames)`).
 *
 * @throws Error when `trustedProxies` holds an entry that is not an address or range.
 */
export function createCertificateExtraction(config: Pick<Config, 'trustedProxies' | 'x509'>, logger: Logger): CertificateExtraction {
  const headerForms = certificateHeaderForms(config.x509.headerNames);
  const inspectors = {
    chain: createClientCertificateInspector({ trustedProxies: config.trustedProxies, logger, headerForms, withChain: true }),
    leaf: createClientCertificateInspector({ trustedProxies: config.trustedProxies, logger, headerForms }),
  } satisfies Record<string, ClientCertificateInspector>;
  return {
    inspect: (request) => inspectors.chain(requestOf(request)),
    pem(request) {
      const lookup = inspectors.leaf(requestOf(request));
      return lookup.status === 'found' ? derToPem(lookup.certificate.der) : undefined;
    },
  };
}

function normaliseIp(ip: string): string | undefined {
  const version = isIP(ip.replace(/^\[|\]$/g, ''));
  if (!version) return undefined;
  return version === 4 ? ip : new URL(`http://[${ip.replace(/^\[|\]$/g, '')}]/`).hostname.slice(1, -1);
}

/**
 * Assembles the bridge: loads the trust anchors (when enabled and
 * `x509.trustAnchorsDir` is set) and starts polling them.
 *
 * @throws Error when the trust anchor directory cannot be read, or
 *   `trustedProxies` holds an entry that is not an address or range.
 */
export async function createX509Bridge(deps: X509BridgeDeps): Promise<X509Bridge> {
  const { config, audit, accounts, hooks } = deps;
  const options = config.x509;
  const logger = deps.logger.child({ component: 'x509' });
  // A disabled bridge reads no directory: an example configuration may name one this host does not have.
  const trust = options.enabled && options.trustAnchorsDir
    ? await TrustStore.open({ dir: options.trustAnchorsDir, logger, reloadSeconds: options.reloadSeconds })
    : undefined;
  if (options.enabled && trust && trust.snapshot.anchors.length === 0) {
    logger.warn({ dir: options.trustAnchorsDir }, 'X.509 login is enabled but the trust anchor directory holds no CA certificate: every certificate will be refused');
  }
  const verifyOptions = verifyOptionsFrom(options);
  const extraction = createCertificateExtraction(config, logger);

  const verify = (chain: Buffer[], now?: Date): CertificateVerification =>
    verifyChain(chain, trust?.snapshot ?? EMPTY, { ...verifyOptions, now });

  const leafOf = (request: RequestLike): ParsedCertificate | undefined => {
    const lookup = extraction.inspect(request);
    if (lookup.status !== 'found') return undefined;
    try {
      return parseCertificate(lookup.certificate.der);
    } catch {
      return undefined;
    }
  };

  const listeners: MtlsListener[] = [];
  if (trust) {
    trust.onReload = (snapshot) => {
      const cas = snapshot.anchors.map((a) => derToPem(a.der));
      for (const listener of listeners) listener.updateCas(cas);
    };
  }
  let listeningPort: number | undefined;

  const baseUrl = (): string => {
    if (options.publicUrl) return options.publicUrl.replace(/\/$/, '');
    const port = listeningPort ?? options.mtlsPort;
    if (port === undefined || port === 0) return config.issuer;
    return `https://${new URL(config.issuer).hostname}:${port}`;
  };

  return {
    routes: x509Routes({
      enabled: options.enabled,
      jit: options.jit,
      logger,
      audit,
      accounts,
      hooks,
      inspect: (ctx) => extraction.inspect(ctx),
      verify: (chain) => verify(chain),
      // The login page stays on the issuer's origin when certificate login runs on the mTLS listener's.
      interactionUrl: (uid) => `${config.issuer}/interaction/${encodeURIComponent(uid)}`,
    }),
    verifyCertificate(chain, opts) {
      let ders: Buffer[];
      try {
        ders = certificatesFromInput(chain);
      } catch (err) {
        return { ok: false, reason: 'malformed', message: `The certificate chain could not be read (${(err as Error).message}).` };
      }
      return verify(ders, opts?.now);
    },
    clientCertificate: (request) => extraction.inspect(request),
    clientCertificatePem: (request) => extraction.pem(request),
    certificateAuthorized(request) {
      const lookup = extraction.inspect(request);
      if (lookup.status !== 'found') return false;
      return verify([lookup.certificate.der, ...(lookup.certificate.chain ?? [])]).ok;
    },
    certificateSubjectMatches(request, property, expected) {
      const cert = leafOf(request);
      if (!cert) return false;
      const san = cert.subjectAltName;
      switch (property) {
        case 'tls_client_auth_subject_dn':
          try {
            return normaliseDn(expected) === cert.subjectDn;
          } catch {
            return false;
          }
        case 'tls_client_auth_san_dns':
          return !!san?.dns.some((name) => name.toLowerCase() === expected.toLowerCase());
        case 'tls_client_auth_san_uri':
          return !!san?.uri.includes(expected);
        case 'tls_client_auth_san_email':
          return !!san?.email.some((email) => email.toLowerCase() === expected.toLowerCase());
        case 'tls_client_auth_san_ip': {
          const want = normaliseIp(expected);
          return want !== undefined && !!san?.ip.some((ip) => normaliseIp(ip) === want);
        }
        default:
          return false;
      }
    },
    loginUrl: (uid) => `${baseUrl()}${LOGIN_PATH}?interaction=${encodeURIComponent(uid)}`,
    linkUrl: () => `${baseUrl()}${LINK_PATH}`,
    get trustAnchors() {
      return trust?.snapshot;
    },
    reloadTrustAnchors: () => trust?.check() ?? Promise.resolve(false),
    async listen(callback, port, host) {
      const credentials = await loadServerCredentials({
        tlsCertFile: options.tlsCertFile,
        tlsKeyFile: options.tlsKeyFile,
        keysDir: config.keysDir,
        host: new URL(config.issuer).hostname.replace(/^\[|\]$/g, ''),
        logger,
      });
      const listener = await startMtlsListener({
        callback,
        port,
        host,
        credentials,
        caCertificates: (trust?.snapshot.anchors ?? []).map((a) => derToPem(a.der)),
        logger,
      });
      listeners.push(listener);
      listeningPort ??= (listener.server.address() as { port: number }).port;
      return listener.server;
    },
    async close() {
      trust?.close();
      // Drained like the HTTP listener (the application answers with Connection: close meanwhile).
      await Promise.all(listeners.splice(0).map(({ server }) => drainServer(server, {
        idleCloseMs: config.shutdown.idleCloseMs, timeoutMs: config.shutdown.timeoutSeconds * 1000,
      })));
    },
  };
}
