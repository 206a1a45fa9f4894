import { createHash, randomUUID } from 'node:crypto';
import { hash as argon2Hash, verify as argon2Verify } from '@node-rs/argon2';
import type { Store } from '../store/store.ts';
import { BoundedMap } from '../util/bounded-map.ts';

/** An external identity linked to an account (SAML subject, X.509 subject DN, a trusted OIDC issuer's subject). */
export interface LinkedIdentity {
  type: 'saml' | 'x509' | 'oidc';
  /** SAML IdP entityID, the issuing CA's DN for X.509, or the `iss` of a trusted token issuer. */
  issuer: string;
  /** SAML subject identifier, the normalised certificate subject DN, or the external `sub`. */
  subject: string;
  linkedAt: number;
}

export interface Account {
  /** Stable, opaque identifier: the `sub` claim. */
  id: string;
  username: string;
  name?: string | undefined;
  email?: string | undefined;
  /** argon2id PHC string; absent for accounts that only log in through a linked identity. */
  passwordHash?: string | undefined;
  /** Direct group memberships; parents are implied (see effectiveGroups). */
  groups: string[];
  disabled: boolean;
  identities: LinkedIdentity[];
  createdAt: number;
  updatedAt: number;
}

export interface NewAccount {
  username: string;
  name?: string | undefined;
  email?: string | undefined;
  password?: string | undefined;
  passwordHash?: string | undefined;
  groups?: string[] | undefined;
  disabled?: boolean | undefined;
}

/** A stable error whose `code` callers switch on. */
export class AccountError extends Error {
  readonly code: 'username_taken' | 'identity_taken' | 'not_found';
  constructor(code: AccountError['code'], message: string) {
    super(message);
    this.name = 'AccountError';
    this.code = code;
  }
}

const accountKey = (id: string) => `account:${id}`;
const usernameKey = (username: string) => `account-username:${username.toLowerCase()}`;
const ACCOUNT_IDS = 'account-ids';
/** Account ids whose direct groups include the group: the member list of a group. */
export const groupMembersKey = (group: string) => `group-members:${group}`;
const MEMBER_INDEX_BUILT = 'group-members-indexed';
/** Identity index keys hash issuer and subject: DNs and entity IDs can be long and hold any character. */
const identityKey = (type: string, issuer: string, subject: string) =>
  `account-identity:${type}:${createHash('sha256').update(`${issuer}\n${subject}`).digest('base64url')}`;

/** Effective groups by direct groups (a pure function, asked several times per token issued); callers get copies. */
const effectiveGroupsMemo = new BoundedMap<string, string[]>(10_000);

/**
 * `/cms/production` implies `/cms`: every ancestor of a direct group is an
 * effective group. Sorted, without duplicates.
 */
export function effectiveGroups(groups: readonly string[]): string[] {
  const key = groups.join('\n');
  let known = effectiveGroupsMemo.get(key);
  if (!known) {
    const all = new Set<string>();
    for (const group of groups) {
      const parts = group.split('/').filter(Boolean);
      for (let i = 1; i <= parts.length; i += 1) all.add(`/${parts.slice(0, i).join('/')}`);
    }
    known = [...all].sort();
    effectiveGroupsMemo.set(key, known);
  }
  return [...known];
}

/** argon2id with the library defaults (OWASP's minimum: m=19 MiB, t=2, p=1). */
export function hashPassword(password: string): Promise<string> {
  return argon2Hash(password);
}

let dummyHash: Promise<string> | undefined;

/** Accounts, their groups and linked identities, on the store. */
export class Accounts {
  readonly #store: Store;
  /** Called after an account is disabled, so its grants can be revoked. */
  onDisabled: ((account: Account) => Promise<void>) | undefined;
  /**
   * Called after an account's groups or state changed, so that decisions
   * and cached identities based on it are refreshed on every replica.
   */
  onChanged: ((account: Account) => void | Promise<void>) | undefined;

  constructor(store: Store) {
    this.#store = store;
  }

  async findById(id: string): Promise<Account | undefined> {
    return this.#store.get<Account>(accountKey(id));
  }

  async findByUsername(username: string): Promise<Account | undefined> {
    const id = await this.#store.get<string>(usernameKey(username));
    return id ? this.findById(id) : undefined;
  }

  async findByIdentity(type: LinkedIdentity['type'], issuer: string, subject: string): Promise<Account | undefined> {
    const id = await this.#store.get<string>(identityKey(type, issuer, subject));
    return id ? this.findById(id) : undefined;
  }

  async list(): Promise<Account[]> {
    const ids = await this.#store.setMembers(ACCOUNT_IDS);
    const accounts = await Promise.all(ids.map((id) => this.findById(id)));
    return accounts.filter((a): a is Account => a !== undefined).sort((a, b) => a.username.localeCompare(b.username));
  }

  /** Creates an account; the username is unique (case-insensitively). */
  async create(input: NewAccount): Promise<Account> {
    const now = Math.floor(Date.now() / 1000);
    const account: Account = {
      id: randomUUID(),
      username: input.username,
      name: input.name,
      email: input.email,
      passwordHash: input.passwordHash ?? (input.password ? await hashPassword(input.password) : undefined),
      groups: [...new Set(input.groups ?? [])].sort(),
      disabled: input.disabled ?? false,
      identities: [],
      createdAt: now,
      updatedAt: now,
    };
    if (!(await this.#store.setIfAbsent(usernameKey(account.username), account.id))) {
      throw new AccountError('username_taken', `username ${account.username} is taken`);
    }
    await this.#store.set(accountKey(account.id), account);
    await this.#store.addToSet(ACCOUNT_IDS, account.id);
    await this.#indexGroups(account.id, [], account.groups);
    return account;
  }

  async #indexGroups(id: string, before: readonly string[], after: readonly string[]): Promise<void> {
    await Promise.all([
      ...after.filter((g) => !before.includes(g)).map((g) => this.#store.addToSet(groupMembersKey(g), id)),
      ...before.filter((g) => !after.includes(g)).map((g) => this.#store.removeFromSet(groupMembersKey(g), id)),
    ]);
  }

  /** Ids of the accounts directly in `group`. */
  async memberIds(group: string): Promise<string[]> {
    return this.#store.setMembers(groupMembersKey(group));
  }

  /**
   * Builds the member index once for accounts created before it existed;
   * later changes keep it current.
   */
  async ensureMemberIndex(): Promise<void> {
    if (await this.#store.get(MEMBER_INDEX_BUILT)) return;
    for (const account of await this.list()) await this.#indexGroups(account.id, [], account.groups);
    await this.#store.set(MEMBER_INDEX_BUILT, true);
  }

  /** Creates the account unless the username exists: configuration users are a seed, the store holds the truth. */
  async seed(input: NewAccount): Promise<{ account: Account; created: boolean }> {
    const existing = await this.findByUsername(input.username);
    if (existing) return { account: existing, created: false };
    try {
      return { account: await this.create(input), created: true };
    } catch (err) {
      // Another replica seeded the same user between our read and write.
      if (err instanceof AccountError && err.code === 'username_taken') {
        return { account: (await this.findByUsername(input.username))!, created: false };
      }
      throw err;
    }
  }

  async #save(account: Account): Promise<Account> {
    account.updatedAt = Math.floor(Date.now() / 1000);
    await this.#store.set(accountKey(account.id), account);
    return account;
  }

  async #require(id: string): Promise<Account> {
    const account = await this.findById(id);
    if (!account) throw new AccountError('not_found', 'no such account');
    return account;
  }

  async setGroups(id: string, groups: string[]): Promise<Account> {
    const account = await this.#require(id);
    const before = account.groups;
    account.groups = [...new Set(groups)].sort();
    await this.#save(account);
    await this.#indexGroups(account.id, before, account.groups);
    await this.onChanged?.(account);
    return account;
  }

  async setPassword(id: string, password: string): Promise<Account> {
    const account = await this.#require(id);
    account.passwordHash = await hashPassword(password);
    return this.#save(account);
  }

  /** Disables or enables an account; disabling revokes its grants through onDisabled. */
  async setDisabled(id: string, disabled: boolean): Promise<Account> {
    const account = await this.#require(id);
    account.disabled = disabled;
    await this.#save(account);
    if (disabled && this.onDisabled) await this.onDisabled(account);
    await this.onChanged?.(account);
    return account;
  }

  /** Links an external identity; refuses one already linked to another account. */
  async link(id: string, identity: Omit<LinkedIdentity, 'linkedAt'>): Promise<Account> {
    const account = await this.#require(id);
    const key = identityKey(identity.type, identity.issuer, identity.subject);
    if (!(await this.#store.setIfAbsent(key, account.id))) {
      const owner = await this.#store.get<string>(key);
      if (owner !== account.id) throw new AccountError('identity_taken', 'this identity is already linked to another account');
      return account;
    }
    account.identities.push({ ...identity, linkedAt: Math.floor(Date.now() / 1000) });
    return this.#save(account);
  }

  async unlink(id: string, identity: Pick<LinkedIdentity, 'type' | 'issuer' | 'subject'>): Promise<Account> {
    const account = await this.#require(id);
    const key = identityKey(identity.type, identity.issuer, identity.subject);
    if ((await this.#store.get<string>(key)) === account.id) await this.#store.delete(key);
    account.identities = account.identities.filter(
      (i) => !(i.type === identity.type && i.issuer === identity.issuer && i.subject === identity.subject),
    );
    return this.#save(account);
  }

  /**
   * The account for a username and password, or undefined. Unknown users cost
   * one argon2 verification too, so timing does not reveal which usernames exist.
   */
  async verifyPassword(username: string, password: string): Promise<Account | undefined> {
    const account = await this.findByUsername(username);
    if (!account?.passwordHash) {
      dummyHash ??= hashPassword(randomUUID());
      await argon2Verify(await dummyHash, password).catch(() => false);
      return undefined;
    }
    const ok = await argon2Verify(account.passwordHash, password).catch(() => false);
    return ok ? account : undefined;
  }
}
