/**
 * Which fedgate account a verified SAML identity logs in to: the account it
 * is linked to, or, where just-in-time accounts are on for its identity
 * provider, a new one. Existing accounts keep their username, name and
 * email; with `groupsAtLogin: add` they gain the groups this login's
 * entitlements map to (never lose any: memberships may also come from
 * administrators, and an identity provider that releases fewer attributes
 * one day must not strip access).
 */
import { createHash, randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { AccountError, type Account, type Accounts } from '../../accounts/accounts.ts';
import type { Groups } from '../../accounts/groups.ts';
import type { SamlConfig } from '../../config/saml-schema.ts';
import type { Store } from '../../store/store.ts';
import { usernameCandidates, type MappedIdentity } from './attributes.ts';

/** Why no account could be used. */
export type ResolveProblem = 'account_disabled' | 'no_linked_account' | 'busy';

/** The account a login reaches. */
export interface Resolved {
  account: Account;
  /** True when it was created just now. */
  created: boolean;
  /** Groups added by this login. */
  addedGroups: string[];
}

const hashOf = (issuer: string, subject: string) => createHash('sha256').update(`${issuer}\n${subject}`).digest('base64url');
const jitLockKey = (issuer: string, subject: string) => `saml:jit-lock:${hashOf(issuer, subject)}`;
const LOCK_SECONDS = 30;

/** Finds, creates and updates accounts for SAML identities; see the module comment. */
export class AccountResolver {
  readonly #accounts: Accounts;
  readonly #groups: Groups;
  readonly #store: Store;
  readonly #config: SamlConfig;

  constructor(accounts: Accounts, groups: Groups, store: Store, config: SamlConfig) {
    this.#accounts = accounts;
    this.#groups = groups;
    this.#store = store;
    this.#config = config;
  }

  /** Whether a first login through `idp` may create an account. */
  jitAllowed(idp: string): boolean {
    return this.#config.jit.idps[idp] ?? this.#config.jit.default;
  }

  /** The mapped groups that exist in the registry (others are ignored). */
  async existingGroups(paths: readonly string[]): Promise<string[]> {
    const exists = await Promise.all(paths.map((p) => this.#groups.exists(p)));
    return paths.filter((_, i) => exists[i]);
  }

  /** Adds `groups` the account lacks (groupsAtLogin `add`); the account as it is afterwards. */
  async addGroups(account: Account, groups: readonly string[]): Promise<{ account: Account; added: string[] }> {
    if (this.#config.groupsAtLogin !== 'add') return { account, added: [] };
    const added = (await this.existingGroups(groups)).filter((g) => !account.groups.includes(g));
    if (added.length === 0) return { account, added };
    return { account: await this.#accounts.setGroups(account.id, [...account.groups, ...added]), added };
  }

  /** The account `identity` from `issuer` logs in to, or why there is none. */
  async forLogin(issuer: string, identity: MappedIdentity): Promise<Resolved | ResolveProblem> {
    const existing = await this.#accounts.findByIdentity('saml', issuer, identity.subject);
    if (existing) return this.#existing(existing, identity);
    if (!this.jitAllowed(issuer)) return 'no_linked_account';

    // One creator per identity across replicas: two first logins at once must not make two accounts.
    const lock = jitLockKey(issuer, identity.subject);
    if (!(await this.#store.setIfAbsent(lock, 1, LOCK_SECONDS))) {
      for (let i = 0; i < 30; i += 1) {
        await sleep(100);
        const created = await this.#accounts.findByIdentity('saml', issuer, identity.subject);
        if (created) return this.#existing(created, identity);
      }
      return 'busy';
    }
    try {
      const raced = await this.#accounts.findByIdentity('saml', issuer, identity.subject);
      if (raced) return this.#existing(raced, identity);
      const groups = await this.existingGroups(identity.groups);
      const account = await this.#create(issuer, identity, groups);
      try {
        const linked = await this.#accounts.link(account.id, { type: 'saml', issuer, subject: identity.subject });
        return { account: linked, created: true, addedGroups: groups };
      } catch (err) {
        // Linked to another account meanwhile (a link flow on another replica): that one wins, the new one is retired.
        if (!(err instanceof AccountError && err.code === 'identity_taken')) throw err;
        await this.#accounts.setDisabled(account.id, true);
        const owner = await this.#accounts.findByIdentity('saml', issuer, identity.subject);
        return owner ? this.#existing(owner, identity) : 'busy';
      }
    } finally {
      await this.#store.delete(lock);
    }
  }

  async #existing(account: Account, identity: MappedIdentity): Promise<Resolved | ResolveProblem> {
    if (account.disabled) return 'account_disabled';
    const { account: updated, added } = await this.addGroups(account, identity.groups);
    return { account: updated, created: false, addedGroups: added };
  }

  /** Creates the account under the first free username candidate (with a numeric, then random, suffix when taken). */
  async #create(issuer: string, identity: MappedIdentity, groups: string[]): Promise<Account> {
    const fallback = `saml-${hashOf(issuer, identity.subject).replace(/[^A-Za-z0-9]/g, '').slice(0, 12).toLowerCase()}`;
    const bases = usernameCandidates(identity, fallback);
    // `jdoe@uni.example.org` taken: `jdoe-2@uni.example.org` before falling back to the next candidate.
    const suffixed = (base: string, suffix: string) => {
      const at = base.lastIndexOf('@');
      return at > 0 ? `${base.slice(0, at)}-${suffix}${base.slice(at)}` : `${base}-${suffix}`;
    };
    const attempts = [
      ...bases.flatMap((b) => [b, ...[2, 3, 4, 5].map((n) => suffixed(b, String(n)))]),
      suffixed(bases[0]!, randomBytes(4).toString('hex')),
      `${fallback}-${randomBytes(4).toString('hex')}`,
    ];
    for (const username of attempts) {
      try {
        return await this.#accounts.create({ username, name: identity.name, email: identity.email, groups });
      } catch (err) {
        if (err instanceof AccountError && err.code === 'username_taken') continue;
        throw err;
      }
    }
    throw new Error('no free username for a just-in-time account');
  }
}
