/**
 * A token written in the same instant as its grant is revoked does not
 * outlive the revocation: whichever order the store sees the two in, the
 * token is either deleted with the grant or refused (`invalid_grant`).
 * Run on the real Redis and on the memory store, with the two started in
 * every relative order a few event loop turns apart.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { errors } from 'oidc-provider';
import { linkChildGrant, revokeGrant } from '../../src/grants/grants.ts';
import { StoreAdapter } from '../../src/oidc/adapter.ts';
import { MemoryStore, RedisStore } from '../../src/store/index.ts';
import type { Store } from '../../src/store/store.ts';
import { deleteRedisPrefix, REDIS_URL } from '../support/harness.ts';

const ROUNDS = 200;

/** Waits `turns` turns of the event loop. */
async function turns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve));
}

const id = () => randomBytes(12).toString('base64url');

/** What oidc-provider's revoke() does for a grant: every model's revokeByGrantId and the Grant's destroy, at once. */
async function providerRevoke(store: Store, grantId: string): Promise<void> {
  await Promise.all([
    ...['AccessToken', 'RefreshToken', 'AuthorizationCode', 'DeviceCode'].map((model) => new StoreAdapter(model, store).revokeByGrantId(grantId)),
    new StoreAdapter('Grant', store).destroy(grantId),
  ]);
}

function suite(name: string, makeStore: () => Store, cleanup: () => Promise<void>): void {
  describe(`grant revocation against concurrent issuance (${name})`, () => {
    const store = makeStore();
    after(async () => {
      await store.close();
      await cleanup();
    });

    for (const [how, revoke] of [['as oidc-provider revokes', providerRevoke], ['as an account is disabled', revokeGrant]] as const) {
      it(`leaves no token of a grant revoked ${how} in the same instant (${ROUNDS} rounds)`, async () => {
        const grants = new StoreAdapter('Grant', store);
        const refreshTokens = new StoreAdapter('RefreshToken', store);
        let refused = 0;
        for (let round = 0; round < ROUNDS; round++) {
          const grantId = id();
          const tokenId = id();
          await grants.upsert(grantId, { accountId: 'acc', clientId: 'client', exp: Math.floor(Date.now() / 1000) + 600 } as never, 600);
          const issue = (async () => {
            await turns(round % 4);
            await refreshTokens.upsert(tokenId, { grantId, accountId: 'acc', clientId: 'client' } as never, 600);
          })();
          const revoked = (async () => {
            await turns(Math.floor(round / 4) % 4);
            await revoke(store, grantId);
          })();
          const [issued] = await Promise.allSettled([issue, revoked]);
          if (issued.status === 'rejected') {
            assert.ok(issued.reason instanceof errors.InvalidGrant, `issuance fails only as invalid_grant: ${issued.reason}`);
            refused += 1;
          }
          assert.equal(await refreshTokens.find(tokenId), undefined, `round ${round}: the token outlived its grant's revocation`);
          assert.equal(await grants.find(grantId), undefined);
        }
        assert.ok(refused > 0 && refused < ROUNDS, `both orders occurred (${refused} of ${ROUNDS} issuances refused)`);
      });
    }

    it('tells an exchange linking a child to a grant revoked in the same instant that it was not linked', async () => {
      const grants = new StoreAdapter('Grant', store);
      for (let round = 0; round < ROUNDS; round++) {
        const parent = id();
        const child = id();
        await grants.upsert(parent, { accountId: 'acc', clientId: 'client' } as never, 600);
        await grants.upsert(child, { accountId: 'acc', clientId: 'other' } as never, 600);
        const [linked] = await Promise.all([
          (async () => { await turns(round % 3); return linkChildGrant(store, [parent], child, 600); })(),
          (async () => { await turns(Math.floor(round / 3) % 3); await grants.destroy(parent); })(),
        ]);
        // Linked means the child is revoked with the parent; not linked means the exchange gives nothing out.
        if (linked) assert.equal(await grants.find(child), undefined, `round ${round}: a linked child outlived its parent`);
      }
    });
  });
}

const prefix = `fedgate-test-${randomBytes(6).toString('hex')}:`;
suite('Redis', () => new RedisStore({ url: REDIS_URL, keyPrefix: prefix }), () => deleteRedisPrefix(prefix));
suite('memory', () => new MemoryStore(), async () => {});
