import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type AccountError, Accounts, effectiveGroups } from '../../src/accounts/accounts.ts';
import { MemoryStore } from '../../src/store/index.ts';

describe('accounts', () => {
  it('expands hierarchical groups: /cms/production implies /cms', () => {
    assert.deepEqual(effectiveGroups(['/cms/production/tier0', '/atlas']), ['/atlas', '/cms', '/cms/production', '/cms/production/tier0']);
    assert.deepEqual(effectiveGroups([]), []);
  });

  it('creates accounts with unique usernames and verifies argon2id passwords', async () => {
    const accounts = new Accounts(new MemoryStore());
    const alice = await accounts.create({ username: 'alice', password: 'pw-alice', groups: ['/cms'] });
    assert.match(alice.passwordHash!, /^\$argon2id\$/);
    await assert.rejects(accounts.create({ username: 'ALICE' }), (err: AccountError) => err.code === 'username_taken');
    assert.equal((await accounts.verifyPassword('alice', 'pw-alice'))?.id, alice.id);
    assert.equal(await accounts.verifyPassword('alice', 'wrong'), undefined);
    assert.equal(await accounts.verifyPassword('nobody', 'pw-alice'), undefined);
  });

  it('seeds from configuration once and never overwrites what the store holds', async () => {
    const accounts = new Accounts(new MemoryStore());
    const first = await accounts.seed({ username: 'bob', password: 'one', groups: ['/atlas'] });
    assert.equal(first.created, true);
    await accounts.setGroups(first.account.id, ['/atlas', '/admins']);
    const second = await accounts.seed({ username: 'bob', password: 'two', groups: ['/atlas'] });
    assert.equal(second.created, false);
    assert.deepEqual(second.account.groups, ['/admins', '/atlas']);
    assert.ok(await accounts.verifyPassword('bob', 'one'));
  });

  it('links external identities to one account and refuses one linked elsewhere', async () => {
    const accounts = new Accounts(new MemoryStore());
    const alice = await accounts.create({ username: 'alice' });
    const bob = await accounts.create({ username: 'bob' });
    const dn = { type: 'x509' as const, issuer: 'CN=Test CA,O=Grid', subject: 'CN=Alice,O=Grid' };
    const saml = { type: 'saml' as const, issuer: 'https://idp.example.org/idp', subject: 'alice@example.org' };
    await accounts.link(alice.id, dn);
    await accounts.link(alice.id, saml);
    assert.equal((await accounts.findByIdentity('x509', dn.issuer, dn.subject))?.id, alice.id);
    assert.equal((await accounts.findByIdentity('saml', saml.issuer, saml.subject))?.id, alice.id);
    await assert.rejects(accounts.link(bob.id, dn), (err: AccountError) => err.code === 'identity_taken');
    const unlinked = await accounts.unlink(alice.id, dn);
    assert.deepEqual(unlinked.identities.map((i) => i.type), ['saml']);
    assert.equal(await accounts.findByIdentity('x509', dn.issuer, dn.subject), undefined);
    await accounts.link(bob.id, dn);
    assert.equal((await accounts.findByIdentity('x509', dn.issuer, dn.subject))?.id, bob.id);
  });

  it('runs the onDisabled hook when an account is disabled', async () => {
    const accounts = new Accounts(new MemoryStore());
    const carol = await accounts.create({ username: 'carol' });
    const seen: string[] = [];
    accounts.onDisabled = async (a) => { seen.push(a.id); };
    await accounts.setDisabled(carol.id, true);
    assert.deepEqual(seen, [carol.id]);
    assert.equal((await accounts.findById(carol.id))?.disabled, true);
  });
});
