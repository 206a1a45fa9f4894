/**
 * The store records beside oidc-provider's own for dynamically registered
 * clients and initial access tokens, kept by the store adapter
 * (`StoreAdapter.upsert`/`find`/`destroy`), so every way a client or token
 * is written (registration, registration management, the admin API, data
 * source introspection clients, the CLI) keeps them:
 *
 * - `client-index`: a sorted index of `<client_id>\0<lower-cased name>`,
 *   for listing and searching clients without reading every one;
 * - a client's `fedgate_disabled` mark: the adapter does not find a disabled
 *   client, so oidc-provider answers `invalid_client` wherever it
 *   authenticates (token, introspection, revocation, registration
 *   management) on every replica, since dynamic clients are read from the
 *   store on each request;
 * - `oidc:iat-index` and `oidc:iat-handle:<handle>`: initial access tokens
 *   by a handle derived from the token (the token itself is the secret and
 *   is never listed), so they can be listed and revoked.
 */
import { createHash } from 'node:crypto';
import type { AdapterPayload } from 'oidc-provider';
import type { Store } from '../store/store.ts';

export const CLIENT_INDEX = 'client-index';
/** The client property the admin API sets to disable a dynamically registered client. */
export const CLIENT_DISABLED = 'fedgate_disabled';
const IAT_INDEX = 'oidc:iat-index';
const iatHandleKey = (handle: string) => `oidc:iat-handle:${handle}`;

/** A client's member of {@link CLIENT_INDEX}. */
export function clientIndexMember(clientId: string, name: unknown): string {
  return `${clientId}\u0000${typeof name === 'string' ? name.toLowerCase().replaceAll('\u0000', '') : ''}`;
}

/** The client id of a member of {@link CLIENT_INDEX}. */
export function clientIdOfMember(member: string): string {
  return member.split('\u0000', 1)[0]!;
}

/** Where a page of clients after `clientId` starts in the index: past every member of that id. */
export function clientIndexAfter(clientId: string): string {
  return `${clientId}\u0001`;
}

/** True for a client payload the admin API disabled. */
export function isDisabledClient(payload: AdapterPayload | undefined): boolean {
  return !!payload && (payload as Record<string, unknown>)[CLIENT_DISABLED] === true;
}

/** Keeps the client index in step with a client written (renamed clients move). */
export async function indexClient(store: Store, clientId: string, previous: AdapterPayload | undefined, payload: AdapterPayload): Promise<void> {
  const member = clientIndexMember(clientId, payload.client_name);
  const before = previous ? clientIndexMember(clientId, previous.client_name) : undefined;
  await Promise.all([
    store.addToIndex(CLIENT_INDEX, [member]),
    ...(before !== undefined && before !== member ? [store.removeFromIndex(CLIENT_INDEX, [before])] : []),
  ]);
}

export async function unindexClient(store: Store, clientId: string, previous: AdapterPayload | undefined): Promise<void> {
  if (previous) await store.removeFromIndex(CLIENT_INDEX, [clientIndexMember(clientId, previous.client_name)]);
}

/** The public handle of an initial access token: derived from it, revealing nothing of it. */
export function initialAccessTokenHandle(token: string): string {
  return createHash('sha256').update(`fedgate initial access token\n${token}`).digest('base64url').slice(0, 22);
}

interface HandleRecord {
  token: string;
  member: string;
}

/** Records an initial access token under its handle, in creation order, for as long as the token lives. */
export async function indexInitialAccessToken(store: Store, token: string, payload: AdapterPayload, ttl: number | undefined): Promise<void> {
  const handle = initialAccessTokenHandle(token);
  const created = typeof payload.iat === 'number' ? payload.iat : Math.floor(Date.now() / 1000);
  const member = `${String(created).padStart(12, '0')}-${handle}`;
  await Promise.all([
    store.set(iatHandleKey(handle), { token, member } satisfies HandleRecord, ttl),
    store.addToIndex(IAT_INDEX, [member]),
  ]);
}

export async function unindexInitialAccessToken(store: Store, token: string): Promise<void> {
  const handle = initialAccessTokenHandle(token);
  const record = await store.get<HandleRecord>(iatHandleKey(handle));
  await Promise.all([store.delete(iatHandleKey(handle)), ...(record ? [store.removeFromIndex(IAT_INDEX, [record.member])] : [])]);
}

/** An initial access token as listed: never the token. */
export interface InitialAccessTokenView {
  id: string;
  created_at: number;
  expires_at: number | null;
}

/**
 * One page of live initial access tokens, oldest first. Tokens used up or
 * expired since (a registration deletes its token directly) are dropped from
 * the index as they are met.
 */
export async function initialAccessTokenPage(store: Store, after: string | undefined, limit: number): Promise<{ tokens: InitialAccessTokenView[]; next: string | undefined }> {
  const page = await store.scanIndex(IAT_INDEX, { after, limit });
  const handles = page.members.map((m) => m.slice(13));
  const records = await Promise.all(handles.map((h) => store.get<HandleRecord>(iatHandleKey(h))));
  const payloads = await Promise.all(records.map((r) => (r ? store.get<AdapterPayload>(`oidc:InitialAccessToken:${r.token}`) : undefined)));
  const tokens: InitialAccessTokenView[] = [];
  const gone: string[] = [];
  page.members.forEach((member, i) => {
    const payload = payloads[i];
    if (!payload || payload.consumed) {
      gone.push(member);
      return;
    }
    tokens.push({ id: handles[i]!, created_at: Number(member.slice(0, 12)), expires_at: typeof payload.exp === 'number' ? payload.exp : null });
  });
  if (gone.length) await store.removeFromIndex(IAT_INDEX, gone);
  return { tokens, next: page.next };
}

/** The token behind a handle, while it lives. */
export async function initialAccessTokenOf(store: Store, handle: string): Promise<string | undefined> {
  if (!/^[A-Za-z0-9_-]{22}$/.test(handle)) return undefined;
  const record = await store.get<HandleRecord>(iatHandleKey(handle));
  if (!record || !(await store.get(`oidc:InitialAccessToken:${record.token}`))) return undefined;
  return record.token;
}
