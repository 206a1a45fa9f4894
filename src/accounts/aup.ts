import type { Account } from './accounts.ts';

/** The configured Acceptable Use Policy (`aup` in the configuration). */
export interface AcceptableUsePolicy {
  version: string;
  text?: string | undefined;
  url?: string | undefined;
}

/** Whether the account still has to accept the current version of the policy (never, without one). */
export function aupPending(account: Pick<Account, 'aup'>, aup: AcceptableUsePolicy | undefined): boolean {
  return aup !== undefined && account.aup?.version !== aup.version;
}

/**
 * Why the account gets no tokens now, or undefined: the one rule every
 * grant path asks (authorization code, refresh, device code through
 * oidc-provider's findAccount; token exchange through its subject token).
 * A user who has not accepted the current Acceptable Use Policy gets none.
 */
export function tokenRefusal(account: Pick<Account, 'aup' | 'disabled'>, aup: AcceptableUsePolicy | undefined): string | undefined {
  if (account.disabled) return 'the account is disabled';
  if (aupPending(account, aup)) return `the acceptable use policy version ${aup!.version} has not been accepted`;
  return undefined;
}
