/**
 * Account updates are compare-and-set on the real Redis, from two Accounts
 * instances (two replicas): concurrent changes of different fields all land.
 * Before, each update wrote back the whole record it had read, so a disable
 * racing an identity link lost one of them.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { Accounts } from '../../src/accounts/accounts.ts';
import { RedisStore } from '../../src/store/index.ts';
import { deleteRedisPrefix, REDIS_URL } from '../support/harness.ts';

const prefix = `fedgate-test-${randomBytes(6).toString('hex')}:`;

describe('concurrent account updates (real Redis, two replicas)', () => {
  const stores = [new RedisStore({ url: REDIS_URL, keyPrefix: prefix }), new RedisStore({ url: REDIS_URL, keyPrefix: prefix })];
  const [one, two] = stores.map((store) => new Accounts(store)) as [Accounts, Accounts];
  after(async () => {
    await Promise.all(stores.map((s) => s.close()));
    await deleteRedisPrefix(prefix);
  });

  it('a disable and an identity link at the same time: both land (50 accounts)', async () => {
    for (let i = 0; i < 50; i++) {
      const account = await one.create({ username: `user-${i}-${randomBytes(4).toString('hex')}`, groups: ['/cms'] });
      const identity = { type: 'saml' as const, issuer: 'https://idp.example.org/idp', subject: `${account.id}@example.org` };
      await Promise.all([one.setDisabled(account.id, true), two.link(account.id, identity)]);
      const stored = (await one.findById(account.id))!;
      assert.equal(stored.disabled, true, `account ${i}: the disable was lost`);
      assert.deepEqual(stored.identities.map((x) => x.subject), [identity.subject], `account ${i}: the link was lost`);
      assert.equal((await two.findByIdentity('saml', identity.issuer, identity.subject))?.id, account.id);
    }
  });

  it('many concurrent changes of different fields from both replicas all land', async () => {
    const account = await one.create({ username: `many-${randomBytes(4).toString('hex')}` });
    const links = Array.from({ length: 10 }, (_, i) => ({ type: 'x509' as const, issuer: 'CN=CA', subject: `CN=user ${i}` }));
    await Promise.all([
      ...links.map((identity, i) => (i % 2 ? one : two).link(account.id, identity)),
      two.setGroups(account.id, ['/atlas', '/ml-users']),
      one.setAssurance(account, ['https://refeds.org/assurance/IAP/medium']),
      two.setDisabled(account.id, true),
    ]);
    const stored = (await two.findById(account.id))!;
    assert.deepEqual(stored.identities.map((x) => x.subject).sort(), links.map((x) => x.subject).sort());
    assert.deepEqual(stored.groups, ['/atlas', '/ml-users']);
    assert.deepEqual(stored.assurance, ['https://refeds.org/assurance/IAP/medium']);
    assert.equal(stored.disabled, true);
  });
});
