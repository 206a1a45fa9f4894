import type { Adapter, AdapterPayload } from 'oidc-provider';
import type { Store } from '../store/store.ts';

/** Models whose artifacts belong to a grant and die with it. */
const GRANTABLE = new Set([
  'AccessToken',
  'AuthorizationCode',
  'RefreshToken',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
  'PreAuthorizedCode',
]);

const modelKey = (model: string, id: string) => `oidc:${model}:${id}`;
const grantIndexKey = (grantId: string) => `oidc:grant-members:${grantId}`;
const accountGrantsKey = (accountId: string) => `oidc:account-grants:${accountId}`;
const userCodeKey = (userCode: string) => `oidc:user-code:${userCode}`;
const sessionUidKey = (uid: string) => `oidc:session-uid:${uid}`;

/** Seconds a whole number of at least 1, as the store wants; undefined means no expiry. */
function ttlOf(expiresIn: number | undefined): number | undefined {
  return typeof expiresIn === 'number' ? Math.max(1, Math.ceil(expiresIn)) : undefined;
}

/**
 * Deletes every artifact of a grant and the grant itself, without a
 * provider context: used when an account is disabled.
 */
export async function revokeGrant(store: Store, grantId: string): Promise<void> {
  const members = await store.setMembers(grantIndexKey(grantId));
  await Promise.all([...members.map((key) => store.delete(key)), store.delete(grantIndexKey(grantId)), store.delete(modelKey('Grant', grantId))]);
}

/** Revokes every grant an account holds; returns how many there were. */
export async function revokeAccountGrants(store: Store, accountId: string): Promise<number> {
  const grants = await store.setMembers(accountGrantsKey(accountId));
  await Promise.all(grants.map((grantId) => revokeGrant(store, grantId)));
  await store.delete(accountGrantsKey(accountId));
  return grants.length;
}

/**
 * oidc-provider's adapter contract on fedgate's store. Every artifact expires
 * with its token (the store TTL is the artifact's own expiresIn); grant
 * membership sets live as long as their longest member.
 */
export class StoreAdapter implements Adapter {
  readonly model: string;
  readonly #store: Store;

  constructor(model: string, store: Store) {
    this.model = model;
    this.#store = store;
  }

  async upsert(id: string, payload: AdapterPayload, expiresIn: number): Promise<void> {
    const store = this.#store;
    const key = modelKey(this.model, id);
    const ttl = ttlOf(expiresIn);
    const writes: Array<Promise<unknown>> = [store.set(key, payload, ttl)];
    if (GRANTABLE.has(this.model) && payload.grantId) {
      writes.push(store.addToSet(grantIndexKey(payload.grantId), key, ttl));
    }
    if (this.model === 'Grant' && payload.accountId) {
      writes.push(store.addToSet(accountGrantsKey(payload.accountId), id, ttl));
    }
    if (payload.userCode) writes.push(store.set(userCodeKey(payload.userCode), id, ttl));
    if (this.model === 'Session' && payload.uid) writes.push(store.set(sessionUidKey(payload.uid), id, ttl));
    await Promise.all(writes);
  }

  async find(id: string): Promise<AdapterPayload | undefined> {
    return this.#store.get<AdapterPayload>(modelKey(this.model, id));
  }

  async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
    const id = await this.#store.get<string>(userCodeKey(userCode));
    return id ? this.find(id) : undefined;
  }

  async findByUid(uid: string): Promise<AdapterPayload | undefined> {
    const id = await this.#store.get<string>(sessionUidKey(uid));
    return id ? this.find(id) : undefined;
  }

  async consume(id: string): Promise<void> {
    const key = modelKey(this.model, id);
    const payload = await this.#store.get<AdapterPayload>(key);
    if (payload) await this.#store.replace(key, { ...payload, consumed: Math.floor(Date.now() / 1000) });
  }

  async destroy(id: string): Promise<void> {
    const key = modelKey(this.model, id);
    const payload = await this.#store.get<AdapterPayload>(key);
    await this.#store.delete(key);
    if (!payload) return;
    const cleanups: Array<Promise<unknown>> = [];
    if (GRANTABLE.has(this.model) && payload.grantId) cleanups.push(this.#store.removeFromSet(grantIndexKey(payload.grantId), key));
    if (this.model === 'Grant' && payload.accountId) cleanups.push(this.#store.removeFromSet(accountGrantsKey(payload.accountId), id));
    if (payload.userCode) cleanups.push(this.#store.delete(userCodeKey(payload.userCode)));
    if (this.model === 'Session' && payload.uid) cleanups.push(this.#store.delete(sessionUidKey(payload.uid)));
    await Promise.all(cleanups);
  }

  async revokeByGrantId(grantId: string): Promise<void> {
    const members = await this.#store.setMembers(grantIndexKey(grantId));
    await Promise.all([...members.map((key) => this.#store.delete(key)), this.#store.delete(grantIndexKey(grantId))]);
  }
}

/** The adapter factory oidc-provider's `adapter` option takes. */
export function storeAdapterFactory(store: Store): (model: string) => StoreAdapter {
  return (model) => new StoreAdapter(model, store);
}
