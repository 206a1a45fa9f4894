import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Accounts } from '../../src/accounts/accounts.ts';
import { GroupError, Groups } from '../../src/accounts/groups.ts';
import { MemoryStore } from '../../src/store/index.ts';

function setup() {
  const store = new MemoryStore();
  const accounts = new Accounts(store);
  const groups = new Groups(store, accounts);
  return { store, accounts, groups };
}

const code = (c: GroupError['code']) => (err: unknown) => err instanceof GroupError && err.code === c;

describe('groups', () => {
  it('creates groups under existing parents only, once', async () => {
    const { groups } = setup();
    await groups.create('/cms', 'CMS');
    await groups.create('/cms/production');
    await assert.rejects(groups.create('/atlas/production'), code('parent_missing'));
    await assert.rejects(groups.create('/cms'), code('exists'));
    await assert.rejects(groups.create('cms'), code('invalid_path'));
    await assert.rejects(groups.create('/cms/../atlas'), code('invalid_path'));
    assert.deepEqual(await groups.paths(), ['/cms', '/cms/production']);
    assert.deepEqual(await groups.descendants('/cms'), ['/cms/production']);
  });

  it('seeds parents first and skips what exists', async () => {
    const { groups } = setup();
    assert.deepEqual(await groups.seed([{ path: '/a/b' }, { path: '/a' }]), ['/a', '/a/b']);
    assert.deepEqual(await groups.seed([{ path: '/a' }, { path: '/c' }]), ['/c']);
  });

  it('keeps the member index with the accounts', async () => {
    const { groups, accounts } = setup();
    await groups.seed([{ path: '/cms' }, { path: '/cms/production' }]);
    const alice = await accounts.create({ username: 'alice', groups: ['/cms'] });
    assert.deepEqual(await accounts.memberIds('/cms'), [alice.id]);
    await groups.addMember('/cms/production', alice.id);
    assert.deepEqual((await accounts.findById(alice.id))!.groups, ['/cms', '/cms/production']);
    assert.equal(await groups.removeMember('/cms', alice.id), true);
    assert.equal(await groups.removeMember('/cms', alice.id), false, 'not a member any more');
    assert.deepEqual(await accounts.memberIds('/cms'), []);
    assert.deepEqual(await accounts.memberIds('/cms/production'), [alice.id]);
    await assert.rejects(groups.addMember('/nope', alice.id), code('not_found'));
  });

  it('renames a subtree and moves its members and nothing else', async () => {
    const { groups, accounts } = setup();
    await groups.seed([{ path: '/cms' }, { path: '/cms/production' }, { path: '/cms/production/t0' }, { path: '/cmsx' }, { path: '/hep' }]);
    const alice = await accounts.create({ username: 'alice', groups: ['/cms/production/t0', '/cmsx'] });
    const renames = await groups.rename('/cms', '/hep/cms');
    assert.deepEqual(renames, [['/cms', '/hep/cms'], ['/cms/production', '/hep/cms/production'], ['/cms/production/t0', '/hep/cms/production/t0']]);
    assert.deepEqual(await groups.paths(), ['/cmsx', '/hep', '/hep/cms', '/hep/cms/production', '/hep/cms/production/t0']);
    assert.deepEqual((await accounts.findById(alice.id))!.groups, ['/cmsx', '/hep/cms/production/t0'], 'a sibling with the same prefix is not renamed');
    assert.deepEqual(await accounts.memberIds('/hep/cms/production/t0'), [alice.id]);
    assert.deepEqual(await accounts.memberIds('/cms/production/t0'), []);
    await assert.rejects(groups.rename('/hep', '/hep/inner'), code('invalid_path'));
    await assert.rejects(groups.rename('/hep', '/cmsx'), code('exists'));
    await assert.rejects(groups.rename('/cmsx', '/none/cmsx'), code('parent_missing'));
    await assert.rejects(groups.rename('/missing', '/m'), code('not_found'));
  });

  it('refuses to delete a group that would orphan subgroups or members', async () => {
    const { groups, accounts } = setup();
    await groups.seed([{ path: '/cms' }, { path: '/cms/production' }]);
    const bob = await accounts.create({ username: 'bob', groups: ['/cms/production'] });
    await assert.rejects(groups.delete('/cms'), code('not_empty'));
    await assert.rejects(groups.delete('/cms/production'), code('not_empty'));
    await groups.removeMember('/cms/production', bob.id);
    await groups.delete('/cms/production');
    await groups.delete('/cms');
    assert.deepEqual(await groups.paths(), []);
    await assert.rejects(groups.delete('/cms'), code('not_found'));
  });

  it('builds the member index once for accounts that predate it', async () => {
    const { store, accounts } = setup();
    const carol = await accounts.create({ username: 'carol', groups: ['/atlas'] });
    await store.delete('group-members:/atlas');
    await accounts.ensureMemberIndex();
    assert.deepEqual(await accounts.memberIds('/atlas'), [carol.id]);
  });
});
