import { randomBytes } from 'node:crypto';
import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import type { Account, Accounts } from '../accounts/accounts.ts';
import type { Store } from '../store/store.ts';
import type { FederationHooks } from './types.ts';

/** A login an identity bridge finished, waiting for the browser to come back to its interaction. */
export interface PendingFederatedLogin {
  uid: string;
  accountId: string;
  amr: string;
}

const pendingKey = (key: string) => `federated-login:${key}`;
const PENDING_TTL_SECONDS = 120;

/**
 * The hooks the identity bridges finish with.
 *
 * A bridge's last step (the SAML ACS, a certificate check) runs outside the
 * interaction's path, where oidc-provider's interaction cookie is not sent.
 * So a finished login is parked in the store under a one-time key and the
 * browser is sent to `/interaction/<uid>/federated`, where the cookie proves
 * it is the browser that started the interaction (a link someone else sent
 * cannot log a victim in to the sender's account).
 */
export function federationHooks(deps: { store: Store; accounts: Accounts; provider: () => Provider }): FederationHooks {
  return {
    async finishLogin(ctx: Context, uid: string, account: Account, amr: string) {
      const interaction = await deps.provider().Interaction.find(uid);
      if (!interaction) throw Object.assign(new Error('This sign-in request has expired. Go back to the application and start again.'), { status: 400, expose: true });
      const key = randomBytes(24).toString('base64url');
      await deps.store.set(pendingKey(key), { uid, accountId: account.id, amr } satisfies PendingFederatedLogin, PENDING_TTL_SECONDS);
      ctx.status = 303;
      ctx.redirect(`/interaction/${encodeURIComponent(uid)}/federated?key=${key}`);
    },
    async currentAccount(ctx: Context) {
      const session = await deps.provider().Session.get(ctx as never).catch(() => undefined);
      const accountId = (session as { accountId?: string } | undefined)?.accountId;
      if (!accountId) return undefined;
      const account = await deps.accounts.findById(accountId);
      return account && !account.disabled ? account : undefined;
    },
  };
}

/** Takes (once) a parked login for `uid`; undefined when unknown, used or for another interaction. */
export async function takePendingLogin(store: Store, key: string, uid: string): Promise<PendingFederatedLogin | undefined> {
  if (!/^[A-Za-z0-9_-]{32}$/.test(key)) return undefined;
  const pending = await store.get<PendingFederatedLogin>(pendingKey(key));
  if (!pending || !(await store.delete(pendingKey(key)))) return undefined;
  return pending.uid === uid ? pending : undefined;
}
