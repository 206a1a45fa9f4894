import { absentUnlessUnavailable } from '../store/errors.ts';
import { randomBytes } from 'node:crypto';
import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import type { Account, Accounts } from '../accounts/accounts.ts';
import type { Store } from '../store/store.ts';
import type { FederationHooks, InteractionCheck, RegistrationIdentity } from './types.ts';

/** A login an identity bridge finished, waiting for the browser to come back to its interaction. */
export interface PendingFederatedLogin {
  uid: string;
  accountId: string;
  amr: string;
}

const pendingKey = (key: string) => `federated-login:${key}`;
const PENDING_TTL_SECONDS = 120;
/** The browser's parked identity for the registration form: a signed cookie naming a store key. */
export const REGISTRATION_IDENTITY_COOKIE = 'fedgate.register-identity';
const registrationIdentityKey = (key: string) => `registration-identity:${key}`;
const REGISTRATION_IDENTITY_TTL_SECONDS = 1800;

/** The identity this browser brought to the registration form (a first federated sign-in), if any. */
export async function registrationIdentity(ctx: Context, store: Store): Promise<{ key: string; identity: RegistrationIdentity } | undefined> {
  const key = ctx.cookies.get(REGISTRATION_IDENTITY_COOKIE, { signed: true });
  if (!key || !/^[A-Za-z0-9_-]{32}$/.test(key)) return undefined;
  const identity = await store.get<RegistrationIdentity>(registrationIdentityKey(key));
  return identity ? { key, identity } : undefined;
}

/** Forgets the parked identity once a registration took it. */
export async function dropRegistrationIdentity(ctx: Context, store: Store, key: string): Promise<void> {
  await store.delete(registrationIdentityKey(key));
  ctx.cookies.set(REGISTRATION_IDENTITY_COOKIE, null, { path: '/account/register' });
}

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
export function federationHooks(deps: { store: Store; accounts: Accounts; provider: () => Provider; selfRegistration: boolean; secureCookies: boolean }): FederationHooks & InteractionCheck {
  return {
    async offerRegistration(ctx: Context, identity: RegistrationIdentity) {
      if (!deps.selfRegistration) return false;
      const key = randomBytes(24).toString('base64url');
      const { type, issuer, subject, name, email } = identity;
      await deps.store.set(registrationIdentityKey(key), { type, issuer, subject, name, email } satisfies RegistrationIdentity, REGISTRATION_IDENTITY_TTL_SECONDS);
      ctx.cookies.set(REGISTRATION_IDENTITY_COOKIE, key, {
        httpOnly: true, sameSite: 'lax', secure: deps.secureCookies, path: '/account/register', signed: true, overwrite: true, maxAge: REGISTRATION_IDENTITY_TTL_SECONDS * 1000,
      });
      ctx.status = 303;
      ctx.redirect('/account/register');
      return true;
    },
    async finishLogin(ctx: Context, uid: string, account: Account, amr: string) {
      const interaction = await deps.provider().Interaction.find(uid);
      if (!interaction) throw Object.assign(new Error('This sign-in request has expired. Go back to the application and start again.'), { status: 400, expose: true });
      const key = randomBytes(24).toString('base64url');
      await deps.store.set(pendingKey(key), { uid, accountId: account.id, amr } satisfies PendingFederatedLogin, PENDING_TTL_SECONDS);
      ctx.status = 303;
      ctx.redirect(`/interaction/${encodeURIComponent(uid)}/federated?key=${key}`);
    },
    async interactionExists(uid: string) {
      return (await deps.provider().Interaction.find(uid)) !== undefined;
    },
    async currentAccount(ctx: Context) {
      const session = await deps.provider().Session.get(ctx as never).catch(absentUnlessUnavailable);
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
