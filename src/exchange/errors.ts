/** Errors of the token exchange grant beyond oidc-provider's own. */
import { errors } from 'oidc-provider';

/**
 * invalid_grant with its reason: oidc-provider's InvalidGrant keeps the
 * reason out of the response; here it is the client's own token that is
 * refused, and knowing why (expired, revoked, wrong type) is what it needs.
 */
export const invalidGrant = (description: string) => new errors.CustomOIDCProviderError('invalid_grant', description);
