/**
 * The one verifier of fedgate's own tokens: the JWTs it signs (RFC 9068
 * access tokens, ID tokens), checked against its published keys, and its
 * opaque access tokens, looked up through oidc-provider's models. Every path
 * that accepts one of them goes through here: the gateway (`/api`, `/authz`
 * and the admin API, src/gateway/token-verifier.ts) and token exchange
 * (subject and actor tokens, src/exchange/presented-token.ts). So the
 * accepted algorithms, the clock tolerance, the token shapes, the scope
 * splitting, the verified-token cache and the refusals are the same
 * everywhere.
 *
 * What a path makes of a verified token (the account behind it, the grants
 * it belongs to) is the path's; the audience and proof-of-possession rule
 * for a token presented to a resource is `authenticate`
 * (src/gateway/authenticate.ts), which every resource path calls.
 */
import { createHash } from 'node:crypto';
import {
  createLocalJWKSet, decodeJwt, decodeProtectedHeader, errors as joseErrors, jwtVerify,
  type JWK, type JWTPayload, type ProtectedHeaderParameters,
} from 'jose';
import type Provider from 'oidc-provider';
import { FedgateError } from '../util/errors.ts';
import { SIGNING_ALGORITHMS, toPublicJwk } from '../keys/index.ts';
import { storageScopeProblem } from '../scopes/wlcg.ts';
import { BoundedMap } from '../util/bounded-map.ts';

/** Accepted clock skew for `exp` and `nbf`, in seconds (fedgate's own tokens and trusted external ones). */
export const CLOCK_TOLERANCE = 30;
/** The algorithms fedgate's tokens are signed with; anything else (none, HS*) is refused. */
export const OWN_TOKEN_ALGORITHMS: readonly string[] = SIGNING_ALGORITHMS;
/** Longest token accepted anywhere (a JWT with many scopes and a deep `act` chain stays far below). */
export const MAX_TOKEN_LENGTH = 16_384;
/** An opaque token of oidc-provider's (access, client credentials and refresh tokens): base64url, 16 to 512 characters. */
const OPAQUE_TOKEN = /^[A-Za-z0-9_-]{16,512}$/;
/** Three base64url parts separated by dots: a JWS in compact serialisation (a JWE has five, an opaque token none). */
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
/** RFC 9068 §4: the `typ` of an access token, which an ID token never has. */
export const ACCESS_TOKEN_TYP = 'at+jwt';
/** Claims every access token of fedgate's carries. */
const ACCESS_TOKEN_CLAIMS = ['exp', 'iat', 'sub', 'client_id', 'aud', 'jti'];
/** The refusal of anything that is not even shaped like one of fedgate's tokens: what it was meant to be is unknown. */
export const MALFORMED = 'the token is malformed';
/** Claims every other JWT of fedgate's (ID tokens) carries. */
const JWT_CLAIMS = ['exp', 'iat', 'sub'];

/**
 * A token of fedgate's that cannot be used: `invalid_token`, 401 (RFC 6750
 * §3.1), as a resource answers it. The message is a fixed text (never the
 * token) and the same on every path; token exchange answers it as
 * `invalid_grant` naming the token's role (RFC 8693 §2.2.2).
 */
export class TokenRefused extends FedgateError {
  constructor(description: string) {
    super('invalid_token', description, { status: 401 });
  }
}

/** Whether `value` has the shape of a compact JWS (three base64url parts). */
export function isCompactJws(value: string): boolean {
  return COMPACT_JWS.test(value);
}

/** Whether `value` has the shape of an opaque token of oidc-provider's (access, client credentials or refresh token). */
export function isOpaqueToken(value: string): boolean {
  return OPAQUE_TOKEN.test(value);
}

/** base64url(SHA-256(token)): the DPoP `ath` (RFC 9449 §4.2). */
export function tokenHash(token: string): string {
  return createHash('sha256').update(token).digest('base64url');
}

/**
 * A token's or grant's scopes: a space-separated string (or a list, as some
 * external issuers' `scp`) split into scopes, less empty ones and storage
 * scopes whose path is not in normal form (src/scopes): those grant nothing
 * and are not passed on.
 */
export function scopeList(value: unknown): string[] {
  const list = typeof value === 'string' ? value.split(' ') : Array.isArray(value) ? value : [];
  return list.filter((s): s is string => typeof s === 'string' && s !== '' && storageScopeProblem(s) === undefined);
}

/** A `string | string[]` claim as a list; undefined when it is neither. */
export function stringList(value: unknown): string[] | undefined {
  if (typeof value === 'string') return [value];
  if (Array.isArray(value) && value.every((v) => typeof v === 'string')) return value as string[];
  return undefined;
}

/** Proof-of-possession confirmation of a token (RFC 7800 `cnf`). */
export interface TokenBinding {
  /** RFC 9449 §6: JWK SHA-256 thumbprint of the DPoP key. */
  jkt?: string;
  /** RFC 8705 §3.1: SHA-256 thumbprint of the client certificate. */
  'x5t#S256'?: string;
}

/** The binding named by a JWT's `cnf` or an opaque token's record; undefined when there is none. */
export function tokenBinding(jkt: unknown, x5t: unknown): TokenBinding | undefined {
  const cnf: TokenBinding = {};
  if (typeof jkt === 'string') cnf.jkt = jkt;
  if (typeof x5t === 'string') cnf['x5t#S256'] = x5t;
  return cnf.jkt || cnf['x5t#S256'] ? cnf : undefined;
}

/** The claims of one of fedgate's JWT access tokens, checked for shape. */
export interface AccessTokenClaims {
  subject: string;
  clientId: string;
  audience: string[];
  /** `scope`, split ({@link scopeList}); relative to the audience's base path for a WLCG storage. */
  scopes: string[];
  expiresAt: number;
  cnf: TokenBinding | undefined;
  /** Issued by a token exchange: recorded in the store, and valid only while its record (its grant) lives. */
  exchanged: boolean;
}

/** A JWT of fedgate's whose signature, issuer, type and lifetime have been checked. */
export interface VerifiedJwt<M> {
  header: ProtectedHeaderParameters;
  payload: JWTPayload;
  /** The `typ` it was verified as: {@link ACCESS_TOKEN_TYP}, or undefined for an ID token. */
  typ: string | undefined;
  /** For access tokens: their claims, checked once. */
  access: AccessTokenClaims | undefined;
  /** `exp`, epoch seconds. */
  expiresAt: number;
  /** What the caller derived from it (the gateway: the identity as of a policy version); kept with it in the cache. */
  memo: M | undefined;
}

/** A JWT as it says it is, before its signature is checked. */
export interface DecodedJwt {
  header: ProtectedHeaderParameters;
  claims: JWTPayload;
}

/** Counters for tests and diagnostics. */
export interface OwnTokenStats {
  /** JWT signature verifications (cache misses). */
  signatureVerifications: number;
  /** Store lookups: opaque tokens, and records of exchanged JWTs. */
  opaqueLookups: number;
}

export interface OwnTokensOptions {
  /** The issuer every JWT must name (`config.issuer`). */
  issuer: string;
  /** fedgate's current signing keys (private JWKs are reduced to their public parts). */
  jwks(): { keys: readonly JWK[] };
  /** Most JWTs kept verified in memory; 0 disables the cache. */
  cacheSize: number;
  /** Counted into, when the caller keeps its own counters. */
  stats?: OwnTokenStats;
}

function noun(typ: string | undefined): string {
  return typ === ACCESS_TOKEN_TYP ? 'access token' : 'ID token';
}

/** The refusal for a failed jose verification, in words safe to return to the client. */
function refusal(err: unknown, typ: string | undefined): TokenRefused {
  const token = `the ${noun(typ)}`;
  if (err instanceof joseErrors.JWTExpired) return new TokenRefused(`${token} has expired`);
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    switch (err.claim) {
      case 'iss': return new TokenRefused(`${token} was issued by another issuer`);
      case 'nbf': return new TokenRefused(`${token} is not valid yet`);
      case 'typ': return new TokenRefused(`${token} is not an RFC 9068 JWT access token (typ)`);
      default: return new TokenRefused(`${token} lacks required claims or has malformed ones`);
    }
  }
  if (err instanceof joseErrors.JOSEAlgNotAllowed || err instanceof joseErrors.JOSENotSupported) {
    return new TokenRefused(`${token} is signed with an algorithm that is not accepted`);
  }
  if (err instanceof joseErrors.JWKSNoMatchingKey || err instanceof joseErrors.JWKSMultipleMatchingKeys) {
    return new TokenRefused(`${token} is signed with an unknown key`);
  }
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return new TokenRefused(`${token} signature is invalid`);
  return new TokenRefused(MALFORMED);
}

/** An access token's claims, or a refusal when one is missing or malformed. */
function accessTokenClaims(payload: JWTPayload): AccessTokenClaims {
  const audience = stringList(payload.aud);
  const clientId = payload.client_id;
  const cnf = payload.cnf as Record<string, unknown> | undefined;
  if (!audience || typeof clientId !== 'string' || typeof payload.sub !== 'string' || typeof payload.exp !== 'number'
    || (payload.scope !== undefined && typeof payload.scope !== 'string') || (cnf !== undefined && (typeof cnf !== 'object' || cnf === null))) {
    throw new TokenRefused('the access token lacks required claims or has malformed ones');
  }
  return {
    subject: payload.sub,
    clientId,
    audience,
    scopes: scopeList(payload.scope),
    expiresAt: payload.exp,
    cnf: cnf ? tokenBinding(cnf.jkt, cnf['x5t#S256']) : undefined,
    exchanged: payload.exchanged === true,
  };
}

/** An opaque access token as oidc-provider stores it (user or client credentials). */
export type OpaqueAccessToken = InstanceType<Provider['AccessToken']> | InstanceType<Provider['ClientCredentials']>;

/**
 * fedgate's own tokens, verified. One per consumer (the gateway, each
 * provider instance's token exchange); `M` is what the consumer keeps with a
 * cached JWT.
 */
export class OwnTokens<M = never> {
  readonly stats: OwnTokenStats;
  readonly #options: OwnTokensOptions;
  /**
   * JWTs whose signature has been checked, until they expire: a busy
   * service costs one signature check per token rather than one per
   * request. Only verified tokens get in, so the cache holds nothing but
   * tokens this server issued. Keyed by the token itself rather than a
   * digest of it: a Map lookup on the string is exact and costs less than
   * hashing it (the gateway hashes a token only for a DPoP proof's `ath`).
   */
  readonly #cache: BoundedMap<string, VerifiedJwt<M>>;
  #jwksObject: object | undefined;
  #kids = '';
  #getKey: ReturnType<typeof createLocalJWKSet> | undefined;

  constructor(options: OwnTokensOptions) {
    this.#options = options;
    this.stats = options.stats ?? { signatureVerifications: 0, opaqueLookups: 0 };
    this.#cache = new BoundedMap(options.cacheSize);
  }

  /** Number of cached JWTs. */
  get cacheSize(): number {
    return this.#cache.size;
  }

  /** Drops every cached token. */
  clear(): void {
    this.#cache.clear();
  }

  /**
   * `token`'s header and claims: as verified when it is cached, else as it
   * says (unverified: only for deciding which kind of token it is).
   *
   * @throws TokenRefused when it cannot be decoded.
   */
  decode(token: string): DecodedJwt {
    const cached = this.#cache.get(token);
    if (cached) return { header: cached.header, claims: cached.payload };
    try {
      return { header: decodeProtectedHeader(token), claims: decodeJwt(token) };
    } catch {
      throw new TokenRefused(MALFORMED);
    }
  }

  /**
   * Verifies a JWT of fedgate's: signature with one of its keys and one of
   * {@link OWN_TOKEN_ALGORITHMS}, issuer, `typ` (`at+jwt` for an access
   * token; an ID token's is not checked), `exp` and `nbf` within
   * {@link CLOCK_TOLERANCE}, required claims. A verified token is answered
   * from the cache until it expires. Revocation is the caller's: see
   * {@link findRecord}.
   *
   * @throws TokenRefused with the reason.
   */
  async verifyJwt(token: string, typ: string | undefined): Promise<VerifiedJwt<M>> {
    const cached = this.cached(token, typ);
    if (cached) return cached;
    // What is not even a JWT is malformed on every path, whatever its signature (token exchange reads the claims first).
    this.decode(token);
    const getKey = this.#keySet();
    this.stats.signatureVerifications += 1;
    let header: ProtectedHeaderParameters;
    let payload: JWTPayload;
    try {
      ({ payload, protectedHeader: header } = await jwtVerify(token, getKey, {
        issuer: this.#options.issuer,
        algorithms: OWN_TOKEN_ALGORITHMS as string[],
        clockTolerance: CLOCK_TOLERANCE,
        requiredClaims: typ === ACCESS_TOKEN_TYP ? ACCESS_TOKEN_CLAIMS : JWT_CLAIMS,
        // RFC 9068 §4: the resource server checks typ, so an ID token is never taken for an access token.
        ...(typ ? { typ } : {}),
      }));
    } catch (err) {
      throw refusal(err, typ);
    }
    const access = typ === ACCESS_TOKEN_TYP ? accessTokenClaims(payload) : undefined;
    const verified: VerifiedJwt<M> = { header, payload, typ, access, expiresAt: payload.exp!, memo: undefined };
    // A token already past its expiry (accepted within the tolerance) is not kept: it is checked anew each time.
    if (verified.expiresAt > Date.now() / 1000) this.#cache.set(token, verified);
    return verified;
  }

  /**
   * The JWT `token`, when it was verified as `typ`
   * and has not expired since, without an await: the hot path of a busy
   * resource. The key set is checked first, so a withdrawn key's tokens are
   * gone from the cache before it is read.
   */
  cached(token: string, typ: string | undefined): VerifiedJwt<M> | undefined {
    this.#keySet();
    const entry = this.#fresh(token);
    return entry && entry.typ === typ ? entry : undefined;
  }

  /** The cached JWT `token`, unless it has expired (then it is dropped). */
  #fresh(token: string): VerifiedJwt<M> | undefined {
    const entry = this.#cache.get(token);
    if (!entry) return undefined;
    if (entry.expiresAt > Date.now() / 1000) return entry;
    this.#cache.delete(token);
    return undefined;
  }

  /**
   * The key set for the current JWKS, rebuilt only when the published kids
   * change. When a kid disappears (a key pruned or withdrawn), the cache is
   * dropped so no token signed with it stays accepted.
   */
  #keySet(): ReturnType<typeof createLocalJWKSet> {
    const jwks = this.#options.jwks();
    if (jwks === this.#jwksObject && this.#getKey) return this.#getKey;
    const kids = jwks.keys.map((key) => key.kid ?? '').sort();
    const joined = kids.join(' ');
    if (!this.#getKey || joined !== this.#kids) {
      const before = this.#kids ? this.#kids.split(' ') : [];
      if (before.some((kid) => !kids.includes(kid))) this.#cache.clear();
      this.#getKey = createLocalJWKSet({ keys: jwks.keys.map(toPublicJwk) });
      this.#kids = joined;
    }
    this.#jwksObject = jwks;
    return this.#getKey;
  }

  /**
   * The record of an exchanged JWT access token (src/oidc/adapter.ts
   * `recordJwtAccessToken`): it names the token's grant and disappears when
   * that grant, or the grant it was exchanged from, is revoked.
   *
   * @throws TokenRefused when the record is gone; the store's errors as they are.
   */
  async findRecord(provider: Provider, jws: string): Promise<{ grantId?: string; accountId?: string }> {
    this.stats.opaqueLookups += 1;
    const record = await provider.AccessToken.adapter.find(jws) as { grantId?: string; accountId?: string } | undefined;
    if (!record) throw new TokenRefused('the access token has been revoked');
    return record;
  }

  /**
   * An opaque access token (a user's, or a client's own from client
   * credentials), looked up in the store on every use so that revocation
   * takes effect at once.
   *
   * @throws TokenRefused when it is malformed, unknown, expired or revoked; the store's errors as they are.
   */
  async findOpaque(provider: Provider, token: string): Promise<OpaqueAccessToken> {
    if (!OPAQUE_TOKEN.test(token)) throw new TokenRefused(MALFORMED);
    this.stats.opaqueLookups += 1;
    const found = await provider.AccessToken.find(token) ?? await provider.ClientCredentials.find(token);
    if (!found?.clientId || !found.exp) throw new TokenRefused('the access token is unknown, expired or revoked');
    return found;
  }
}
