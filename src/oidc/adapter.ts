import Provider, { errors } from 'oidc-provider';
import type { Adapter, AdapterPayload } from 'oidc-provider';
import type { Store } from '../store/store.ts';
import {
  accountGrantsKey, artifactKey, destroyGrant, EXCHANGED_GRANT_PREFIX, grantIndexKey, joinGrant, jwtRecordId, revokeGrant, ttlOf,
} from '../grants/grants.ts';
import { indexClient, indexInitialAccessToken, isDisabledClient, unindexClient, unindexInitialAccessToken } from './client-records.ts';
import { isCompactJws } from '../tokens/own-tokens.ts';

/** How oidc-provider names each one-time artifact in its `invalid_grant` details. */
const ARTIFACT_LABELS: Readonly<Record<string, string>> = {
  AuthorizationCode: 'authorization code',
  RefreshToken: 'refresh token',
  DeviceCode: 'device code',
  BackchannelAuthenticationRequest: 'backchannel authentication request',
  PreAuthorizedCode: 'pre-authorized code',
};

/** Models whose artifacts belong to a grant and die with it. */
const GRANTABLE = new Set([
  'AccessToken',
  'AuthorizationCode',
  'RefreshToken',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
  'PreAuthorizedCode',
]);

const modelKey = artifactKey;
const userCodeKey = (userCode: string) => `oidc:user-code:${userCode}`;
const sessionUidKey = (uid: string) => `oidc:session-uid:${uid}`;

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
    // Clients are listed through an index by id and name (src/oidc/client-records.ts); a rename moves their entry.
    const previousClient = this.model === 'Client' ? await store.get<AdapterPayload>(key) : undefined;
    const writes: Array<Promise<unknown>> = [store.set(key, payload, ttl)];
    if (this.model === 'Client') writes.push(indexClient(store, id, previousClient, payload));
    if (this.model === 'InitialAccessToken') writes.push(indexInitialAccessToken(store, id, payload, ttl));
    if (this.model === 'Grant' && payload.accountId && !id.startsWith(EXCHANGED_GRANT_PREFIX)) {
      writes.push(store.addToSet(accountGrantsKey(payload.accountId), id, ttl));
    }
    if (payload.userCode) writes.push(store.set(userCodeKey(payload.userCode), id, ttl));
    if (this.model === 'Session' && payload.uid) writes.push(store.set(sessionUidKey(payload.uid), id, ttl));
    await Promise.all(writes);
    if (GRANTABLE.has(this.model) && payload.grantId) await joinGrant(store, payload.grantId, key, ttl);
  }

  async find(id: string): Promise<AdapterPayload | undefined> {
    // A recorded JWT access token (recordJwtAccessToken) is found by the token itself too.
    if (this.model === 'AccessToken' && isCompactJws(id)) return this.#store.get<AdapterPayload>(modelKey(this.model, jwtRecordId(id)));
    const payload = await this.#store.get<AdapterPayload>(modelKey(this.model, id));
    // A client an admin disabled is not found: oidc-provider answers invalid_client wherever it authenticates.
    if (this.model === 'Client' && isDisabledClient(payload)) return undefined;
    return payload;
  }

  async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
    const id = await this.#store.get<string>(userCodeKey(userCode));
    return id ? this.find(id) : undefined;
  }

  async findByUid(uid: string): Promise<AdapterPayload | undefined> {
    const id = await this.#store.get<string>(sessionUidKey(uid));
    return id ? this.find(id) : undefined;
  }

  /**
   * Consumes a one-time artifact in one atomic store step (Store.consume).
   * oidc-provider checks `consumed` on the artifact it read and then calls
   * this; two requests that read it at the same time both get here, and
   * only one wins. The other is answered as a reuse: the grant goes with
   * everything issued from it, as oidc-provider does for a reuse it sees
   * itself (`consumeGrantSource`; the refresh token grant), and the request
   * fails with the error it would have got then.
   */
  async consume(id: string): Promise<void> {
    const result = await this.#store.consume<AdapterPayload>(modelKey(this.model, id), Math.floor(Date.now() / 1000));
    if (result.outcome === 'consumed') return;
    const label = ARTIFACT_LABELS[this.model] ?? this.model;
    if (this.model === 'PushedAuthorizationRequest') throw new errors.InvalidRequestUri('request_uri is invalid, expired, or was already used');
    if (result.outcome === 'absent') throw new errors.InvalidGrant(`${label} not found`);
    const grantId = result.value.grantId;
    if (grantId) {
      await revokeGrant(this.#store, grantId);
      const ctx = Provider.ctx;
      ctx?.oidc.provider.emit('grant.revoked', ctx, grantId);
    }
    throw new errors.InvalidGrant(this.model === 'RefreshToken' ? 'refresh token already used' : `${label} already consumed`);
  }

  async destroy(id: string): Promise<void> {
    const key = modelKey(this.model, id);
    const payload = await this.#store.get<AdapterPayload>(key);
    // A grant's member set is sealed and its exchanged descendants go with it, even when the grant itself has already expired.
    if (this.model === 'Grant') return destroyGrant(this.#store, id, payload);
    await this.#store.delete(key);
    if (this.model === 'InitialAccessToken') await unindexInitialAccessToken(this.#store, id);
    if (!payload) return;
    const cleanups: Array<Promise<unknown>> = [];
    if (this.model === 'Client') cleanups.push(unindexClient(this.#store, id, payload));
    if (GRANTABLE.has(this.model) && payload.grantId) cleanups.push(this.#store.removeFromSet(grantIndexKey(payload.grantId), key));
    if (payload.userCode) cleanups.push(this.#store.delete(userCodeKey(payload.userCode)));
    if (this.model === 'Session' && payload.uid) cleanups.push(this.#store.delete(sessionUidKey(payload.uid)));
    await Promise.all(cleanups);
  }

  async revokeByGrantId(grantId: string): Promise<void> {
    // Drained in one step: a token joining meanwhile stays listed for the grant's own revocation.
    const members = await this.#store.drainSet(grantIndexKey(grantId));
    await Promise.all(members.map((key) => this.#store.delete(key)));
  }
}

/** The adapter factory oidc-provider's `adapter` option takes. */
export function storeAdapterFactory(store: Store): (model: string) => StoreAdapter {
  return (model) => new StoreAdapter(model, store);
}
