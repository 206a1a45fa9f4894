import { randomUUID } from 'node:crypto';
import type { Store } from '../store/store.ts';
import { FedgateError } from '../util/errors.ts';

/** Where a request stands; only `pending` ones can be decided or cancelled. */
export type RequestStatus = 'pending' | 'approved' | 'rejected' | 'cancelled';
export const REQUEST_STATUSES: readonly RequestStatus[] = ['pending', 'approved', 'rejected', 'cancelled'];

/** What every request has: who asked (an owner key), why, and how it was decided. */
export interface RequestRecord {
  id: string;
  status: RequestStatus;
  reason: string;
  createdAt: number;
  decidedAt?: number | undefined;
  /** The actor (account id or `client:<id>`) who decided, or the owner who cancelled. */
  decidedBy?: string | undefined;
  /** Why it was rejected, when the one deciding said. */
  decisionReason?: string | undefined;
}

/** A user's request to join a group. */
export interface MembershipRequest extends RequestRecord {
  accountId: string;
  username: string;
  group: string;
}

/** A person's request for an account (self-registration). */
export interface RegistrationRequest extends RequestRecord {
  username: string;
  name?: string | undefined;
  email?: string | undefined;
  /** argon2id PHC string of the password chosen on the form. */
  passwordHash?: string | undefined;
  /** The external identity that asked (a first SAML or certificate sign-in), linked on approval. */
  identity?: { type: 'saml' | 'x509'; issuer: string; subject: string } | undefined;
  /** The account created on approval. */
  accountId?: string | undefined;
}

/** A stable error whose `code` callers switch on. */
export class RequestError extends FedgateError {
  readonly code: 'not_found' | 'not_pending' | 'duplicate';
  constructor(code: RequestError['code'], message: string) {
    super(code, message);
    this.code = code;
  }
}

/** Reads a key (the owner, the subject) off a request's fields. */
type KeyOf<T> = (request: Omit<T, keyof RequestRecord>) => string;

/** Decided requests stay readable (the history of a group's admissions) this long. */
const KEEP_DECIDED_SECONDS = 180 * 24 * 3600;
/** A bound on open requests per owner: untrusted users cannot fill the store. */
export const MAX_OPEN_PER_OWNER = 20;

/**
 * A book of requests that someone decides (membership requests,
 * registrations), on the store: one JSON record per request, an index of
 * pending and of decided ones, one per owner, and an "open" marker per
 * subject so the same thing is not asked twice while pending. A decision is
 * one compare-and-set: two managers approving at once decide it once.
 */
export class RequestBook<T extends RequestRecord> {
  readonly #store: Store;
  readonly #prefix: string;
  readonly #ownerOf: KeyOf<T>;
  readonly #subjectOf: KeyOf<T>;

  /**
   * `prefix` names this book's keys (`membership-request`, `registration`);
   * `ownerOf` says whose request it is, `subjectOf` what it asks for: while
   * a request for a subject is pending, another is refused.
   */
  constructor(store: Store, prefix: string, ownerOf: KeyOf<T>, subjectOf: KeyOf<T>) {
    this.#store = store;
    this.#prefix = prefix;
    this.#ownerOf = ownerOf;
    this.#subjectOf = subjectOf;
  }

  #key(id: string) { return `${this.#prefix}:${id}`; }
  #index(status: 'pending' | 'decided') { return `${this.#prefix}s:${status}`; }
  #ownerIndex(owner: string) { return `${this.#prefix}s:owner:${owner}`; }
  #openKey(subject: string) { return `${this.#prefix}-open:${subject}`; }

  async get(id: string): Promise<T | undefined> {
    // Ids are UUIDs; anything else was never stored.
    if (!/^[0-9a-f-]{36}$/.test(id)) return undefined;
    return this.#store.get<T>(this.#key(id));
  }

  /** Files a request; refused while the same is pending, or when its owner has too many pending. */
  async create(fields: Omit<T, keyof RequestRecord> & { reason: string }): Promise<T> {
    const owner = this.#ownerOf(fields);
    const subject = this.#subjectOf(fields);
    const open = (await this.forOwner(owner)).filter((r) => r.status === 'pending');
    if (open.length >= MAX_OPEN_PER_OWNER) throw new RequestError('duplicate', `at most ${MAX_OPEN_PER_OWNER} requests can be pending at once`);
    const record = { ...fields, id: randomUUID(), status: 'pending', createdAt: Math.floor(Date.now() / 1000) } as T;
    if (!(await this.#store.setIfAbsent(this.#openKey(subject), record.id))) {
      const other = await this.get((await this.#store.get<string>(this.#openKey(subject))) ?? '');
      if (other?.status === 'pending') throw new RequestError('duplicate', 'the same request is already pending');
      // A stale marker (its request was decided while the marker was left behind): take it over.
      await this.#store.set(this.#openKey(subject), record.id);
    }
    await this.#store.set(this.#key(record.id), record);
    await this.#store.addToSet(this.#index('pending'), record.id);
    await this.#store.addToSet(this.#ownerIndex(owner), record.id);
    return record;
  }

  /** How many requests are pending (an index read, no records). */
  async pendingCount(): Promise<number> {
    return (await this.#store.setMembers(this.#index('pending'))).length;
  }

  /** The owner's requests, newest first (decided ones while they are kept). */
  async forOwner(owner: string): Promise<T[]> {
    return this.#read(this.#ownerIndex(owner));
  }

  /** Pending requests, or decided ones (any other status), newest first. */
  async list(status: RequestStatus): Promise<T[]> {
    const all = await this.#read(this.#index(status === 'pending' ? 'pending' : 'decided'));
    return all.filter((r) => r.status === status);
  }

  async #read(index: string): Promise<T[]> {
    const ids = await this.#store.setMembers(index);
    const records: Array<T | undefined> = await Promise.all(ids.map((id) => this.#store.get<T>(this.#key(id))));
    // Decided records expire; their ids leave the index when next read.
    await Promise.all(ids.filter((_, i) => !records[i]).map((id) => this.#store.removeFromSet(index, id)));
    return records.filter((r): r is T => r !== undefined).sort((a, b) => b.createdAt - a.createdAt || a.id.localeCompare(b.id));
  }

  /**
   * Decides a pending request once: `approved`, `rejected` or (by its owner)
   * `cancelled`. `apply` runs after the decision is written (the membership
   * or account it grants) and may add fields to the record.
   */
  async decide(id: string, status: Exclude<RequestStatus, 'pending'>, by: string, decisionReason?: string,
    apply?: (request: T) => Promise<Partial<T> | undefined>): Promise<T> {
    const before = await this.get(id);
    if (!before) throw new RequestError('not_found', 'no such request');
    if (before.status !== 'pending') throw new RequestError('not_pending', `the request is already ${before.status}`);
    let after = { ...before, status, decidedAt: Math.floor(Date.now() / 1000), decidedBy: by, ...(decisionReason ? { decisionReason } : {}) } as T;
    if (!(await this.#store.compareAndSet(this.#key(id), before, after))) {
      const now = await this.get(id);
      throw new RequestError('not_pending', `the request is already ${now?.status ?? 'gone'}`);
    }
    if (apply) {
      const extra = await apply(after);
      if (extra) after = { ...after, ...extra };
    }
    await this.#store.set(this.#key(id), after, KEEP_DECIDED_SECONDS);
    await this.#store.addToSet(this.#index('decided'), id);
    await this.#store.removeFromSet(this.#index('pending'), id);
    const subject = this.#openKey(this.#subjectOf(after));
    if ((await this.#store.get<string>(subject)) === id) await this.#store.delete(subject);
    return after;
  }
}

/** Membership requests: owned by the account, one pending per account and group. */
export type MembershipRequests = RequestBook<MembershipRequest>;
export function membershipRequests(store: Store): MembershipRequests {
  return new RequestBook<MembershipRequest>(store, 'membership-request', (r) => r.accountId, (r) => `${r.accountId}:${r.group}`);
}

/** Account registrations: one pending per username (case-insensitively). */
export type RegistrationRequests = RequestBook<RegistrationRequest>;
export function registrationRequests(store: Store): RegistrationRequests {
  // Anonymous people own their request under the username they asked for.
  const name = (r: { username: string }) => r.username.toLowerCase();
  return new RequestBook<RegistrationRequest>(store, 'registration', name, name);
}
