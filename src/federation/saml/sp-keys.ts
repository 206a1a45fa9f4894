/**
 * The service provider's signing key and certificate: AuthnRequests and the
 * SP metadata are signed with it, and identity providers learn the
 * certificate from that metadata (SAML metadata §2.4.1.1 KeyDescriptor).
 *
 * By default both live in the keys directory every replica shares
 * (`saml-sp-key.pem`, mode 0600, and `saml-sp-cert.pem`), created at first
 * start. Each file is written to a temporary file and published with a hard
 * link that fails when the target exists, so replicas starting together on
 * an empty directory end up with one key and one certificate for it.
 * Operators may give their own files instead (config `saml.spKeyFile` /
 * `saml.spCertFile`).
 */
import { createPrivateKey, generateKeyPair as generateKeyPairCb, X509Certificate, type KeyObject } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { selfSignedCertificate } from '../../keys/self-signed.ts';
import { writeFileAtomic } from '../../util/atomic-file.ts';

const generateKeyPair = promisify(generateKeyPairCb);

/** File names inside the keys directory. */
export const SP_KEY_FILE = 'saml-sp-key.pem';
export const SP_CERT_FILE = 'saml-sp-cert.pem';

/** RSA: what every SAML identity provider verifies (RSA-SHA256, SAML2Int). */
const MODULUS_BITS = 3072;
/** The certificate only carries the key (SAML metadata trust is by key, not by chain); it outlives rotations. */
const CERT_DAYS = 3650;

/** The SP's key pair as PEM. */
export interface SpKeys {
  /** PKCS#8 PEM. */
  privateKeyPem: string;
  certificatePem: string;
}

/** Options of {@link loadOrCreateSpKeys}. */
export interface SpKeyOptions {
  keysDir: string;
  /** Operator-provided files (both or neither); nothing is created then. */
  keyFile?: string | undefined;
  certFile?: string | undefined;
  /** Common name of a created certificate (the SP's host). */
  commonName: string;
}

/** An RSA key pair for signing SAML messages; the private key as PKCS#8 PEM. */
export async function generateSigningKey(bits = MODULUS_BITS): Promise<{ privateKey: KeyObject; privateKeyPem: string }> {
  const { privateKey } = await generateKeyPair('rsa', { modulusLength: bits });
  return { privateKey, privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() };
}

/**
 * Reads the SP key and certificate, creating them in the keys directory at
 * first start (see the module comment).
 *
 * @throws Error naming the file when a file cannot be read, is not a key or
 *   certificate, or when the certificate is not for the key. Messages never
 *   contain key material.
 */
export async function loadOrCreateSpKeys(options: SpKeyOptions): Promise<SpKeys> {
  if (options.keyFile !== undefined && options.certFile !== undefined) {
    const privateKeyPem = await readRequired(options.keyFile, 'SAML SP key');
    const certificatePem = await readRequired(options.certFile, 'SAML SP certificate');
    return checkPair(privateKeyPem, certificatePem, options.keyFile, options.certFile);
  }
  const keyPath = join(options.keysDir, SP_KEY_FILE);
  const certPath = join(options.keysDir, SP_CERT_FILE);
  await mkdir(options.keysDir, { recursive: true, mode: 0o700 });

  let privateKeyPem = await readIfExists(keyPath, 'SAML SP key');
  if (privateKeyPem === undefined) {
    const created = await generateSigningKey();
    // Another replica may win the race: then its key is the one everybody uses.
    await writeFileAtomic(keyPath, created.privateKeyPem, { mode: 0o600, exclusive: true });
    privateKeyPem = await readRequired(keyPath, 'SAML SP key');
  }
  let certificatePem = await readIfExists(certPath, 'SAML SP certificate');
  if (certificatePem === undefined) {
    // Any certificate for the key will do, so whoever gets here first writes one.
    const created = await selfSignedCertificate({ privateKey: parseKey(privateKeyPem, keyPath), commonName: options.commonName, days: CERT_DAYS, backdateSeconds: 3600 });
    await writeFileAtomic(certPath, created, { mode: 0o644, exclusive: true });
    certificatePem = await readRequired(certPath, 'SAML SP certificate');
  }
  return checkPair(privateKeyPem, certificatePem, keyPath, certPath);
}

function parseKey(pem: string, path: string): KeyObject {
  try {
    const key = createPrivateKey(pem);
    if (key.asymmetricKeyType !== 'rsa') throw new Error('not RSA');
    return key;
  } catch {
    throw new Error(`${path} is not an RSA private key in PEM`);
  }
}

function checkPair(privateKeyPem: string, certificatePem: string, keyPath: string, certPath: string): SpKeys {
  const key = parseKey(privateKeyPem, keyPath);
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certificatePem);
  } catch {
    throw new Error(`${certPath} is not a PEM certificate`);
  }
  if (!cert.checkPrivateKey(key)) throw new Error(`${certPath} is not the certificate of the key in ${keyPath}`);
  return { privateKeyPem, certificatePem: cert.toString() };
}

async function readRequired(path: string, what: string): Promise<string> {
  const text = await readIfExists(path, what);
  if (text === undefined) throw new Error(`${what} file ${path} does not exist`);
  return text;
}

async function readIfExists(path: string, what: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    throw new Error(`cannot read ${what} file ${path} (${code ?? 'error'})`, { cause: err });
  }
}

