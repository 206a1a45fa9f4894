/**
 * DPoP proof checks at a protected resource (RFC 9449 §4.3, §7.1).
 *
 * Written here from jose primitives: no maintained resource-server DPoP
 * verifier exists for Node (oidc-provider checks proofs only at its own
 * endpoints; openid-client and oauth4webapi create proofs, they do not
 * verify them).
 */
import { createHash } from 'node:crypto';
import { calculateJwkThumbprint, decodeProtectedHeader, EmbeddedJWK, jwtVerify, type JWK } from 'jose';
import type { Store } from '../store/store.ts';
import { InvalidDpopProof, InvalidToken, unavailable } from './errors.ts';

/** Proof signing algorithms accepted: asymmetric only (RFC 9449 §4.3 point 5). */
export const DPOP_ALGORITHMS = ['ES256', 'EdDSA', 'Ed25519', 'RS256', 'PS256'];
/** How far a proof's `iat` may lie from now, in seconds. */
export const DPOP_IAT_WINDOW = 60;
/** How long a used `jti` is remembered: the whole window a proof is accepted in. */
const JTI_TTL = 2 * DPOP_IAT_WINDOW;
const MAX_PROOF_LENGTH = 8 * 1024;
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];
const UNRESERVED = /[A-Za-z0-9._~-]/;

export interface DpopCheck {
  /** Every `DPoP` header value of the request. */
  proofs: readonly string[];
  /** The method of the request the proof is for (upper case). */
  method: string;
  /** The URL of that request as the client called it (query and fragment are ignored). */
  url: string;
  /** base64url(SHA-256(access token)): the expected `ath`. */
  accessTokenHash: string;
  /** The token's `cnf.jkt`. */
  jkt: string;
  /** Where used proof ids are remembered (shared by all replicas). */
  store: Store;
  /** Current time in epoch seconds (tests). */
  now?: number;
}

/**
 * An `htu` comparison form (RFC 9449 §4.3 point 9): scheme, host and path
 * after RFC 3986 §6.2.2 syntax-based and §6.2.3 scheme-based normalisation,
 * without query and fragment.
 */
export function normaliseHtu(value: string): string | undefined {
  const url = URL.parse(value);
  if (!url || (url.protocol !== 'https:' && url.protocol !== 'http:') || !url.host) return undefined;
  const path = url.pathname.replace(/%[0-9A-Fa-f]{2}/g, (encoded) => {
    const char = String.fromCharCode(Number.parseInt(encoded.slice(1), 16));
    return UNRESERVED.test(char) ? char : encoded.toUpperCase();
  });
  return `${url.protocol}//${url.host}${path}`;
}

/**
 * Checks the DPoP proof of a request to a resource with a DPoP-bound token:
 * exactly one proof; a JWS of `typ: dpop+jwt` with an asymmetric algorithm
 * and a public `jwk` header it verifies under; `htm` and `htu` naming this
 * request; `iat` within {@link DPOP_IAT_WINDOW} seconds; `ath` the hash of
 * this token; a `jti` not seen before (remembered in the store); and the
 * proof key the one the token is bound to.
 *
 * @throws InvalidDpopProof when the proof is missing or wrong for this request,
 *   InvalidToken when it is sound but made with another key than the token's,
 *   TemporarilyUnavailable when the store cannot record the jti.
 */
export async function checkDpopProof(check: DpopCheck): Promise<void> {
  if (check.proofs.length === 0) throw new InvalidDpopProof('a DPoP proof is required with a DPoP-bound access token');
  if (check.proofs.length > 1) throw new InvalidDpopProof('exactly one DPoP proof is allowed');
  const proof = check.proofs[0]!;
  if (proof.length > MAX_PROOF_LENGTH) throw new InvalidDpopProof('the DPoP proof is too large');

  let header: ReturnType<typeof decodeProtectedHeader>;
  try {
    header = decodeProtectedHeader(proof);
  } catch {
    throw new InvalidDpopProof('the DPoP proof is not a JWS');
  }
  if (header.typ !== 'dpop+jwt') throw new InvalidDpopProof('the DPoP proof must have typ dpop+jwt');
  if (typeof header.alg !== 'string' || !DPOP_ALGORITHMS.includes(header.alg)) {
    throw new InvalidDpopProof('the DPoP proof algorithm is not accepted');
  }
  const jwk = header.jwk as JWK | undefined;
  if (!jwk || typeof jwk !== 'object' || jwk.kty === 'oct' || PRIVATE_MEMBERS.some((m) => m in jwk)) {
    throw new InvalidDpopProof('the DPoP proof must carry a public jwk');
  }

  let payload: Record<string, unknown>;
  try {
    ({ payload } = await jwtVerify(proof, EmbeddedJWK, {
      typ: 'dpop+jwt',
      algorithms: DPOP_ALGORITHMS,
      ...(check.now !== undefined ? { currentDate: new Date(check.now * 1000) } : {}),
    }));
  } catch {
    throw new InvalidDpopProof('the DPoP proof could not be verified with its jwk');
  }

  if (payload.htm !== check.method) throw new InvalidDpopProof('the DPoP proof is for another method (htm)');
  const htu = typeof payload.htu === 'string' ? normaliseHtu(payload.htu) : undefined;
  if (!htu || htu !== normaliseHtu(check.url)) throw new InvalidDpopProof('the DPoP proof is for another URL (htu)');
  const now = check.now ?? Math.floor(Date.now() / 1000);
  if (typeof payload.iat !== 'number' || Math.abs(now - payload.iat) > DPOP_IAT_WINDOW) {
    throw new InvalidDpopProof('the DPoP proof is too old or too new (iat)');
  }
  if (payload.ath !== check.accessTokenHash) throw new InvalidDpopProof('the DPoP proof is for another access token (ath)');
  if (typeof payload.jti !== 'string' || payload.jti.length === 0 || payload.jti.length > 256) {
    throw new InvalidDpopProof('the DPoP proof has no valid jti');
  }

  const thumbprint = await calculateJwkThumbprint(jwk, 'sha256');
  // RFC 9449 §7.1: a sound proof with another key is a key binding failure of the token.
  if (thumbprint !== check.jkt) throw new InvalidToken('the DPoP proof key is not the key the access token is bound to');

  // Recorded last, so that proofs failing any other check fill no store entries.
  // Keyed per proof key: one client cannot burn another's jti values.
  const key = `dpop-jti:${createHash('sha256').update(`${thumbprint}\n${payload.jti}`).digest('base64url')}`;
  let fresh: boolean;
  try {
    fresh = await check.store.setIfAbsent(key, 1, JTI_TTL);
  } catch (err) {
    throw unavailable(err, 'the DPoP proof cannot be checked right now');
  }
  if (!fresh) throw new InvalidDpopProof('the DPoP proof was already used (jti)');
}
