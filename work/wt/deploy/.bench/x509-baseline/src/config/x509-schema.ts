import { z } from 'zod';

/** An HTTP header name (RFC 9110 §5.1 token), compared in lower case. */
const headerName = z.string().regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/, 'must be an HTTP header name').transform((v) => v.toLowerCase());
/** A header name, or false to turn that header form off. */
const optionalHeader = (name: string) => z.union([headerName, z.literal(false)]).default(name);

/**
 * X.509 certificate login (src/federation/x509). Owned by the X.509 bridge;
 * every option documented here.
 */
export const x509Schema = z.object({
  /** Offer certificate login (needs trust anchors). */
  enabled: z.boolean().default(false),
  /** Port of fedgate's own TLS listener that asks for client certificates (env FEDGATE_MTLS_PORT); absent = none. */
  mtlsPort: z.number().int().min(0).max(65535).optional(),
  /**
   * Directory of trusted CA certificates and their CRLs, in the layout of
   * IGTF distributions and fetch-crl (`/etc/grid-security/certificates`):
   * `<hash>.0` or `*.pem` CA certificates, `<hash>.r0`, `*.crl.pem` or
   * `*.crl` CRLs. Required when enabled.
   */
  trustAnchorsDir: z.string().min(1).optional(),
  /** Seconds between checks of the trust anchor directory for changes (CRL updates); 0 = never reload. */
  reloadSeconds: z.number().min(0).max(86_400).default(60),
  /**
   * Server certificate and key (PEM files) of the mTLS listener. Without
   * them a self-signed certificate for the issuer's host name is made in the
   * keys directory at first start (`mtls-server.pem`): fine behind a proxy
   * or for tests, not for browsers.
   */
  tlsCertFile: z.string().min(1).optional(),
  tlsKeyFile: z.string().min(1).optional(),
  /**
   * Public base URL of the mTLS listener (e.g. `https://cert.example.org`),
   * where the login page sends users for certificate login. Default: the
   * issuer's host on `mtlsPort` when set, else the issuer itself (a proxy
   * in front passes the certificate in a header).
   */
  publicUrl: z.string().refine((v) => {
    const url = URL.parse(v);
    return !!url && url.protocol === 'https:' && !url.search && !url.hash;
  }, 'must be an https URL without query or fragment').optional(),
  /**
   * Headers in which a trusted proxy (`trustedProxies`) passes the client
   * certificate; `false` turns a form off. Tried in this order.
   */
  headerNames: z.object({
    /** RFC 9440 `Client-Cert` (sf-binary DER). */
    clientCert: optionalHeader('client-cert'),
    /** RFC 9440 `Client-Cert-Chain` (sf-list of sf-binary DER). */
    clientCertChain: optionalHeader('client-cert-chain'),
    /** Envoy `x-forwarded-client-cert` (`Cert="<url-encoded PEM>"`, `Chain=`); the last element is used. */
    envoy: optionalHeader('x-forwarded-client-cert'),
    /** nginx `$ssl_client_escaped_cert` (URL-encoded PEM). */
    nginx: optionalHeader('x-ssl-client-cert'),
  }).strict().prefault({}),
  /**
   * Create an account on first login with a certificate no account is
   * linked to (username from the certificate's CN). Off: such a login is
   * refused, and the user links the certificate from a signed-in session.
   */
  jit: z.boolean().default(false),
  /** Accept RFC 3820 proxy certificates (and legacy Globus proxies); the identity is the end-entity certificate's subject. */
  proxyCertificates: z.boolean().default(true),
  crl: z.object({
    /**
     * A CA in the path has no CRL in the directory: `accept` (the default;
     * directories without fetch-crl have none), or `refuse`.
     */
    missing: z.enum(['accept', 'refuse']).default('accept'),
    /**
     * The CA's CRL is past its nextUpdate (fetch-crl stopped working):
     * `refuse` (the default: revocation status unknown, fail closed, as
     * OpenSSL does), or `warn` (accept, log a warning). A certificate listed
     * in an expired CRL is refused either way.
     */
    expired: z.enum(['refuse', 'warn']).default('refuse'),
  }).strict().prefault({}),
}).strict().superRefine((value, ctx) => {
  if (value.enabled && !value.trustAnchorsDir) {
    ctx.addIssue({ code: 'custom', path: ['trustAnchorsDir'], message: 'required when x509 is enabled' });
  }
  if (!value.tlsCertFile !== !value.tlsKeyFile) {
    ctx.addIssue({ code: 'custom', path: [value.tlsCertFile ? 'tlsKeyFile' : 'tlsCertFile'], message: 'tlsCertFile and tlsKeyFile go together' });
  }
});

export type X509Config = z.infer<typeof x509Schema>;
