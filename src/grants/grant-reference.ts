import { createHash } from 'node:crypto';

/**
 * The claim of a user's JWT access token that names its grant, without
 * giving away the grant's id (a store key): token exchange decides from
 * exactly that grant whether the user granted offline_access, and ties what
 * it issues to it (not to every grant the user has with the client).
 */
export const GRANT_REFERENCE_CLAIM = 'fedgate_grant';

/** The reference to a grant carried in {@link GRANT_REFERENCE_CLAIM}: a hash of its id (16 bytes, base64url). */
export function grantReference(grantId: string): string {
  return createHash('sha256').update(`fedgate grant reference\n${grantId}`).digest('base64url').slice(0, 22);
}
