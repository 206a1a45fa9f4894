/**
 * The one self-signed certificate generator: the SAML SP's signing
 * certificate and the mTLS listener's server certificate. @peculiar/x509
 * writes the certificate (DER, names, extensions); fedgate only says what goes
 * in it.
 */
import { createPublicKey, randomBytes, type KeyObject } from 'node:crypto';
import { isIP } from 'node:net';
// @peculiar/x509 2 resolves its ASN.1 schemas through tsyringe, which needs the
// Reflect metadata polyfill loaded first (its README's setup step).
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';

export interface SelfSignedOptions {
  /** The key that signs (and whose public key the certificate carries): RSA (RSA-SHA256) or EC P-256 (ECDSA-SHA256). */
  privateKey: KeyObject;
  /** Subject and issuer `CN=<commonName>` (cut at 64 characters, RFC 5280's ub-common-name). */
  commonName: string;
  /** Valid from `backdateSeconds` before `now` for `days`. */
  days: number;
  backdateSeconds?: number;
  now?: Date;
  /** A TLS server certificate for this host: subjectAltName (DNS or IPv4), serverAuth, digitalSignature, not a CA. */
  serverHost?: string;
}

function signingAlgorithm(key: KeyObject): RsaHashedImportParams | EcKeyImportParams & EcdsaParams {
  if (key.asymmetricKeyType === 'rsa') return { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  throw new Error(`no self-signed certificates for ${key.asymmetricKeyType} keys`);
}

/** A self-signed X.509 v3 certificate as PEM (one CERTIFICATE block, trailing newline). */
export async function selfSignedCertificate(options: SelfSignedOptions): Promise<string> {
  const algorithm = signingAlgorithm(options.privateKey);
  const privateKey = options.privateKey.toCryptoKey(algorithm, false, ['sign']);
  const publicKey = createPublicKey(options.privateKey).toCryptoKey(algorithm, true, ['verify']);
  const now = options.now ?? new Date();
  const serial = randomBytes(16);
  serial[0] = (serial[0]! & 0x7f) | 0x01; // positive and minimal (RFC 5280 §4.1.2.2)
  const host = options.serverHost;
  const extensions: x509.Extension[] = [];
  if (host !== undefined) {
    extensions.push(
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
    );
    const kind = isIP(host);
    if (kind === 4) extensions.push(new x509.SubjectAlternativeNameExtension([{ type: 'ip', value: host }], false));
    else if (kind === 0) extensions.push(new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: host }], false));
  }
  const certificate = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial.toString('hex'),
    name: [{ CN: [options.commonName.slice(0, 64)] }],
    notBefore: new Date(now.getTime() - (options.backdateSeconds ?? 60) * 1000),
    notAfter: new Date(now.getTime() + options.days * 86_400_000),
    signingAlgorithm: algorithm,
    keys: { privateKey: privateKey as CryptoKey, publicKey: publicKey as CryptoKey },
    extensions,
  });
  return `${certificate.toString('pem')}\n`;
}
