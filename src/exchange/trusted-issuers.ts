/**
 * JWTs from neighbouring federations' token issuers (`tokenExchange.trustedIssuers`),
 * verified against each issuer's published JWKS and mapped onto a local account.
 */
import { createRemoteJWKSet, errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import type { Account, Accounts } from '../accounts/accounts.ts';
import type { TrustedIssuerConfig } from '../config/exchange-schema.ts';
import { FedgateError } from '../util/errors.ts';
import { CLOCK_TOLERANCE } from '../tokens/own-tokens.ts';

/** Why an external token was refused; `message` is safe to show to the client. */
export class ExternalTokenError extends FedgateError {
  constructor(message: string) {
    super('invalid_token', message);
  }
}

/** A verified external token and the account it maps to. */
export interface ExternalToken {
  issuer: TrustedIssuerConfig;
  payload: JWTPayload;
  /** The local account its subject maps to, if any (an actor, a service, may have none). */
  account: Account | undefined;
}

export interface TrustedIssuersOptions {
  issuers: readonly TrustedIssuerConfig[];
  /** Audiences accepted when an issuer lists none: fedgate's issuer. */
  defaultAudience: string;
  jwksCacheSeconds: number;
  accounts: Accounts;
}

function describe(err: unknown): string {
  if (err instanceof joseErrors.JWTExpired) return 'the token has expired';
  if (err instanceof joseErrors.JWTClaimValidationFailed) return `the token's ${err.claim} claim is not acceptable`;
  if (err instanceof joseErrors.JOSEAlgNotAllowed || err instanceof joseErrors.JOSENotSupported) return 'the token is signed with an algorithm that is not accepted';
  if (err instanceof joseErrors.JWKSNoMatchingKey) return 'the token is signed with a key its issuer does not publish';
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return 'the token signature is invalid';
  if (err instanceof joseErrors.JWKSTimeout || err instanceof joseErrors.JWKSInvalid) return 'the issuer\'s keys cannot be fetched right now';
  return 'the token is malformed';
}

/** The trusted external issuers, each with its cached remote key set. */
export class TrustedIssuers {
  readonly #byIssuer = new Map<string, { config: TrustedIssuerConfig; keys: ReturnType<typeof createRemoteJWKSet> }>();
  readonly #options: TrustedIssuersOptions;

  constructor(options: TrustedIssuersOptions) {
    this.#options = options;
    for (const config of options.issuers) {
      this.#byIssuer.set(config.issuer, {
        config,
        keys: createRemoteJWKSet(new URL(config.jwksUri), { cacheMaxAge: options.jwksCacheSeconds * 1000, cooldownDuration: 30_000, timeoutDuration: 5_000 }),
      });
    }
  }

  /** Whether `issuer` is one of the trusted ones. */
  has(issuer: string): boolean {
    return this.#byIssuer.has(issuer);
  }

  /**
   * Verifies an external JWT from `issuer` and finds its local account, if it has one.
   *
   * @throws ExternalTokenError when the token or its subject is not acceptable.
   */
  async verify(jws: string, issuer: string): Promise<ExternalToken> {
    const entry = this.#byIssuer.get(issuer);
    if (!entry) throw new ExternalTokenError('the token was issued by an issuer this server does not trust');
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(jws, entry.keys, {
        issuer,
        audience: entry.config.audience ?? [this.#options.defaultAudience],
        algorithms: entry.config.algorithms,
        clockTolerance: CLOCK_TOLERANCE,
        requiredClaims: ['exp', 'sub'],
      }));
    } catch (err) {
      throw new ExternalTokenError(describe(err));
    }
    const account = await this.#account(entry.config, payload);
    if (account?.disabled) throw new ExternalTokenError('the account behind the token is disabled');
    return { issuer: entry.config, payload, account };
  }

  async #account(config: TrustedIssuerConfig, payload: JWTPayload): Promise<Account | undefined> {
    const { type, claim } = config.accountMapping;
    if (type === 'linked') return this.#options.accounts.findByIdentity('oidc', config.issuer, String(payload.sub));
    const value = payload[claim];
    if (typeof value !== 'string' || !value) return undefined;
    if (type === 'username') return this.#options.accounts.findByUsername(value);
    // Email mapping: only an address the issuer vouches for, and only when exactly one account has it.
    if (payload.email_verified === false) return undefined;
    const matches = (await this.#options.accounts.list()).filter((a) => a.email?.toLowerCase() === value.toLowerCase());
    return matches.length === 1 ? matches[0] : undefined;
  }
}
