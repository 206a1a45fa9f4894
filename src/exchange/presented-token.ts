/**
 * The tokens a token exchange request presents (RFC 8693 §2.1
 * `subject_token`, `actor_token`): fedgate's own access tokens (JWT and
 * opaque), refresh tokens and ID tokens, and JWTs of trusted external
 * issuers, each resolved to who it speaks for, what it carries, and the
 * grants it belongs to (so that exchanged tokens die with them).
 */
import { absentUnlessUnavailable } from '../store/errors.ts';
import type { JWK, JWTPayload } from 'jose';
import type Provider from 'oidc-provider';
import type { Account, Accounts } from '../accounts/accounts.ts';
import type { Store } from '../store/store.ts';
import { BoundedMap } from '../util/bounded-map.ts';
import { grantsOf, type StoredGrant } from '../grants/grants.ts';
import { GRANT_REFERENCE_CLAIM, grantReference } from '../grants/grant-reference.ts';
import {
  ACCESS_TOKEN_TYP, isCompactJws, isOpaqueToken, MALFORMED, MAX_TOKEN_LENGTH, OwnTokens, scopeList, TokenRefused,
} from '../tokens/own-tokens.ts';
import { ExternalTokenError, type TrustedIssuers } from './trusted-issuers.ts';
import { fromExchange, type TokenTypeName } from '../grants/token-types.ts';
import { FedgateError } from '../util/errors.ts';

/**
 * A presented token that cannot be used; the message is safe to return as
 * `error_description`. Refusals of the one verifier of fedgate's tokens
 * (TokenRefused) are answered the same way.
 */
export class UnusableToken extends TokenRefused {}

/** The token type given does not describe the token presented (RFC 8693 §2.1: the type must match). */
export class TokenTypeMismatch extends FedgateError {
  constructor(message: string) {
    // Not exposed: the exchange answers it as oidc-provider's invalid_request (exchange/parties.ts).
    super('invalid_request', message);
  }
}

/** A `act` / `may_act` value (RFC 8693 §4.1, §4.4). */
export type ActorClaim = { sub: string; iss?: string; act?: ActorClaim } & Record<string, unknown>;

/** What a presented token says, after verification. */
export interface PresentedToken {
  /** What the token actually is. */
  type: TokenTypeName;
  origin: 'fedgate' | 'external';
  /** The issuer (fedgate's own, or the external one). */
  iss: string;
  /** The token's subject as it states it (`sub`; a client id for client tokens). */
  sub: string;
  /** The local account it speaks for; absent for client tokens. */
  account?: Account;
  /** The client it was issued to (client_id, azp or an ID token's audience). */
  clientId?: string;
  scopes: string[];
  /** Expiry, epoch seconds. */
  exp: number;
  /** Grants whose revocation must end anything exchanged from this token. */
  grantIds: string[];
  /**
   * Whether the user's grant behind it included offline_access; undefined
   * when the token does not say which of the user's grants it was issued
   * under (a JWT from before grant references): then no refresh token comes of it.
   */
  offlineAccess: boolean | undefined;
  act?: ActorClaim;
  mayAct?: ActorClaim;
}

export interface PresentedTokenOptions {
  issuer: string;
  store: Store;
  accounts: Accounts;
  provider: Provider;
  /** fedgate's signing keys (private JWKs are reduced to their public parts). */
  jwks: { keys: object[] };
  trustedIssuers: TrustedIssuers;
  /**
   * A JWT's scopes in fedgate's terms: tokens for a storage with a base path
   * carry paths relative to it (WLCG profile §2.2.3); exchange decides on absolute ones.
   */
  policyScopes?: (audience: unknown, scopes: string[]) => string[];
}

function actorClaim(value: unknown, depth = 0): ActorClaim | undefined {
  if (depth > 32 || typeof value !== 'object' || value === null || typeof (value as { sub?: unknown }).sub !== 'string') return undefined;
  const claim = value as ActorClaim;
  const nested = claim.act === undefined ? undefined : actorClaim(claim.act, depth + 1);
  if (claim.act !== undefined && !nested) return undefined;
  return claim;
}

/** Verified JWTs (and users' grant ids) kept per provider instance: a service exchanges the same user's token, with its same own token, many times. */
const VERIFIED_CACHE_SIZE = 10_000;

/** Resolves presented tokens; one per provider instance (its keys). */
export class PresentedTokens {
  readonly #options: PresentedTokenOptions;
  /**
   * fedgate's own tokens, verified by the one verifier (its JWTs cached once
   * verified; what a token says is kept, its grant and account are re-read
   * every time).
   */
  readonly #own: OwnTokens;

  constructor(options: PresentedTokenOptions) {
    this.#options = options;
    const jwks = { keys: options.jwks.keys as JWK[] };
    this.#own = new OwnTokens({ issuer: options.issuer, jwks: () => jwks, cacheSize: VERIFIED_CACHE_SIZE });
  }

  /**
   * Verifies `value`, declared as `declared`, for client `clientId`.
   *
   * @throws TokenTypeMismatch when the token is not of the declared type,
   *   UnusableToken when it is invalid, expired, revoked or speaks for no usable account.
   */
  async resolve(value: string, declared: TokenTypeName, clientId: string): Promise<PresentedToken> {
    if (typeof value !== 'string' || value.length > MAX_TOKEN_LENGTH) throw new UnusableToken(MALFORMED);
    if (declared === 'refresh_token') {
      if (isCompactJws(value)) throw new TokenTypeMismatch('a JWT was presented as a refresh token');
      return this.#refreshToken(value, clientId);
    }
    if (!isCompactJws(value)) {
      if (declared !== 'access_token') throw new TokenTypeMismatch(`an opaque token was presented as ${declared === 'jwt' ? 'a JWT' : 'an ID token'}`);
      return this.#opaqueAccessToken(value);
    }
    const { header, claims } = this.#own.decode(value);
    const isAccessToken = typeof header.typ === 'string' && header.typ.toLowerCase().replace(/^application\//, '') === ACCESS_TOKEN_TYP;
    if (declared === 'access_token' && !isAccessToken && claims.iss === this.#options.issuer) {
      throw new TokenTypeMismatch('the token is not an access token (RFC 9068 typ at+jwt)');
    }
    if (declared === 'id_token' && isAccessToken) throw new TokenTypeMismatch('an access token was presented as an ID token');
    if (claims.iss === this.#options.issuer) {
      if (isAccessToken) return this.#jwtAccessToken(value);
      // Of fedgate's other JWTs only ID tokens are exchangeable (not logout tokens, signed introspection or userinfo responses).
      if (header.typ !== undefined && header.typ.toUpperCase() !== 'JWT') {
        throw new UnusableToken('the token is neither an access token nor an ID token of this issuer');
      }
      return this.#idToken(value);
    }
    if (typeof claims.iss !== 'string' || !this.#options.trustedIssuers.has(claims.iss)) {
      throw new UnusableToken('the token was issued by an issuer this server does not trust');
    }
    return this.#external(value, claims.iss, declared);
  }

  /** Grant ids last found per user and client: read in the same round trip as the user's grant index next time. */
  readonly #lastGrants = new BoundedMap<string, readonly string[]>(VERIFIED_CACHE_SIZE);

  async #grantsOf(accountId: string, clientId: string): Promise<StoredGrant[]> {
    const key = `${accountId}\u0000${clientId}`;
    const grants = await grantsOf(this.#options.store, accountId, clientId, this.#lastGrants.get(key));
    this.#lastGrants.set(key, grants.map((g) => g.id));
    return grants;
  }

  async #account(id: string): Promise<Account> {
    const account = await this.#options.accounts.findById(id);
    if (!account) throw new UnusableToken('the account behind the token no longer exists');
    if (account.disabled) throw new UnusableToken('the account behind the token is disabled');
    return account;
  }

  async #grant(grantId: string | undefined): Promise<{ offlineAccess: boolean } | undefined> {
    if (!grantId) return undefined;
    const grant = await this.#options.provider.Grant.find(grantId).catch(absentUnlessUnavailable);
    if (!grant) return undefined;
    return { offlineAccess: scopeList(grant.getOIDCScope()).includes('offline_access') };
  }

  async #opaqueAccessToken(value: string): Promise<PresentedToken> {
    const token = await this.#own.findOpaque(this.#options.provider, value);
    if (token.kind === 'ClientCredentials') {
      return { type: 'access_token', origin: 'fedgate', iss: this.#options.issuer, sub: token.clientId!, clientId: token.clientId!, scopes: scopeList(token.scope), exp: token.exp!, grantIds: [], offlineAccess: false };
    }
    const at = token as InstanceType<Provider['AccessToken']>;
    const grant = await this.#grant(at.grantId);
    if (!grant || !at.accountId) throw new UnusableToken('the grant behind the token has been revoked');
    const extra = (at.extra ?? {}) as Record<string, unknown>;
    const act = actorClaim(extra.act);
    const mayAct = actorClaim(extra.may_act);
    return {
      type: 'access_token', origin: 'fedgate', iss: this.#options.issuer, sub: at.accountId, account: await this.#account(at.accountId),
      clientId: at.clientId, scopes: scopeList(at.scope), exp: at.exp!, grantIds: [at.grantId!], offlineAccess: grant.offlineAccess,
      ...(act ? { act } : {}), ...(mayAct ? { mayAct } : {}),
    };
  }

  async #jwtAccessToken(value: string): Promise<PresentedToken> {
    const { payload, access } = await this.#own.verifyJwt(value, ACCESS_TOKEN_TYP);
    const { clientId, subject: sub } = access!;
    const scopes = this.#options.policyScopes ? this.#options.policyScopes(access!.audience, access!.scopes) : access!.scopes;
    const base = { type: 'access_token' as const, origin: 'fedgate' as const, iss: this.#options.issuer, sub, clientId, scopes, exp: access!.expiresAt };
    const act = actorClaim(payload.act);
    const mayAct = actorClaim(payload.may_act);
    const actors = { ...(act ? { act } : {}), ...(mayAct ? { mayAct } : {}) };
    if (access!.exchanged) {
      // An exchanged token is recorded (src/grants/grants.ts): its record names its grant and disappears when that grant is revoked.
      const record = await this.#own.findRecord(this.#options.provider, value);
      if (!record.grantId || record.accountId !== sub) throw new UnusableToken('the access token has been revoked');
      const grant = await this.#grant(record.grantId);
      if (!grant) throw new UnusableToken('the grant behind the token has been revoked');
      return { ...base, account: await this.#account(sub), grantIds: [record.grantId], offlineAccess: grant.offlineAccess, ...actors };
    }
    // oidc-provider sets sub to the client id exactly for tokens a client got for itself (client credentials).
    if (sub === clientId) return { ...base, grantIds: [], offlineAccess: false, ...actors };
    const [account, grants] = await Promise.all([this.#options.accounts.findById(sub), this.#grantsOf(sub, clientId)]);
    if (!account) throw new UnusableToken('the account behind the token no longer exists');
    if (account.disabled) throw new UnusableToken('the account behind the token is disabled');
    const own = ownGrants(payload, grants);
    if (!own.grants.length) throw new UnusableToken('the grant behind the token has been revoked');
    return { ...base, account, grantIds: own.grants.map((g) => g.id), offlineAccess: own.offlineAccess, ...actors };
  }

  async #idToken(value: string): Promise<PresentedToken> {
    const { payload } = await this.#own.verifyJwt(value, undefined);
    const audience = typeof payload.aud === 'string' ? [payload.aud] : Array.isArray(payload.aud) ? payload.aud : [];
    const clientId = typeof payload.azp === 'string' ? payload.azp : audience.length === 1 ? audience[0] : undefined;
    if (!clientId || typeof payload.sub !== 'string' || typeof payload.exp !== 'number') throw new UnusableToken('the ID token lacks required claims');
    const [account, grants] = await Promise.all([this.#account(payload.sub), this.#grantsOf(payload.sub, clientId)]);
    const own = ownGrants(payload, grants);
    if (!own.grants.length) throw new UnusableToken('the grant behind the ID token has been revoked');
    // An ID token states no scopes: what the user granted that client (in the grant it names) stands in for them.
    const scopes = [...new Set(own.grants.flatMap((g) => g.scopes))];
    const act = actorClaim(payload.act);
    return {
      type: 'id_token', origin: 'fedgate', iss: this.#options.issuer, sub: payload.sub, account, clientId, scopes, exp: payload.exp,
      grantIds: own.grants.map((g) => g.id), offlineAccess: own.offlineAccess, ...(act ? { act } : {}),
    };
  }

  async #refreshToken(value: string, clientId: string): Promise<PresentedToken> {
    if (!isOpaqueToken(value)) throw new UnusableToken(MALFORMED);
    const token = await this.#options.provider.RefreshToken.find(value).catch(absentUnlessUnavailable);
    if (!token || token.isExpired) throw new UnusableToken('the refresh token is unknown, expired or revoked');
    // A refresh token is a credential of the client it was issued to: only that client may exchange it.
    if (token.clientId !== clientId) throw new UnusableToken('the refresh token was not issued to this client');
    if (token.consumed) throw new UnusableToken('the refresh token has already been used');
    const grant = await this.#grant(token.grantId);
    if (!grant || !token.accountId) throw new UnusableToken('the grant behind the refresh token has been revoked');
    const act = fromExchange(token.gty) ? await this.#exchangeAct(token.grantId!) : undefined;
    return {
      type: 'refresh_token', origin: 'fedgate', iss: this.#options.issuer, sub: token.accountId, account: await this.#account(token.accountId),
      clientId: token.clientId, scopes: scopeList(token.scope), exp: token.exp!, grantIds: [token.grantId!], offlineAccess: grant.offlineAccess,
      ...(act ? { act } : {}),
    };
  }

  async #exchangeAct(grantId: string): Promise<ActorClaim | undefined> {
    const record = await this.#options.store.get<{ act?: unknown }>(exchangeRecordKey(grantId));
    return actorClaim(record?.act);
  }

  async #external(value: string, issuer: string, declared: TokenTypeName): Promise<PresentedToken> {
    let verified;
    try {
      verified = await this.#options.trustedIssuers.verify(value, issuer);
    } catch (err) {
      if (err instanceof ExternalTokenError) throw new UnusableToken(err.message);
      throw err;
    }
    const { payload, account } = verified;
    const clientId = typeof payload.client_id === 'string' ? payload.client_id : typeof payload.azp === 'string' ? payload.azp : undefined;
    const scopes = scopeList(payload.scope ?? payload.scp);
    const act = actorClaim(payload.act);
    const mayAct = actorClaim(payload.may_act);
    return {
      type: declared, origin: 'external', iss: issuer, sub: String(payload.sub), ...(account ? { account } : {}), ...(clientId ? { clientId } : {}),
      scopes, exp: payload.exp!, grantIds: [], offlineAccess: scopes.includes('offline_access'),
      ...(act ? { act } : {}), ...(mayAct ? { mayAct } : {}),
    };
  }
}

/**
 * The grant(s) a user's JWT (access or ID token) of this issuer belongs to,
 * among the user's live grants with its client. The token names its grant
 * ({@link GRANT_REFERENCE_CLAIM}): that grant alone decides offline_access.
 * A token from before grant references is tied to every live grant (so that
 * revoking any of them ends what is exchanged from it), but which one it came
 * from is unknown: offline_access is then undecided, never guessed.
 */
function ownGrants(payload: JWTPayload, grants: readonly StoredGrant[]): { grants: readonly StoredGrant[]; offlineAccess: boolean | undefined } {
  const reference = payload[GRANT_REFERENCE_CLAIM];
  if (typeof reference !== 'string') return { grants, offlineAccess: undefined };
  const own = grants.filter((g) => grantReference(g.id) === reference);
  return { grants: own, offlineAccess: own.length > 0 && own.every((g) => g.offlineAccess) };
}

/** Where the `act` chain and origin of an exchanged grant are kept (read for tokens refreshed from it). */
export const exchangeRecordKey = (grantId: string) => `oidc:exchange:${grantId}`;
