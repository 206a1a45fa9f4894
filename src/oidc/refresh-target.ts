/**
 * The resource check of a refresh, made before the refresh token is used up.
 *
 * oidc-provider's refresh token grant consumes (rotates) the token, and only
 * then resolves the resource indicator (RFC 8707 §2.2) against the grant
 * and asks for the resource server. A refresh asking a resource the grant
 * does not cover was refused after the token was spent, so the client's
 * next, correct refresh counted as a reuse and revoked the grant.
 * `rotateRefreshToken` is the documented hook oidc-provider calls right
 * before it consumes the token, with the token and grant in `ctx.oidc`: this
 * check runs there, with oidc-provider's own rules (one resource: the first
 * asked, else the granted one; it must be among the token's resources), and
 * refuses with the same `invalid_target`. The scope check (the token must
 * hold every scope asked) already runs before consumption in oidc-provider.
 */
import { errors, type KoaContextWithOIDC } from 'oidc-provider';

/**
 * Throws `invalid_target` when the refresh in `ctx` asks a resource its
 * refresh token does not cover, or one `isKnown` no longer knows.
 */
export function assertRefreshTarget(ctx: KoaContextWithOIDC, isKnown: (resource: string) => boolean): void {
  const token = ctx.oidc.entities.RefreshToken;
  if (!token) return;
  const asked = (ctx.oidc.params as Record<string, unknown> | undefined)?.resource;
  const candidate = asked === undefined || asked === '' ? token.resource : asked;
  const resource = Array.isArray(candidate) ? candidate[0] : candidate;
  if (typeof resource !== 'string' || resource === '') return;
  if (!token.resourceIndicators.has(resource)) throw new errors.InvalidTarget('the refresh token was not issued for the requested resource');
  if (!isKnown(resource)) throw new errors.InvalidTarget('unknown resource server');
}
