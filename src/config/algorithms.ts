/**
 * The algorithms fedgate signs with, and the only ones it accepts on its own
 * tokens (src/tokens). Listed here once: the key store generates one key of
 * each, the configuration's `signingAlg` options and oidc-provider's
 * `enabledJWA` read it.
 */
export const SIGNING_ALGORITHMS = ['ES256', 'RS256'] as const;

/** One of {@link SIGNING_ALGORITHMS}. */
export type SigningAlg = typeof SIGNING_ALGORITHMS[number];
