/**
 * The authentication step both enforcement points share: read the token
 * from the Authorization header, verify it, check that it is meant for the
 * service, and check its proof-of-possession binding (DPoP or client
 * certificate) against the request.
 */
import type { Store } from '../store/store.ts';
import { certificateThumbprint, type ClientCertificate } from '../http/client-certificate.ts';
import { checkDpopProof } from './dpop.ts';
import { GatewayError, InvalidRequest, InvalidToken, Unauthorized, type ChallengeScheme } from './errors.ts';
import { acceptsAudience, type AudiencePolicy, type Identity, type TokenVerifier } from './token-verifier.ts';

/** The parts of a request authentication looks at; the costly ones are only computed when a binding needs them. */
export interface AuthenticationRequest {
  /** The Authorization header, if any. */
  authorization: string | undefined;
  /** The method of the request being authorised (the original one, for /authz), upper case. */
  method: string;
  /** The URL the client called (DPoP `htu`). */
  url(): string;
  /** Every DPoP header value. */
  dpopProofs(): readonly string[];
  /** The client certificate, from TLS or a trusted proxy's header. */
  clientCertificate(): ClientCertificate | undefined;
}

/** A request whose token was accepted. */
export interface Authenticated {
  identity: Identity;
  /** The scheme the token came with, and that later challenges (403) use. */
  scheme: ChallengeScheme;
}

const CREDENTIALS = /^([A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]*)(?: +(.*))?$/;
// RFC 6750 §2.1 b64token.
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;

/**
 * The token of an `Authorization: Bearer <token>` (RFC 6750 §2.1) or
 * `Authorization: DPoP <token>` (RFC 9449 §7.1) header.
 *
 * @throws Unauthorized without a header or with another scheme (a request
 *   without credentials we understand, RFC 6750 §3.1), InvalidRequest when the
 *   header is malformed.
 */
export function parseAuthorization(header: string | undefined): { scheme: ChallengeScheme; token: string } {
  if (!header) throw new Unauthorized('an access token is required');
  const match = CREDENTIALS.exec(header);
  if (!match) throw new InvalidRequest('the Authorization header is malformed');
  const name = match[1]!.toLowerCase();
  if (name !== 'bearer' && name !== 'dpop') throw new Unauthorized('an access token is required (Bearer or DPoP)');
  const scheme: ChallengeScheme = name === 'dpop' ? 'DPoP' : 'Bearer';
  const token = match[2];
  if (!token || !B64TOKEN.test(token)) {
    const err = new InvalidRequest('the Authorization header is malformed');
    err.scheme = scheme;
    throw err;
  }
  return { scheme, token };
}

/**
 * Authenticates a request for a service.
 *
 * @throws Unauthorized, InvalidRequest, InvalidToken, InvalidDpopProof or
 *   TemporarilyUnavailable, with the challenge scheme set: DPoP when the
 *   request used it or the token is DPoP-bound, else Bearer.
 */
export async function authenticate(
  verifier: TokenVerifier,
  store: Store,
  request: AuthenticationRequest,
  audience: AudiencePolicy,
): Promise<Authenticated> {
  const { scheme, token } = parseAuthorization(request.authorization);
  let identity: Identity | undefined;
  try {
    const verified = await verifier.verify(token);
    identity = verified.identity;
    if (!acceptsAudience(identity, audience)) throw new InvalidToken('the access token is not meant for this service (aud)');
    const cnf = identity.cnf;
    if (cnf?.jkt) {
      // RFC 9449 §7.2: a DPoP-bound token presented as a bearer token is refused.
      if (scheme !== 'DPoP') throw new InvalidToken('the access token is DPoP-bound and must be presented with the DPoP scheme');
      await checkDpopProof({
        proofs: request.dpopProofs(),
        method: request.method,
        url: request.url(),
        accessTokenHash: verified.tokenHash,
        jkt: cnf.jkt,
        store,
      });
    } else if (scheme === 'DPoP') {
      throw new InvalidToken('the access token is not DPoP-bound; present it with the Bearer scheme');
    }
    if (cnf?.['x5t#S256']) checkCertificateBinding(request.clientCertificate(), cnf['x5t#S256']);
  } catch (err) {
    if (err instanceof GatewayError) err.scheme = scheme === 'DPoP' || identity?.cnf?.jkt ? 'DPoP' : 'Bearer';
    throw err;
  }
  return { identity, scheme };
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
