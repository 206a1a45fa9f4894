import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { grantsOf, linkChildGrant, revokeGrant } from '../../src/grants/grants.ts';
import { storeAdapterFactory } from '../../src/oidc/adapter.ts';
import { RedisStore } from '../../src/store/redis-store.ts';
import { deleteRedisPrefix } from '../support/harness.ts';

/**
 * The stored-grant reads and links token exchange relies on, on a real
 * Redis: which grants of a user count as live, and how an exchanged grant
 * is tied to the grants it came from.
 */
const keyPrefix = `fedgate-test-${randomBytes(6).toString('hex')}:`;
const store = new RedisStore({ url: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', keyPrefix });
const grants = storeAdapterFactory(store)('Grant');
const inAnHour = () => Math.floor(Date.now() / 1000) + 3600;

after(async () => {
  await store.close();
  await deleteRedisPrefix(keyPrefix);
});

async function saveGrant(id: string, accountId: string, clientId: string, scope = 'openid'): Promise<void> {
  await grants.upsert(id, { jti: id, kind: 'Grant', accountId, clientId, exp: inAnHour(), openid: { scope }, resources: { 'https://storage.demo': 'storage.read:/home' } }, 3600);
}

describe('stored grants for token exchange', () => {
  it('reads the live grants of a user with a client, using expected ids only while the index lists them', async () => {
    const account = `acct-${randomBytes(4).toString('hex')}`;
    await saveGrant('g-portal-1', account, 'portal', 'openid offline_access');
    await saveGrant('g-portal-2', account, 'portal');
    await saveGrant('g-other', account, 'other');

    const all = await grantsOf(store, account, 'portal');
    assert.deepEqual(all.map((g) => g.id).sort(), ['g-portal-1', 'g-portal-2']);
    const first = all.find((g) => g.id === 'g-portal-1')!;
    assert.equal(first.offlineAccess, true);
    assert.deepEqual(first.scopes.sort(), ['offline_access', 'openid', 'storage.read:/home']);

    // The same answer with the ids it gave last time read alongside the index.
    assert.deepEqual((await grantsOf(store, account, 'portal', ['g-portal-1', 'g-portal-2'])).map((g) => g.id).sort(), ['g-portal-1', 'g-portal-2']);

    // A revoked grant is gone even when expected; a grant the index lists but nobody expected is still read.
    await grants.destroy('g-portal-1');
    await saveGrant('g-portal-3', account, 'portal');
    assert.deepEqual((await grantsOf(store, account, 'portal', ['g-portal-1', 'g-portal-2'])).map((g) => g.id).sort(), ['g-portal-2', 'g-portal-3']);

    // An expected id whose grant exists but which the user's index does not list does not count (another user's grant).
    const stranger = `acct-${randomBytes(4).toString('hex')}`;
    await saveGrant('g-stranger', stranger, 'portal');
    assert.deepEqual((await grantsOf(store, account, 'portal', ['g-stranger'])).map((g) => g.id).sort(), ['g-portal-2', 'g-portal-3']);
  });

  it('links an exchanged grant to live parents, revokes it with them, and reports a parent already revoked', async () => {
    const account = `acct-${randomBytes(4).toString('hex')}`;
    await saveGrant('p-live', account, 'portal');
    await saveGrant('xg-child', account, 'orchestrator');
    assert.equal(await linkChildGrant(store, ['p-live'], 'xg-child', 3600), true);
    await revokeGrant(store, 'p-live');
    assert.equal(await grants.find('xg-child'), undefined, 'the child goes with its parent');

    // Revoked before the link landed: the link says so, and the exchange must not go on.
    await saveGrant('p-revoked', account, 'portal');
    await saveGrant('xg-late', account, 'orchestrator');
    await grants.destroy('p-revoked');
    assert.equal(await linkChildGrant(store, ['p-revoked'], 'xg-late', 3600), false);
    // Without parents (a subject token from a trusted external issuer) there is nothing to be revoked with.
    assert.equal(await linkChildGrant(store, [], 'xg-late', 3600), true);
  });
});
