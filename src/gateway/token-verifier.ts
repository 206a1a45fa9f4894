/**
 * Access token verification for the gateway: fedgate's own RFC 9068 JWT
 * access tokens, checked locally against its published keys, and its opaque
 * tokens, looked up in the store through oidc-provider.
 *
 * Verified JWTs are cached by hash for their lifetime, so a busy service
 * costs one signature check per token rather than one per request; what the
 * token says about its account (username, groups, disabled) is re-read
 * whenever the policy version moves. Opaque tokens are looked up on every
 * request, so that revocation takes effect at once.
 */
import { createHash } from 'node:crypto';
import { createLocalJWKSet, errors as joseErrors, jwtVerify, type JWK, type JWTPayload } from 'jose';
import type Provider from 'oidc-provider';
import { effectiveGroups, type Account, type Accounts } from '../accounts/accounts.ts';
import { WLCG_ANY_AUDIENCE, type ResourceServerConfig } from '../config/schema.ts';
import { toPublicJwk } from '../keys/index.ts';
import { fromExchange } from '../grants/token-types.ts';
import { storageScopeProblem } from '../scopes/wlcg.ts';
import { BoundedMap } from '../util/bounded-map.ts';
import { InvalidToken, unavailable } from './errors.ts';

/** Accepted clock skew for `exp` and `nbf`, in seconds. */
export const CLOCK_TOLERANCE = 30;
/** Signing algorithms of fedgate's access tokens; anything else (none, HS*) is refused. */
export const ACCESS_TOKEN_ALGORITHMS = ['ES256', 'RS256'];
const OPAQUE_TOKEN = /^[A-Za-z0-9_-]{16,512}$/;

/** Proof-of-possession confirmation of a token (RFC 7800 `cnf`). */
export interface TokenBinding {
  /** RFC 9449 §6: JWK SHA-256 thumbprint of the DPoP key. */
  jkt?: string;
  /** RFC 8705 §3.1: SHA-256 thumbprint of the client certificate. */
  'x5t#S256'?: string;
}

/** Who a verified token speaks for. Immutable; a new object whenever something in it changes. */
export interface Identity {
  /** The token's `sub`: an account id for user tokens, the client id for client tokens. */
  subject: string;
  /** The account, for user tokens. */
  accountId?: string;
  username?: string;
  /** The account's direct groups (empty for client tokens). */
  groups: readonly string[];
  /** The direct groups and all their ancestors. */
  effectiveGroups: readonly string[];
  clientId: string;
  scopes: readonly string[];
  audience: readonly string[];
  /** Token expiry, epoch seconds. */
  expiresAt: number;
  cnf?: TokenBinding;
  format: 'jwt' | 'opaque';
  /** Issued by a token exchange (RFC 8693), or refreshed from an exchanged grant. */
  exchanged: boolean;
}

/** A verified token: its identity and base64url(SHA-256(token)) (the cache key and the DPoP `ath`). */
export interface VerifiedToken {
  identity: Identity;
  tokenHash: string;
}

/** Counters for tests and diagnostics. */
export interface TokenVerifierStats {
  /** JWT signature verifications (cache misses). */
  signatureVerifications: number;
  /** JWTs answered from the cache. */
  cacheHits: number;
  /** Account reads (new tokens, policy version changes, opaque tokens). */
  accountReads: number;
  /** Opaque token lookups. */
  opaqueLookups: number;
}

export interface TokenVerifierOptions {
  /** The issuer every JWT must name (`config.issuer`). */
  issuer: string;
  accounts: Accounts;
  /** fedgate's current public signing keys. */
  jwks(): { keys: JWK[] };
  /** The current oidc-provider instance (opaque tokens). */
  provider(): Provider;
  /** Changes whenever account states or groups may have changed. */
  policyVersion(): number;
  /** Most JWTs kept verified in memory; 0 disables the cache. */
  cacheSize: number;
  /**
   * A JWT's scopes in fedgate's terms: a storage with a base path gets its
   * paths relative to it (WLCG profile §2.2.3), policies name absolute ones.
   */
  policyScopes?: (audience: readonly string[], scopes: string[]) => string[];
}

/** What a token itself says, independent of its account. */
interface TokenFacts {
  subject: string;
  clientId: string;
  /** From an opaque token's record: the account it was issued for. */
  accountId: string | undefined;
  scopes: readonly string[];
  audience: readonly string[];
  expiresAt: number;
  cnf: TokenBinding | undefined;
  format: 'jwt' | 'opaque';
  /** An exchanged JWT (RFC 8693): recorded in the store, and valid only while its record (its grant) lives. */
  recorded?: boolean;
  /** Issued by a token exchange (an exchanged JWT, or an opaque token whose grant began with one). */
  exchanged: boolean;
}

/** A cached JWT: its facts, and its identity or refusal as of a policy version. */
interface CacheEntry {
  facts: TokenFacts;
  version: number;
  identity: Identity | undefined;
  refusal: string | undefined;
}

/** How a service matches token audiences. */
export interface AudiencePolicy {
  audience: string;
  /** The resource server uses the WLCG profile: tokens for the WLCG "any" audience are accepted too. */
  acceptsWlcgAny: boolean;
}

/** The audience rule of a service with audience `audience` (WLCG profile §2.1.3 for `wlcg` resource servers). */
export function audiencePolicy(audience: string, resourceServers: readonly ResourceServerConfig[]): AudiencePolicy {
  const rs = resourceServers.find((r) => r.audience === audience);
  return { audience, acceptsWlcgAny: rs?.profile === 'wlcg' };
}

/** Whether a token for `identity` may be used at a service with this audience rule. */
export function acceptsAudience(identity: Identity, policy: AudiencePolicy): boolean {
  return identity.audience.includes(policy.audience) || (policy.acceptsWlcgAny && identity.audience.includes(WLCG_ANY_AUDIENCE));
}

/** base64url(SHA-256(token)). */
export function tokenHash(token: string): string {
  return createHash('sha256').update(token).digest('base64url');
}

function describeJoseError(err: unknown): string {
  if (err instanceof joseErrors.JWTExpired) return 'the access token has expired';
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    switch (err.claim) {
      case 'iss': return 'the access token was issued by another issuer';
      case 'nbf': return 'the access token is not valid yet';
      case 'typ': return 'the access token is not an RFC 9068 JWT access token (typ)';
      default: return 'the access token lacks required claims or has malformed ones';
    }
  }
  if (err instanceof joseErrors.JOSEAlgNotAllowed || err instanceof joseErrors.JOSENotSupported) {
    return 'the access token is signed with an algorithm that is not accepted';
  }
  if (err instanceof joseErrors.JWKSNoMatchingKey || err instanceof joseErrors.JWKSMultipleMatchingKeys) {
    return 'the access token is signed with an unknown key';
  }
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return 'the access token signature is invalid';
  return 'the access token is malformed';
}

function stringList(value: unknown): string[] | undefined {
  if (typeof value === 'string') return [value];
  if (Array.isArray(value) && value.every((v) => typeof v === 'string')) return value as string[];
  return undefined;
}

/** A token's scopes, less storage scopes whose path is not in normal form (src/scopes): those grant nothing and are not passed on. */
function scopeList(scope: unknown): string[] {
  return typeof scope === 'string' ? scope.split(' ').filter((s) => s !== '' && storageScopeProblem(s) === undefined) : [];
}

function binding(jkt: unknown, x5t: unknown): TokenBinding | undefined {
  const cnf: TokenBinding = {};
  if (typeof jkt === 'string') cnf.jkt = jkt;
  if (typeof x5t === 'string') cnf['x5t#S256'] = x5t;
  return cnf.jkt || cnf['x5t#S256'] ? cnf : undefined;
}

/** Verifies access tokens and resolves who they speak for. */
export class TokenVerifier {
  readonly stats: TokenVerifierStats = { signatureVerifications: 0, cacheHits: 0, accountReads: 0, opaqueLookups: 0 };
  readonly #options: TokenVerifierOptions;
  readonly #cache: BoundedMap<string, CacheEntry>;
  #jwksObject: object | undefined;
  #kids: string[] = [];
  #getKey: ReturnType<typeof createLocalJWKSet> | undefined;

  constructor(options: TokenVerifierOptions) {
    this.#options = options;
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
   * Verifies `token` (a JWT or an opaque token) and resolves its identity.
   * The audience and any binding are the caller's to check.
   *
   * @throws InvalidToken for anything unacceptable (the description never contains the token),
   *   TemporarilyUnavailable when the store cannot be read.
   */
  async verify(token: string): Promise<VerifiedToken> {
    const hash = tokenHash(token);
    if (!isJwt(token)) {
      const facts = await this.#lookupOpaque(token);
      const resolved = await this.#resolve(facts);
      if (!resolved.identity) throw new InvalidToken(resolved.refusal!);
      return { identity: resolved.identity, tokenHash: hash };
    }

    const getKey = this.#keySet();
    const entry = this.#cache.get(hash);
    if (entry && entry.facts.expiresAt > Date.now() / 1000) {
      if (entry.facts.recorded) await this.#checkRecord(token);
      if (entry.version !== this.#options.policyVersion()) {
        const resolved = await this.#resolve(entry.facts);
        entry.version = resolved.version;
        entry.identity = resolved.identity;
        entry.refusal = resolved.refusal;
      } else {
        this.stats.cacheHits += 1;
      }
      if (!entry.identity) throw new InvalidToken(entry.refusal!);
      return { identity: entry.identity, tokenHash: hash };
    }
    if (entry) this.#cache.delete(hash);

    const facts = await this.#verifyJwt(token, getKey);
    if (facts.recorded) await this.#checkRecord(token);
    const resolved = await this.#resolve(facts);
    // Refusals are cached too: a disabled account's token costs no further signature checks.
    if (facts.expiresAt > Date.now() / 1000) this.#cache.set(hash, { facts, ...resolved });
    if (!resolved.identity) throw new InvalidToken(resolved.refusal!);
    return { identity: resolved.identity, tokenHash: hash };
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
    if (!this.#getKey || kids.join(' ') !== this.#kids.join(' ')) {
      if (this.#kids.some((kid) => !kids.includes(kid))) this.#cache.clear();
      this.#getKey = createLocalJWKSet({ keys: jwks.keys.map(toPublicJwk) });
      this.#kids = kids;
    }
    this.#jwksObject = jwks;
    return this.#getKey;
  }

  async #verifyJwt(token: string, getKey: ReturnType<typeof createLocalJWKSet>): Promise<TokenFacts> {
    this.stats.signatureVerifications += 1;
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, getKey, {
        issuer: this.#options.issuer,
        // RFC 9068 §4: the resource server checks typ, so an ID token is never taken for an access token.
        typ: 'at+jwt',
        algorithms: ACCESS_TOKEN_ALGORITHMS,
        clockTolerance: CLOCK_TOLERANCE,
        requiredClaims: ['exp', 'iat', 'sub', 'client_id', 'aud', 'jti'],
      }));
    } catch (err) {
      throw new InvalidToken(describeJoseError(err));
    }
    const audience = stringList(payload.aud);
    const clientId = payload.client_id;
    const cnf = payload.cnf as Record<string, unknown> | undefined;
    if (!audience || typeof clientId !== 'string' || typeof payload.sub !== 'string' || typeof payload.exp !== 'number'
      || (payload.scope !== undefined && typeof payload.scope !== 'string') || (cnf !== undefined && (typeof cnf !== 'object' || cnf === null))) {
      throw new InvalidToken('the access token lacks required claims or has malformed ones');
    }
    return {
      subject: payload.sub,
      clientId,
      accountId: undefined,
      scopes: this.#options.policyScopes ? this.#options.policyScopes(audience, scopeList(payload.scope)) : scopeList(payload.scope),
      audience,
      expiresAt: payload.exp,
      cnf: cnf ? binding(cnf.jkt, cnf['x5t#S256']) : undefined,
      format: 'jwt',
      exchanged: payload.exchanged === true,
      ...(payload.exchanged === true ? { recorded: true } : {}),
    };
  }

  /**
   * An exchanged token is refused once its record is gone: its grant, or
   * the grant it was exchanged from, was revoked (one store read per
   * request, as for opaque tokens; the signature stays cached).
   */
  async #checkRecord(token: string): Promise<void> {
    this.stats.opaqueLookups += 1;
    let record: unknown;
    try {
      record = await this.#options.provider().AccessToken.adapter.find(token);
    } catch (err) {
      throw unavailable(err, 'the access token cannot be checked right now');
    }
    if (!record) throw new InvalidToken('the access token has been revoked');
  }

  async #lookupOpaque(token: string): Promise<TokenFacts> {
    if (!OPAQUE_TOKEN.test(token)) throw new InvalidToken('the access token is malformed');
    this.stats.opaqueLookups += 1;
    let found: InstanceType<Provider['AccessToken']> | InstanceType<Provider['ClientCredentials']> | undefined;
    try {
      const provider = this.#options.provider();
      found = await provider.AccessToken.find(token) ?? await provider.ClientCredentials.find(token);
    } catch (err) {
      throw unavailable(err, 'the access token cannot be checked right now');
    }
    if (!found?.clientId || !found.exp) throw new InvalidToken('the access token is unknown, expired or revoked');
    const accountId = found.kind === 'AccessToken' ? found.accountId : undefined;
    return {
      subject: accountId ?? found.clientId,
      clientId: found.clientId,
      accountId,
      scopes: scopeList(found.scope),
      audience: stringList(found.aud) ?? [],
      expiresAt: found.exp,
      cnf: binding(found.jkt, found['x5t#S256']),
      format: 'opaque',
      exchanged: found.kind === 'AccessToken' && fromExchange(found.gty),
    };
  }

  async #readAccount(id: string): Promise<Account | undefined> {
    this.stats.accountReads += 1;
    try {
      return await this.#options.accounts.findById(id);
    } catch (err) {
      throw unavailable(err, 'the access token cannot be checked right now');
    }
  }

  /**
   * The identity behind a token as of now. User tokens are those whose
   * account resolves (`sub` of a JWT, `accountId` of an opaque token); a JWT
   * whose `sub` is its `client_id` and no account is a client token. Any
   * other token whose account is gone or disabled is refused.
   */
  async #resolve(facts: TokenFacts): Promise<{ version: number; identity: Identity | undefined; refusal: string | undefined }> {
    // Read before the account: a change during the read makes the next request read again.
    const version = this.#options.policyVersion();
    const accountId = facts.format === 'opaque' ? facts.accountId : facts.subject;
    const account = accountId ? await this.#readAccount(accountId) : undefined;
    const common = {
      subject: facts.subject,
      clientId: facts.clientId,
      scopes: facts.scopes,
      audience: facts.audience,
      expiresAt: facts.expiresAt,
      format: facts.format,
      exchanged: facts.exchanged,
      ...(facts.cnf ? { cnf: facts.cnf } : {}),
    };
    if (account) {
      if (account.disabled) return { version, identity: undefined, refusal: 'the account behind the access token is disabled' };
      const identity: Identity = Object.freeze({
        ...common,
        accountId: account.id,
        username: account.username,
        groups: Object.freeze([...account.groups]),
        effectiveGroups: Object.freeze(effectiveGroups(account.groups)),
      });
      return { version, identity, refusal: undefined };
    }
    const isClientToken = facts.format === 'opaque' ? !facts.accountId : facts.subject === facts.clientId;
    if (!isClientToken) return { version, identity: undefined, refusal: 'the account behind the access token no longer exists' };
    return { version, identity: Object.freeze({ ...common, groups: [], effectiveGroups: [] }), refusal: undefined };
  }
}

/** Three dot-separated parts: a JWS in compact serialisation (a JWE has five, an opaque token none). */
function isJwt(token: string): boolean {
  const first = token.indexOf('.');
  if (first === -1) return false;
  const second = token.indexOf('.', first + 1);
  return second !== -1 && token.indexOf('.', second + 1) === -1;
}
