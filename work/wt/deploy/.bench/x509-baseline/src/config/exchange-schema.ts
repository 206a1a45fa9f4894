import { z } from 'zod';

const absoluteUri = z.string().refine((v) => URL.canParse(v), 'must be an absolute URI');
const httpsOrLoopback = z.string().refine((v) => {
  const url = URL.parse(v);
  if (!url) return false;
  return url.protocol === 'https:' || (url.protocol === 'http:' && ['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname));
}, 'must be an https URL (http only on loopback)');

/**
 * A neighbouring federation's token issuer whose JWTs may be exchanged
 * (RFC 8693 `subject_token` / `actor_token`), verified against its JWKS.
 */
export const trustedIssuerSchema = z.object({
  /** The `iss` its tokens carry. */
  issuer: absoluteUri,
  /** Where its public keys are published (fetched and cached; refreshed on an unknown `kid`). */
  jwksUri: httpsOrLoopback,
  /** The `aud` its tokens must carry to be exchanged here; default: fedgate's issuer. */
  audience: z.array(z.string().min(1)).min(1).optional(),
  /** Accepted signature algorithms. */
  algorithms: z.array(z.enum(['ES256', 'ES384', 'RS256', 'PS256', 'EdDSA'])).min(1).default(['ES256', 'RS256']),
  /**
   * How a token's subject becomes a local account:
   * - `linked`: an account that linked this issuer's `sub` (account page / admin);
   * - `username`: the account whose username equals the value of `claim`;
   * - `email`: the account whose email equals the value of `claim`.
   */
  accountMapping: z.object({
    type: z.enum(['linked', 'username', 'email']).default('linked'),
    /** The claim read for `username` / `email` mapping. */
    claim: z.string().min(1).default('sub'),
  }).strict().prefault({}),
  /** Display name in audit events and errors. */
  name: z.string().max(200).optional(),
}).strict();

export const tokenExchangeSchema = z.object({
  /** External issuers whose JWTs may be exchanged. */
  trustedIssuers: z.array(trustedIssuerSchema).default([]),
  /** Seconds a fetched external JWKS is used before it is fetched again. */
  jwksCacheSeconds: z.number().int().positive().max(86_400).default(600),
  /** Longest `act` chain accepted (each exchange adds one hop). */
  maxDelegationDepth: z.number().int().min(1).max(32).default(8),
}).strict();

export type TrustedIssuerConfig = z.infer<typeof trustedIssuerSchema>;
export type TokenExchangeConfig = z.infer<typeof tokenExchangeSchema>;
