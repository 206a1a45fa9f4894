import { createHash } from 'node:crypto';
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
/** Grants made by token exchange from this grant's tokens: revoked with it (RFC 8693 chains). */
const grantChildrenKey = (grantId: string) => `oidc:grant-children:${grantId}`;

/**
 * Ids of grants made by token exchange start with this. They stay out of
 * the account's grant index (which exchanged grants would swell by one per
 * exchange): they die with the grants they come from, and a disabled
 * account's tokens are refused wherever they are checked.
 */
export const EXCHANGED_GRANT_PREFIX = 'xg-';

/** Three dot-separated parts: a JWS in compact serialisation. */
export function isCompactJws(value: string): boolean {
  const parts = value.split('.');
  return parts.length === 3 && parts.every((p) => /^[A-Za-z0-9_-]+$/.test(p));
}

/**
 * The id under which a recorded JWT access token is stored: derived from
 * the whole token, so only someone holding the token can name its record
 * (never its `jti` alone, which is readable in logs; never the plain hash,
 * which is a DPoP `ath`). The `.` keeps it from passing for an opaque token
 * at the gateway.
 */
export function jwtRecordId(jws: string): string {
  return `xjwt.${createHash('sha256').update(`fedgate recorded access token\n${jws}`).digest('base64url')}`;
}

/** Seconds a whole number of at least 1, as the store wants; undefined means no expiry. */
function ttlOf(expiresIn: number | undefined): number | undefined {
  return typeof expiresIn === 'number' ? Math.max(1, Math.ceil(expiresIn)) : undefined;
}

/**
 * Deletes every artifact of a grant and the grant itself, without a
 * provider context: used when an account is disabled.
 */
export async function revokeGrant(store: Store, grantId: string): Promise<void> {
  await deleteGrantArtifacts(store, grantId);
  await revokeChildGrants(store, grantId);
}

async function deleteGrantArtifacts(store: Store, grantId: string): Promise<void> {
  const members = await store.setMembers(grantIndexKey(grantId));
  await Promise.all([...members.map((key) => store.delete(key)), store.delete(grantIndexKey(grantId)), store.delete(modelKey('Grant', grantId))]);
}

/**
 * Revokes the grants token exchange derived from `grantId`'s tokens, and
 * theirs in turn: an exchanged token never outlives the grant it came from.
 */
async function revokeChildGrants(store: Store, grantId: string, seen = new Set<string>([grantId])): Promise<void> {
  const children = (await store.setMembers(grantChildrenKey(grantId))).filter((id) => !seen.has(id));
  await store.delete(grantChildrenKey(grantId));
  for (const child of children) seen.add(child);
  await Promise.all(children.map(async (child) => {
    await deleteGrantArtifacts(store, child);
    await revokeChildGrants(store, child, seen);
  }));
}

/**
 * Records that `childGrantId` was made by exchanging tokens of
 * `parentGrantIds`: it is revoked with any of them. Resolves false when a
 * parent is gone by then (revoked while the exchange ran): a revocation
 * deletes the grant before it reads the children, so a parent still there
 * after the link will find this child when it is revoked.
 */
export async function linkChildGrant(store: Store, parentGrantIds: readonly string[], childGrantId: string, ttlSeconds: number): Promise<boolean> {
  await Promise.all(parentGrantIds.map((parent) => store.addToSet(grantChildrenKey(parent), childGrantId, ttlOf(ttlSeconds))));
  const parents = await Promise.all(parentGrantIds.map((parent) => store.get(modelKey('Grant', parent))));
  return parents.every((parent) => parent !== undefined);
}

/**
 * Stores the record of a JWT access token, which oidc-provider does not
 * store: introspection then finds it by its value, and revoking its grant
 * deletes it. fedgate does this for exchanged tokens only (their gateway
 * checks and introspection must see revocations at once).
 */
export async function recordJwtAccessToken(store: Store, jws: string, payload: AdapterPayload, ttlSeconds: number): Promise<void> {
  const id = jwtRecordId(jws);
  const ttl = ttlOf(ttlSeconds);
  const key = modelKey('AccessToken', id);
  await Promise.all([
    // The record's own id stands in for the token (oidc-provider destroys a found token by its jti).
    store.set(key, { ...payload, jti: id }, ttl),
    ...(payload.grantId ? [store.addToSet(grantIndexKey(payload.grantId), key, ttl)] : []),
  ]);
}

/** A live grant of an account, as stored: its OIDC scopes and per-resource scopes flattened. */
export interface StoredGrant {
  id: string;
  scopes: string[];
  offlineAccess: boolean;
  exp: number;
}

/**
 * The live grants `accountId` holds with `clientId` (read without a provider
 * context). `expected` are grant ids the caller saw last time: they are read
 * right behind the account's grant index, in the same round trip, and used
 * only if the index lists them; any other listed grant is read after.
 */
export async function grantsOf(store: Store, accountId: string, clientId: string, expected: readonly string[] = []): Promise<StoredGrant[]> {
  type Payload = { clientId?: string; accountId?: string; exp?: number; openid?: { scope?: string }; resources?: Record<string, string> };
  const listed = store.setMembers(accountGrantsKey(accountId));
  // Sent in the same tick, right behind the index read (on one Redis connection, in the same pipeline).
  const early = expected.map((id) => store.get<Payload>(modelKey('Grant', id)));
  // Reads of grants the index no longer lists are not awaited: they must not reject unhandled.
  for (const read of early) read.catch(() => {});
  const ids = await listed;
  const grants = await Promise.all(ids.map(async (id) => {
    const i = expected.indexOf(id);
    return { id, grant: await (i === -1 ? store.get<Payload>(modelKey('Grant', id)) : early[i]!) };
  }));
  const now = Date.now() / 1000;
  const out: StoredGrant[] = [];
  for (const { id, grant } of grants) {
    if (!grant || grant.clientId !== clientId || grant.accountId !== accountId || (grant.exp ?? Infinity) <= now) continue;
    const oidc = (grant.openid?.scope ?? '').split(' ').filter(Boolean);
    const resources = Object.values(grant.resources ?? {}).flatMap((scope) => String(scope).split(' ').filter(Boolean));
    out.push({ id, scopes: [...new Set([...oidc, ...resources])], offlineAccess: oidc.includes('offline_access'), exp: grant.exp ?? Infinity });
  }
  return out;
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
    if (this.model === 'Grant' && payload.accountId && !id.startsWith(EXCHANGED_GRANT_PREFIX)) {
      writes.push(store.addToSet(accountGrantsKey(payload.accountId), id, ttl));
    }
    if (payload.userCode) writes.push(store.set(userCodeKey(payload.userCode), id, ttl));
    if (this.model === 'Session' && payload.uid) writes.push(store.set(sessionUidKey(payload.uid), id, ttl));
    await Promise.all(writes);
  }

  async find(id: string): Promise<AdapterPayload | undefined> {
    // A recorded JWT access token (recordJwtAccessToken) is found by the token itself too.
    if (this.model === 'AccessToken' && isCompactJws(id)) return this.#store.get<AdapterPayload>(modelKey(this.model, jwtRecordId(id)));
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
    // A grant's exchanged descendants go with it, even when the grant itself has already expired.
    const cascade = this.model === 'Grant' ? revokeChildGrants(this.#store, id) : undefined;
    if (!payload) {
      await cascade;
      return;
    }
    const cleanups: Array<Promise<unknown>> = cascade ? [cascade] : [];
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
