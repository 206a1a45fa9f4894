import { createHash, randomUUID } from 'node:crypto';
import { hash as argon2Hash, verify as argon2Verify } from '@node-rs/argon2';
import { indexPage } from '../store/index-page.ts';
import type { Store } from '../store/store.ts';
import { BoundedMap } from '../util/bounded-map.ts';
import { FedgateError } from '../util/errors.ts';

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
  /** Identity assurance (REFEDS RAF / AARC-G021 URIs) the identity provider of the last federated login asserted. */
  assurance?: string[] | undefined;
  disabled: boolean;
  identities: LinkedIdentity[];
  /** The Acceptable Use Policy version the user accepted last, and when (epoch seconds). */
  aup?: { version: string; acceptedAt: number } | undefined;
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
export class AccountError extends FedgateError {
  readonly code: 'username_taken' | 'identity_taken' | 'not_found';
  constructor(code: AccountError['code'], message: string) {
    super(code, message);
    this.code = code;
  }
}

const accountKey = (id: string) => `account:${id}`;
const usernameKey = (username: string) => `account-username:${username.toLowerCase()}`;
const ACCOUNT_IDS = 'account-ids';
/** Account ids whose direct groups include the group: the member list of a group. */
export const groupMembersKey = (group: string) => `group-members:${group}`;
const MEMBER_INDEX_BUILT = 'group-members-indexed';
/** Every account, sorted: see {@link accountIndexMember}. */
const ACCOUNT_INDEX = 'account-index';
/** Lower-cased usernames of a group's direct members, sorted (pages of members). */
export const groupMemberIndexKey = (group: string) => `group-member-index:${group}`;
/** Lower-cased usernames of a group's effective members (direct members of it or of a subgroup), sorted. */
export const groupEffectiveIndexKey = (group: string) => `group-effective-index:${group}`;
/** Set once the sorted indexes above hold the accounts that predate them. */
const LIST_INDEX_BUILT = 'account-list-index-built';
/** Index writes per round trip while building the indexes. */
const BUILD_BATCH = 500;

/**
 * An account's member of the account index: its lower-cased username, name
 * and email joined by NUL, so the index is in username order and one
 * substring search covers all three (a query holds no NUL).
 */
export function accountIndexMember(account: Pick<Account, 'username' | 'name' | 'email'>): string {
  return [account.username, account.name ?? '', account.email ?? ''].map((s) => s.toLowerCase().replaceAll('\u0000', '')).join('\u0000');
}

/** One page of accounts (see {@link Accounts.page}). */
export interface AccountPage {
  accounts: Account[];
  /** Continue after this index member; undefined when the list is done. */
  next: string | undefined;
}

/** What {@link Accounts.page} and {@link Accounts.memberPage} look for. */
export interface PageQuery {
  /** Lower-cased in the search: a substring of username, name or email (of the username for members). */
  q?: string | undefined;
  after?: string | undefined;
  limit: number;
}
/** Compare-and-set attempts of one account update before it gives up (each lost one means another update landed). */
const MAX_UPDATE_ATTEMPTS = 50;
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
    await Promise.all([
      this.#store.addToSet(ACCOUNT_IDS, account.id),
      this.#store.addToIndex(ACCOUNT_INDEX, [accountIndexMember(account)]),
      this.#indexGroups(account, [], account.groups),
    ]);
    return account;
  }

  /** Keeps the per-group member set and the sorted direct and effective member indexes in step with a change of groups. */
  async #indexGroups(account: Pick<Account, 'id' | 'username'>, before: readonly string[], after: readonly string[]): Promise<void> {
    const { id } = account;
    const name = account.username.toLowerCase();
    const effectiveBefore = effectiveGroups(before);
    const effectiveAfter = effectiveGroups(after);
    const added = after.filter((g) => !before.includes(g));
    const removed = before.filter((g) => !after.includes(g));
    await Promise.all([
      ...added.map((g) => this.#store.addToSet(groupMembersKey(g), id)),
      ...removed.map((g) => this.#store.removeFromSet(groupMembersKey(g), id)),
      ...added.map((g) => this.#store.addToIndex(groupMemberIndexKey(g), [name])),
      ...removed.map((g) => this.#store.removeFromIndex(groupMemberIndexKey(g), [name])),
      ...effectiveAfter.filter((g) => !effectiveBefore.includes(g)).map((g) => this.#store.addToIndex(groupEffectiveIndexKey(g), [name])),
      ...effectiveBefore.filter((g) => !effectiveAfter.includes(g)).map((g) => this.#store.removeFromIndex(groupEffectiveIndexKey(g), [name])),
    ]);
  }

  /** How many accounts exist (a counter read, not a scan). */
  async count(): Promise<number> {
    return this.#store.indexSize(ACCOUNT_INDEX);
  }

  /** How many accounts are direct members of `group` (or, `effective`, of it or a subgroup). */
  async memberCount(group: string, effective = false): Promise<number> {
    return this.#store.indexSize(effective ? groupEffectiveIndexKey(group) : groupMemberIndexKey(group));
  }

  /**
   * One page of accounts in username order, optionally only those whose
   * username, name or email contains `q` (case-insensitively). The search
   * runs in the store, a bounded number of members per call, and stops after
   * about 50 ms with a cursor even when the page is not full: a page costs
   * bounded time with any number of accounts.
   */
  async page(query: PageQuery): Promise<AccountPage> {
    return this.#pageOf(ACCOUNT_INDEX, query);
  }

  /** One page of the direct (or effective) members of `group`, in username order; `q` searches usernames. */
  async memberPage(group: string, effective: boolean, query: PageQuery): Promise<AccountPage> {
    return this.#pageOf(effective ? groupEffectiveIndexKey(group) : groupMemberIndexKey(group), query);
  }

  async #pageOf(index: string, query: PageQuery): Promise<AccountPage> {
    const contains = query.q ? query.q.toLowerCase() : undefined;
    const { members, next } = await indexPage(this.#store, index, { after: query.after, contains, limit: query.limit });
    // The index member starts with the lower-cased username, which the username key resolves.
    const found = await Promise.all(members.map((m) => this.findByUsername(m.split('\u0000', 1)[0]!)));
    return { accounts: found.filter((a): a is Account => a !== undefined), next };
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
    const [members, lists] = await Promise.all([this.#store.get(MEMBER_INDEX_BUILT), this.#store.get(LIST_INDEX_BUILT)]);
    if (members && lists) return;
    const all = await this.list();
    // Index writes are idempotent: a replica building at the same time, or a change landing meanwhile, leaves them right.
    for (let i = 0; i < all.length; i += BUILD_BATCH) {
      const batch = all.slice(i, i + BUILD_BATCH);
      await Promise.all([
        this.#store.addToIndex(ACCOUNT_INDEX, batch.map(accountIndexMember)),
        ...batch.map((account) => this.#indexGroups(account, [], account.groups)),
      ]);
    }
    await Promise.all([this.#store.set(MEMBER_INDEX_BUILT, true), this.#store.set(LIST_INDEX_BUILT, true)]);
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

  /**
   * Changes an account in one compare-and-set: read it, let `change` edit a
   * copy, write the copy only if the stored record is still the one read;
   * otherwise read again and redo the change on the newer record. Two
   * concurrent updates (a disable while an identity is linked) both land,
   * neither overwriting the other's field with what it read before.
   * `change` returns false when there is nothing to write.
   */
  async #update(id: string, change: (account: Account) => boolean | undefined): Promise<{ before: Account; after: Account }> {
    for (let attempt = 0; attempt < MAX_UPDATE_ATTEMPTS; attempt += 1) {
      const before = await this.findById(id);
      if (!before) throw new AccountError('not_found', 'no such account');
      const after = structuredClone(before);
      if (change(after) === false) return { before, after: before };
      after.updatedAt = Math.floor(Date.now() / 1000);
      if (await this.#store.compareAndSet(accountKey(id), before, after)) {
        const [was, is] = [accountIndexMember(before), accountIndexMember(after)];
        if (was !== is) await Promise.all([this.#store.removeFromIndex(ACCOUNT_INDEX, [was]), this.#store.addToIndex(ACCOUNT_INDEX, [is])]);
        return { before, after };
      }
    }
    throw new Error(`account ${id} kept changing; the update was not written`);
  }

  async setGroups(id: string, groups: string[]): Promise<Account> {
    const wanted = [...new Set(groups)].sort();
    const { before, after } = await this.#update(id, (account) => { account.groups = wanted; });
    await this.#indexGroups(after, before.groups, after.groups);
    await this.onChanged?.(after);
    return after;
  }

  async setPassword(id: string, password: string): Promise<Account> {
    const passwordHash = await hashPassword(password);
    return (await this.#update(id, (account) => { account.passwordHash = passwordHash; })).after;
  }

  /**
   * Replaces the account's identity assurance values (from a federated
   * login); writes nothing when they are unchanged.
   */
  async setAssurance(account: Account, assurance: readonly string[]): Promise<Account> {
    const same = (current: readonly string[]) => current.length === assurance.length && current.every((v, i) => v === assurance[i]);
    if (same(account.assurance ?? [])) return account;
    return (await this.#update(account.id, (fresh) => {
      if (same(fresh.assurance ?? [])) return false;
      if (assurance.length) fresh.assurance = [...assurance];
      else delete fresh.assurance;
      return true;
    })).after;
  }

  /** Records that the user accepted version `version` of the Acceptable Use Policy now. */
  async acceptAup(id: string, version: string): Promise<Account> {
    const acceptedAt = Math.floor(Date.now() / 1000);
    return (await this.#update(id, (account) => { account.aup = { version, acceptedAt }; })).after;
  }

  /** Disables or enables an account; disabling revokes its grants through onDisabled. */
  async setDisabled(id: string, disabled: boolean): Promise<Account> {
    const { after } = await this.#update(id, (account) => { account.disabled = disabled; });
    if (disabled && this.onDisabled) await this.onDisabled(after);
    await this.onChanged?.(after);
    return after;
  }

  /** Links an external identity; refuses one already linked to another account. */
  async link(id: string, identity: Omit<LinkedIdentity, 'linkedAt'>): Promise<Account> {
    const account = await this.findById(id);
    if (!account) throw new AccountError('not_found', 'no such account');
    const key = identityKey(identity.type, identity.issuer, identity.subject);
    if (!(await this.#store.setIfAbsent(key, account.id))) {
      const owner = await this.#store.get<string>(key);
      if (owner !== account.id) throw new AccountError('identity_taken', 'this identity is already linked to another account');
    }
    const same = (i: LinkedIdentity) => i.type === identity.type && i.issuer === identity.issuer && i.subject === identity.subject;
    return (await this.#update(id, (fresh) => {
      if (fresh.identities.some(same)) return false;
      fresh.identities.push({ ...identity, linkedAt: Math.floor(Date.now() / 1000) });
      return true;
    })).after;
  }

  async unlink(id: string, identity: Pick<LinkedIdentity, 'type' | 'issuer' | 'subject'>): Promise<Account> {
    const key = identityKey(identity.type, identity.issuer, identity.subject);
    if ((await this.#store.get<string>(key)) === id) await this.#store.delete(key);
    return (await this.#update(id, (account) => {
      account.identities = account.identities.filter(
        (i) => !(i.type === identity.type && i.issuer === identity.issuer && i.subject === identity.subject),
      );
    })).after;
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
