/**
 * One registration per initial access token (RFC 7591 §3), decided in the
 * store, as a registration policy (oidc-provider's
 * `features.registration.policies`) that every initial access token fedgate
 * makes names. oidc-provider finds the token, then runs its policies before
 * the client is added; it has no notion of using a token up, and deleting it
 * after a success would let two concurrent registrations with one token both
 * through. So the policy consumes the token in one atomic store step
 * (`Store.consume`, on any number of replicas): of concurrent registrations
 * exactly one goes on. A registration that fails afterwards (metadata
 * refused) gives the token back, from oidc-provider's
 * `registration_create.error` event, emitted before the answer is sent; a
 * successful one deletes it.
 */
import type Provider from 'oidc-provider';
import { errors, type KoaContextWithOIDC } from 'oidc-provider';
import { artifactKey } from '../grants/grants.ts';
import type { Store } from '../store/store.ts';

/** The policy every initial access token names. */
export const SINGLE_USE_POLICY = 'fedgate.single-use';

/** Creates an initial access token allowing one registration (as Keycloak's default count of 1). */
export async function createInitialAccessToken(provider: Provider, ttlSeconds: number): Promise<{ token: string; expiresAt: number }> {
  const iat = new provider.InitialAccessToken({ expiresIn: ttlSeconds, policies: [SINGLE_USE_POLICY] });
  const token = await iat.save();
  return { token, expiresAt: Math.floor(Date.now() / 1000) + ttlSeconds };
}

/** The token a registration consumed, and its value before, until the registration settles. */
const consumed = new WeakMap<object, { key: string; value: unknown }>();

type RegistrationPolicy = (ctx: KoaContextWithOIDC) => Promise<void>;

/** The registration policies, for `features.registration.policies`. */
export function singleUseRegistrationPolicies(store: Store): Record<string, RegistrationPolicy> {
  return {
    [SINGLE_USE_POLICY]: async (ctx) => {
      // A registration access token inherits its initial access token's policies: a client update uses nothing up.
      if (ctx.oidc.route !== 'registration') return;
      const iat = ctx.oidc.entities.InitialAccessToken;
      if (!iat?.jti) return;
      const key = artifactKey('InitialAccessToken', iat.jti);
      const used = await store.consume(key, Math.floor(Date.now() / 1000));
      // Used by a concurrent registration, or deleted since by a completed one: RFC 6750 §3.1, as for an unknown token.
      if (used.outcome !== 'consumed') throw new errors.InvalidToken('initial access token already used');
      consumed.set(ctx, { key, value: used.value });
    },
  };
}

/** After a registration: a successful one deletes its token, a failed one gives it back (with the time to live it had). */
export function settleInitialAccessTokens(provider: Provider, store: Store, onError: (err: Error) => void): void {
  const settle = (ctx: object, registered: boolean) => {
    const used = consumed.get(ctx);
    if (!used) return;
    consumed.delete(ctx);
    (registered ? store.delete(used.key) : store.replace(used.key, used.value)).catch(onError);
  };
  provider.on('registration_create.success', (ctx: KoaContextWithOIDC) => settle(ctx, true));
  provider.on('registration_create.error', (ctx: KoaContextWithOIDC) => settle(ctx, false));
}
