/**
 * The floor on signature and key algorithms of certificate login, and the
 * hard bounds that keep one signature check cheap.
 *
 * - MD2, MD4 and MD5 signatures are always refused (chosen-prefix collisions
 *   forge certificates); SHA-1 signatures unless `allowSha1` (SHAttered and
 *   chosen-prefix SHA-1 collisions, CA/B Forum and IGTF retired it).
 * - RSA and DSA keys below `minRsaBits` (default 2048, NIST SP 800-131A).
 * - Whatever the policy: RSA moduli above 16384 bits (OpenSSL's own limit),
 *   RSA public exponents above 2^64 and DSA keys above 3072 bits are not
 *   used at all: each would make one signature check cost milliseconds,
 *   which a crafted chain multiplies.
 *
 * A trust anchor's signature on itself is not checked against the floor
 * (RFC 5280 §6.1: the anchor is trusted by configuration, not by its
 * self-signature), its key is.
 */
import type { ParsedCertificate, SignatureScheme } from './certificate.ts';

/** The configurable part of the floor (`x509.algorithms`). */
export interface AlgorithmPolicy {
  /** Accept SHA-1 signatures (certificates and CRLs). */
  allowSha1: boolean;
  /** Smallest RSA (and DSA) key, in bits. */
  minRsaBits: number;
}

/** The safe default: no SHA-1, RSA from 2048 bits. */
export const DEFAULT_ALGORITHM_POLICY: AlgorithmPolicy = { allowSha1: false, minRsaBits: 2048 };

const MAX_RSA_BITS = 16_384;
const MAX_RSA_EXPONENT = 2n ** 64n;
const MAX_DSA_BITS = 3072;
const BROKEN_DIGESTS = new Set(['md2', 'md4', 'md5']);

const details = new WeakMap<ParsedCertificate, { type: string | undefined; bits: number; exponent: bigint }>();

/** The key's type and size, read once per certificate (node builds them anew at each read). */
function keyOf(cert: ParsedCertificate): { type: string | undefined; bits: number; exponent: bigint } {
  let known = details.get(cert);
  if (!known) {
    const d = cert.publicKey.asymmetricKeyDetails ?? {};
    known = { type: cert.publicKey.asymmetricKeyType, bits: d.modulusLength ?? 0, exponent: d.publicExponent ?? 0n };
    details.set(cert, known);
  }
  return known;
}

/**
 * Why the key of `cert` must not be used to check any signature, whatever
 * the policy; undefined when it may.
 */
export function unusableKey(cert: ParsedCertificate): string | undefined {
  const key = keyOf(cert);
  switch (key.type) {
    case 'rsa':
    case 'rsa-pss':
      if (key.bits > MAX_RSA_BITS) return `an RSA key of ${key.bits} bits (more than ${MAX_RSA_BITS})`;
      if (key.exponent > MAX_RSA_EXPONENT) return 'an RSA key with a public exponent above 2^64';
      return undefined;
    case 'dsa':
      return key.bits > MAX_DSA_BITS ? `a DSA key of ${key.bits} bits (more than ${MAX_DSA_BITS})` : undefined;
    case 'ec':
    case 'ed25519':
    case 'ed448':
      return undefined;
    default:
      return `a ${key.type ?? 'unknown'} key, which cannot sign`;
  }
}

/** Why the key of `cert` is below the floor; undefined when it is not. */
export function weakKey(cert: ParsedCertificate, policy: AlgorithmPolicy): string | undefined {
  const { type, bits } = keyOf(cert);
  if (type === 'rsa' || type === 'rsa-pss' || type === 'dsa') {
    if (bits < policy.minRsaBits) return `its ${type === 'dsa' ? 'DSA' : 'RSA'} key has ${bits} bits (at least ${policy.minRsaBits} are required)`;
  }
  return undefined;
}

/** Why a signature made with `scheme` is below the floor; undefined when it is not. */
export function weakSignature(scheme: SignatureScheme | undefined, policy: AlgorithmPolicy): string | undefined {
  if (!scheme) return 'it is signed with an algorithm fedgate does not know';
  if (scheme.digest && BROKEN_DIGESTS.has(scheme.digest)) return `it is signed with ${scheme.digest.toUpperCase()}, which is broken`;
  if (scheme.digest === 'sha1' && !policy.allowSha1) return 'it is signed with SHA-1 (x509.algorithms.allowSha1 is off)';
  return undefined;
}
