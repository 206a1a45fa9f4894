/**
 * Grants and their revocation, below both the provider (src/oidc, whose store
 * adapter writes and destroys them) and token exchange (src/exchange, which
 * links the grants it makes to the ones they come from): the one place that
 * knows how a grant, its artifacts, its exchanged children and an account's
 * grant index are kept in the store.
 */
import { createHash } from 'node:crypto';
import { errors, type AdapterPayload } from 'oidc-provider';
import type { Store } from '../store/store.ts';

const modelKey = (model: string, id: string) => `oidc:${model}:${id}`;

/** The store key of an oidc-provider artifact (`oidc:<Model>:<id>`). */
export function artifactKey(model: string, id: string): string {
  return modelKey(model, id);
}
/** The set of a grant's artifact keys, sealed once the grant is revoked. */
export const grantIndexKey = (grantId: string): string => `oidc:grant-members:${grantId}`;
/** The set of grant ids an account holds (exchanged grants stay out of it). */
export const accountGrantsKey = (accountId: string): string => `oidc:account-grants:${accountId}`;
/** Grants made by token exchange from this grant's tokens: revoked with it (RFC 8693 chains). */
const grantChildrenKey = (grantId: string) => `oidc:grant-children:${grantId}`;

/**
 * Ids of grants made by token exchange start with this. They stay out of
 * the account's grant index (which exchanged grants would swell by one per
 * exchange): they die with the grants they come from, and a disabled
 * account's tokens are refused wherever they are checked.
 */
export const EXCHANGED_GRANT_PREFIX = 'xg-';

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
export function ttlOf(expiresIn: number | undefined): number | undefined {
  return typeof expiresIn === 'number' ? Math.max(1, Math.ceil(expiresIn)) : undefined;
}

/**
 * How long a revoked grant refuses new tokens and children: the rest of its
 * own life, at least {@link MIN_SEAL_SECONDS} (longer than any request that
 * read the grant before it went runs), {@link UNKNOWN_SEAL_SECONDS} when its
 * expiry is unknown.
 */
const MIN_SEAL_SECONDS = 300;
const UNKNOWN_SEAL_SECONDS = 30 * 24 * 3600;

function sealSeconds(exp: unknown): number {
  if (typeof exp !== 'number') return UNKNOWN_SEAL_SECONDS;
  return Math.max(MIN_SEAL_SECONDS, Math.ceil(exp - Date.now() / 1000));
}

/**
 * Revokes a grant: deletes it, every artifact of it and the grants token
 * exchange derived from it. Used by the Grant adapter's destroy (oidc-provider's
 * revocations) and, without a provider context, when an account is disabled.
 *
 * The grant's member set is sealed, not just deleted: a token written in the
 * same instant (a refresh or exchange that read the grant just before) is
 * either among the members drained here, or refused when it tries to join
 * (see `StoreAdapter.upsert`, src/oidc/adapter.ts). No ordering of clocks decides it.
 */
export async function revokeGrant(store: Store, grantId: string): Promise<void> {
  await destroyGrant(store, grantId, await store.get<AdapterPayload>(modelKey('Grant', grantId)));
}

/** {@link revokeGrant} with the grant's payload already read (the adapter's destroy). */
export async function destroyGrant(store: Store, grantId: string, payload: AdapterPayload | undefined): Promise<void> {
  const seal = sealSeconds(payload?.exp);
  // The grant first: an exchange linking a child reads it after linking (linkChildGrant).
  await store.delete(modelKey('Grant', grantId));
  const members = await store.drainSet(grantIndexKey(grantId), seal);
  await Promise.all([
    ...members.map((key) => store.delete(key)),
    ...(payload?.accountId ? [store.removeFromSet(accountGrantsKey(String(payload.accountId)), grantId)] : []),
    revokeChildGrants(store, grantId, seal),
  ]);
}

/**
 * Revokes the grants token exchange derived from `grantId`'s tokens, and
 * theirs in turn: an exchanged token never outlives the grant it came from.
 * The children set is sealed like the member set: a child linked in the
 * same instant is either revoked here or told it was not linked.
 */
async function revokeChildGrants(store: Store, grantId: string, seal: number, seen = new Set<string>([grantId])): Promise<void> {
  const children = (await store.drainSet(grantChildrenKey(grantId), seal)).filter((id) => !seen.has(id));
  for (const child of children) seen.add(child);
  await Promise.all(children.map(async (child) => {
    await store.delete(modelKey('Grant', child));
    const members = await store.drainSet(grantIndexKey(child), seal);
    await Promise.all(members.map((key) => store.delete(key)));
    await revokeChildGrants(store, child, seal, seen);
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
  const linked = await Promise.all(parentGrantIds.map((parent) => store.addToSet(grantChildrenKey(parent), childGrantId, ttlOf(ttlSeconds))));
  if (!linked.every(Boolean)) return false;
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
  // The record's own id stands in for the token (oidc-provider destroys a found token by its jti).
  await store.set(key, { ...payload, jti: id }, ttl);
  if (payload.grantId) await joinGrant(store, payload.grantId, key, ttl);
}

/**
 * Adds a stored artifact to its grant's member set, after the artifact is
 * written (so a revocation that drains the set deletes a key that exists).
 * A revoked grant's set is sealed: then the artifact is deleted again and
 * the request fails with `invalid_grant`, as it would a moment later.
 */
export async function joinGrant(store: Store, grantId: string, key: string, ttl: number | undefined): Promise<void> {
  if (await store.addToSet(grantIndexKey(grantId), key, ttl)) return;
  await store.delete(key);
  throw new errors.InvalidGrant('the grant has been revoked');
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
  const grants = await store.drainSet(accountGrantsKey(accountId));
  await Promise.all(grants.map((grantId) => revokeGrant(store, grantId)));
  return grants.length;
}
