/**
 * Access token verification for the gateway: fedgate's own RFC 9068 JWT
 * access tokens, checked locally against its published keys, and its opaque
 * tokens, looked up in the store through oidc-provider, both through the one
 * verifier of fedgate's tokens (src/tokens/own-tokens.ts).
 *
 * Verified JWTs are cached for their lifetime, so a busy service
 * costs one signature check per token rather than one per request; what the
 * token says about its account (username, groups, disabled) is re-read
 * whenever the policy version moves. Opaque tokens are looked up on every
 * request, so that revocation takes effect at once.
 */
import type { JWK } from 'jose';
import type Provider from 'oidc-provider';
import { effectiveGroups, type Account, type Accounts } from '../accounts/accounts.ts';
import type { ResourceServerConfig } from '../config/schema.ts';
import { fromExchange } from '../grants/token-types.ts';
import {
  ACCESS_TOKEN_TYP, isCompactJws, OwnTokens, scopeList, stringList, tokenBinding, tokenHash, TokenRefused,
  type AccessTokenClaims, type TokenBinding, type VerifiedJwt,
} from '../tokens/own-tokens.ts';
import { InvalidToken, unavailable } from './errors.ts';
import { WLCG_ANY_AUDIENCE } from '../config/names.ts';

export type { TokenBinding } from '../tokens/own-tokens.ts';

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

/** A verified token: its identity and base64url(SHA-256(token)) (the DPoP `ath`, computed when first read). */
export interface VerifiedToken {
  identity: Identity;
  readonly tokenHash: string;
}

function verified(identity: Identity, token: string): VerifiedToken {
  let hash: string | undefined;
  return { identity, get tokenHash() { return hash ??= tokenHash(token); } };
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

/** What the gateway keeps with a cached JWT: its facts, and its identity or refusal as of a policy version. */
interface Memo {
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

/** Verifies access tokens (through the one verifier, src/tokens) and resolves who they speak for. */
export class TokenVerifier {
  readonly stats: TokenVerifierStats = { signatureVerifications: 0, cacheHits: 0, accountReads: 0, opaqueLookups: 0 };
  readonly #options: TokenVerifierOptions;
  readonly #tokens: OwnTokens<Memo>;

  constructor(options: TokenVerifierOptions) {
    this.#options = options;
    this.#tokens = new OwnTokens({ issuer: options.issuer, jwks: options.jwks, cacheSize: options.cacheSize, stats: this.stats });
  }

  /** Number of cached JWTs. */
  get cacheSize(): number {
    return this.#tokens.cacheSize;
  }

  /** Drops every cached token. */
  clear(): void {
    this.#tokens.clear();
  }

  /**
   * Verifies `token` (a JWT or an opaque token) and resolves its identity.
   * The audience and any binding are the caller's to check.
   *
   * @throws InvalidToken for anything unacceptable (the description never contains the token),
   *   TemporarilyUnavailable when the store cannot be read.
   */
  async verify(token: string): Promise<VerifiedToken> {
    // A JWT verified before is answered from the cache before anything else is looked at.
    const jwt = this.#tokens.cached(token, ACCESS_TOKEN_TYP) ?? (isCompactJws(token) ? await this.#verifyJwt(token) : undefined);
    if (!jwt) {
      const facts = await this.#lookupOpaque(token);
      const resolved = await this.#resolve(facts);
      if (!resolved.identity) throw new InvalidToken(resolved.refusal!);
      return verified(resolved.identity, token);
    }
    const facts = jwt.memo?.facts ?? this.#facts(jwt.access!);
    if (facts.recorded) await this.#checkRecord(token);
    let memo = jwt.memo;
    if (memo && memo.version === this.#options.policyVersion()) {
      this.stats.cacheHits += 1;
    } else {
      // Refusals are kept too: a disabled account's token costs no further signature checks.
      memo = { facts, ...await this.#resolve(facts) };
      jwt.memo = memo;
    }
    if (!memo.identity) throw new InvalidToken(memo.refusal!);
    return verified(memo.identity, token);
  }

  async #verifyJwt(token: string): Promise<VerifiedJwt<Memo>> {
    try {
      return await this.#tokens.verifyJwt(token, ACCESS_TOKEN_TYP);
    } catch (err) {
      throw err instanceof TokenRefused ? new InvalidToken(err.message) : err;
    }
  }

  /** What a verified JWT access token says, in the gateway's terms. */
  #facts(claims: AccessTokenClaims): TokenFacts {
    const { policyScopes } = this.#options;
    return {
      subject: claims.subject,
      clientId: claims.clientId,
      accountId: undefined,
      scopes: policyScopes ? policyScopes(claims.audience, claims.scopes) : claims.scopes,
      audience: claims.audience,
      expiresAt: claims.expiresAt,
      cnf: claims.cnf,
      format: 'jwt',
      exchanged: claims.exchanged,
      ...(claims.exchanged ? { recorded: true } : {}),
    };
  }

  /**
   * An exchanged token is refused once its record is gone: its grant, or
   * the grant it was exchanged from, was revoked (one store read per
   * request, as for opaque tokens; the signature stays cached).
   */
  async #checkRecord(token: string): Promise<void> {
    try {
      await this.#tokens.findRecord(this.#options.provider(), token);
    } catch (err) {
      if (err instanceof TokenRefused) throw new InvalidToken(err.message);
      throw unavailable(err, 'the access token cannot be checked right now');
    }
  }

  async #lookupOpaque(token: string): Promise<TokenFacts> {
    let found;
    try {
      found = await this.#tokens.findOpaque(this.#options.provider(), token);
    } catch (err) {
      if (err instanceof TokenRefused) throw new InvalidToken(err.message);
      throw unavailable(err, 'the access token cannot be checked right now');
    }
    const accountId = found.kind === 'AccessToken' ? found.accountId : undefined;
    return {
      subject: accountId ?? found.clientId!,
      clientId: found.clientId!,
      accountId,
      scopes: scopeList(found.scope),
      audience: stringList(found.aud) ?? [],
      expiresAt: found.exp!,
      cnf: tokenBinding(found.jkt, found['x5t#S256']),
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
