/**
 * node-saml's CacheProvider on fedgate's Store: the IDs of the
 * AuthnRequests this deployment sent, so that `validateInResponseTo:
 * 'always'` accepts only responses to them (SAML profiles §4.1.4.3). Being
 * in the shared store, a login started on one replica can finish on any other.
 */
import type { CacheItem, CacheProvider } from '@node-saml/node-saml';
import type { Store } from '../../store/store.ts';

/** Store key of a sent AuthnRequest's ID. */
export const requestIdKey = (id: string) => `saml:authn-request:${id}`;

/** node-saml's CacheProvider contract, kept in the store with a time to live. */
export class StoreCacheProvider implements CacheProvider {
  readonly #store: Store;
  readonly #ttlSeconds: number;

  /** `ttlSeconds`: how long a request ID stays answerable. */
  constructor(store: Store, ttlSeconds: number) {
    this.#store = store;
    this.#ttlSeconds = ttlSeconds;
  }

  /** Remembers `value` (node-saml passes the request's IssueInstant) under `key`; null when the key already exists. */
  async saveAsync(key: string, value: string): Promise<CacheItem | null> {
    const item: CacheItem = { value, createdAt: Date.now() };
    return (await this.#store.setIfAbsent(requestIdKey(key), item, this.#ttlSeconds)) ? item : null;
  }

  /** The value saved under `key`, or null when unknown or expired. */
  async getAsync(key: string): Promise<string | null> {
    const item = await this.#store.get<CacheItem>(requestIdKey(key));
    return item?.value ?? null;
  }

  /** Forgets `key`; returns it when something was removed, else null. */
  async removeAsync(key: string | null): Promise<string | null> {
    if (key === null) return null;
    return (await this.#store.delete(requestIdKey(key))) ? key : null;
  }
}
