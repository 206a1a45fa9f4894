import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { randomUUID } from 'node:crypto';
import { adminCall } from '../support/admin-api.ts';
import { adminToken as obtainAdminToken, startServer, type TestServer } from '../support/harness.ts';

type Json = Record<string, any>;

/** Pages, searches and filters of the admin API lists, over real HTTP on real Redis. */
describe('admin API: paged and searched lists', () => {
  let server: TestServer;
  let adminToken: string;
  const ACCOUNTS = 1500;
  const usernames: string[] = [];

  const call = (path: string, init: { method?: string; body?: unknown } = {}) => adminCall(server.issuer, adminToken, path, init);

  /** Every item of a paged list, following `next` until it is null. */
  const all = async (path: string, key: string): Promise<Json[]> => {
    const items: Json[] = [];
    let cursor: string | null = null;
    for (let pages = 0; pages < 1000; pages += 1) {
      const sep = path.includes('?') ? '&' : '?';
      const res = await call(`${path}${cursor ? `${sep}cursor=${cursor}` : ''}`);
      assert.equal(res.status, 200, JSON.stringify(res.json));
      assert.ok(Array.isArray(res.json[key]), `${key} is the array key`);
      assert.ok('next' in res.json, 'a page always says next');
      items.push(...res.json[key]);
      cursor = res.json.next;
      if (cursor === null) return items;
    }
    assert.fail('the list did not end');
  };

  before(async () => {
    // Thousands of writes on the shared Redis while other suites run: a generous store deadline, so a busy machine is not an outage.
    server = await startServer({ redis: true, configure: (config) => { config.store.deadlineMs = 15_000; } });
    adminToken = await obtainAdminToken(server.issuer);
    const { accounts, groups } = server.fedgate;
    // A tree: /lists-N (20) with /lists-N/sub-M (10 each) under /lists-0 .. plus a deep branch.
    for (let n = 0; n < 20; n += 1) await groups.create(`/lists-${n}`, `list group ${n}`);
    await Promise.all(Array.from({ length: 200 }, (_, i) => groups.create(`/lists-${i % 20}/sub-${String(i).padStart(3, '0')}`)));
    await groups.create('/lists-0/sub-000/deep');
    // Small batches: the shared Redis answers every batch within the store's deadline even on a busy machine.
    for (let i = 0; i < ACCOUNTS; i += 100) {
      await Promise.all(Array.from({ length: Math.min(100, ACCOUNTS - i) }, (_, j) => {
        const n = i + j;
        const username = `lister${String(n).padStart(5, '0')}`;
        usernames.push(username);
        return accounts.create({
          username,
          name: n % 100 === 7 ? `Ada Lovelace ${n}` : `Person ${n}`,
          email: `${username}@${n % 3 === 0 ? 'cern.ch' : 'example.org'}`,
          groups: n % 10 === 0 ? ['/lists-1'] : n % 10 === 1 ? ['/lists-1/sub-001'] : n === 2 ? ['/lists-0/sub-000/deep'] : [],
        });
      }));
    }
  });
  after(() => server.cleanup());

  it('pages through every account in username order, with the total', async () => {
    const first = await call('/accounts?limit=200');
    assert.equal(first.status, 200);
    assert.equal(first.json.accounts.length, 200);
    const total = first.json.total as number;
    assert.ok(total >= ACCOUNTS + 3, `total counts the demo accounts too (${total})`);
    const listed = await all('/accounts?limit=200', 'accounts');
    assert.equal(listed.length, total, 'every account once');
    const names = listed.map((a) => a.username as string);
    assert.deepEqual(names, [...names].sort((a, b) => (a.toLowerCase() < b.toLowerCase() ? -1 : 1)), 'in username order');
    assert.equal(new Set(names).size, names.length, 'no account twice');
    for (const u of usernames) assert.ok(names.includes(u), `${u} listed`);
    const one = listed.find((a) => a.username === 'lister00010')!;
    assert.deepEqual(one.groups, ['/lists-1']);
    assert.deepEqual(one.effective_groups, ['/lists-1']);
  });

  it('searches usernames, names and emails in the store, case-insensitively', async () => {
    const ada = await all('/accounts?q=LOVELACE&limit=7', 'accounts');
    assert.deepEqual(ada.map((a) => a.username), usernames.filter((_, n) => n % 100 === 7), 'name substring');
    const byUser = await call('/accounts?q=lister0123');
    assert.deepEqual(byUser.json.accounts.map((a: Json) => a.username), Array.from({ length: 10 }, (_, i) => `lister0123${i}`));
    assert.equal(byUser.json.total, undefined, 'no total for a search');
    const byEmail = await all('/accounts?q=%40cern.ch&limit=200', 'accounts');
    assert.equal(byEmail.length, Math.ceil(ACCOUNTS / 3), 'email substring');
    assert.ok(byEmail.every((a) => (a.email as string).endsWith('@cern.ch')));
    assert.deepEqual((await call('/accounts?q=nobody-has-this')).json, { accounts: [], next: null });
  });

  it('keeps the account index current when an account changes', async () => {
    const { accounts } = server.fedgate;
    const created = await accounts.create({ username: 'Zed-Late', name: 'Zed Late', email: 'zed@late.example' });
    assert.deepEqual((await call('/accounts?q=zed-late')).json.accounts.map((a: Json) => a.username), ['Zed-Late']);
    await accounts.setDisabled(created.id, true);
    const disabled = (await call('/accounts?q=zed-late')).json.accounts;
    assert.equal(disabled.length, 1, 'a disabled account is still listed');
    assert.equal(disabled[0].disabled, true);
  });

  it('builds the index for accounts stored before it existed', async () => {
    const { store, accounts } = server.fedgate;
    // An account as an earlier fedgate wrote it: record, username and id set only.
    const id = randomUUID();
    const legacy = { id, username: 'legacy-lister', name: 'Old Timer', groups: ['/lists-2'], disabled: false, identities: [], createdAt: 1, updatedAt: 1 };
    await store.set(`account:${id}`, legacy);
    await store.set('account-username:legacy-lister', id);
    await store.addToSet('account-ids', id);
    assert.deepEqual((await call('/accounts?q=old%20timer')).json.accounts, [], 'not indexed yet');
    await store.delete('account-list-index-built');
    await accounts.ensureMemberIndex();
    assert.deepEqual((await call('/accounts?q=old%20timer')).json.accounts.map((a: Json) => a.username), ['legacy-lister']);
    assert.deepEqual((await call('/groups/lists-2/members?limit=10')).json.members.map((m: Json) => m.username), ['legacy-lister']);
  });

  it('browses the group tree by parent and searches paths', async () => {
    const top = await all('/groups?parent=%2F&limit=7', 'groups');
    const topPaths = top.map((g) => g.path as string);
    for (let n = 0; n < 20; n += 1) assert.ok(topPaths.includes(`/lists-${n}`));
    assert.ok(topPaths.includes('/admins') && topPaths.includes('/cms'));
    assert.ok(topPaths.every((p) => p.lastIndexOf('/') === 0), 'top level only');
    const zero = await call('/groups?parent=lists-0&limit=200');
    assert.equal(zero.json.total, 10);
    assert.deepEqual(zero.json.groups.map((g: Json) => g.path), Array.from({ length: 10 }, (_, i) => `/lists-0/sub-${String(i * 20).padStart(3, '0')}`));
    assert.equal(zero.json.groups[0].subgroups, 1, 'children counted');
    assert.equal(zero.json.next, null);
    const one = (await call('/groups?parent=%2Flists-1&limit=1')).json;
    assert.equal(one.groups[0].path, '/lists-1/sub-001');
    assert.equal(one.groups[0].members, ACCOUNTS / 10, 'direct member count');
    assert.equal(typeof one.next, 'string');
    const searched = await all('/groups?q=sub-19&limit=3', 'groups');
    assert.deepEqual(searched.map((g) => g.path), Array.from({ length: 10 }, (_, i) => `/lists-${(190 + i) % 20}/sub-${190 + i}`).sort());
    const everything = await call('/groups?limit=1');
    assert.ok(everything.json.total >= 221);
    assert.equal((await call('/groups?parent=%2Fno-such')).status, 404);
  });

  it('keeps the group indexes current through rename and delete', async () => {
    const { groups } = server.fedgate;
    await groups.create('/lists-move');
    await groups.create('/lists-move/a');
    await groups.create('/lists-move/a/b');
    await groups.rename('/lists-move', '/lists-19/moved');
    assert.deepEqual((await call('/groups?parent=%2Flists-19%2Fmoved')).json.groups.map((g: Json) => g.path), ['/lists-19/moved/a']);
    assert.deepEqual((await call('/groups?q=lists-move')).json.groups, [], 'old paths gone');
    assert.ok((await call('/groups?parent=%2Flists-19')).json.groups.some((g: Json) => g.path === '/lists-19/moved'));
    assert.equal((await call('/groups?parent=%2Flists-move')).status, 404);
    await groups.delete('/lists-19/moved/a/b');
    assert.deepEqual((await call('/groups?parent=%2Flists-19%2Fmoved%2Fa')).json, { groups: [], next: null, total: 0 });
  });

  it('pages direct and effective members, and members follow a renamed group', async () => {
    const direct = await all('/groups/lists-1/members?limit=64', 'members');
    assert.equal(direct.length, ACCOUNTS / 10);
    assert.ok(direct.every((m) => /^lister\d{4}0$/.test(m.username)));
    const effective = await all('/groups/lists-1/members?effective=true&limit=200', 'members');
    assert.equal(effective.length, ACCOUNTS / 5, 'members of /lists-1/sub-001 too');
    const page = (await call('/groups/lists-1/members?effective=true&limit=5')).json;
    assert.equal(page.total, ACCOUNTS / 5);
    assert.deepEqual(Object.keys(page.members[0]).sort(), ['disabled', 'id', 'name', 'username']);
    const searched = (await call('/groups/lists-1/members?effective=true&q=lister0000')).json.members.map((m: Json) => m.username);
    assert.deepEqual(searched, ['lister00000', 'lister00001']);
    const deep = (await call('/groups/lists-0/members?effective=true&limit=10')).json;
    assert.deepEqual(deep.members.map((m: Json) => m.username), ['lister00002']);
    const { groups } = server.fedgate;
    await groups.rename('/lists-0/sub-000', '/lists-0/sub-renamed');
    assert.deepEqual((await call('/groups/lists-0%2Fsub-renamed%2Fdeep/members?limit=10')).json.members.map((m: Json) => m.username), ['lister00002']);
    assert.deepEqual((await call('/groups/lists-0/members?effective=true&limit=10')).json.members.map((m: Json) => m.username), ['lister00002'], 'still effective in the parent');
    // Membership changes through the API land in the index.
    assert.equal((await call('/groups/lists-3/members/lister01499', { method: 'PUT' })).status, 200);
    assert.deepEqual((await call('/groups/lists-3/members?limit=5')).json, {
      group: '/lists-3', members: [{ id: (await server.fedgate.accounts.findByUsername('lister01499'))!.id, username: 'lister01499', name: 'Person 1499', disabled: false }], next: null, total: 1,
    });
    assert.equal((await call('/groups/lists-3/members/lister01499', { method: 'DELETE' })).status, 200);
    assert.equal((await call('/groups/lists-3/members?limit=5')).json.total, 0);
  });

  it('filters and pages the audit trail', async () => {
    const admin = (await server.fedgate.accounts.findByUsername('admin'))!;
    for (let i = 0; i < 12; i += 1) assert.equal((await call('/groups', { method: 'POST', body: { path: `/audited-${i}` } })).status, 201);
    const created = await all('/audit?type=group.created&actor=admin&limit=5', 'events');
    const targets = created.map((e) => e.target as string).filter((t) => t.startsWith('/audited-'));
    assert.deepEqual(targets, Array.from({ length: 12 }, (_, i) => `/audited-${11 - i}`), 'newest first, every one once');
    assert.ok(created.every((e) => e.type === 'group.created' && e.actor === admin.id));
    const prefix = await call('/audit?type=group.&target=%2Faudited-3');
    assert.deepEqual(prefix.json.events.map((e: Json) => e.target), ['/audited-3']);
    const middle = created.find((e) => e.target === '/audited-6')!;
    const since = new Date(Date.parse(middle.time)).toISOString();
    const recent = (await call(`/audit?type=group.created&since=${encodeURIComponent(since)}&limit=100`)).json.events;
    assert.ok(recent.some((e: Json) => e.target === '/audited-11') && recent.every((e: Json) => Date.parse(e.time) >= Date.parse(since) - 1));
    assert.deepEqual((await call('/audit?until=2000-01-01T00:00:00Z')).json, { events: [], next: null });
    assert.deepEqual((await call('/audit?actor=nobody-at-all')).json.events, []);
    const legacy = await call('/audit');
    assert.ok(Array.isArray(legacy.json.events) && !('next' in legacy.json), 'the earlier shape without parameters');
  });

  it('answers malformed list parameters with 400 invalid_request', async () => {
    for (const query of ['/accounts?limit=0', '/accounts?limit=201', '/accounts?limit=ten', '/groups?cursor=%%%', '/groups?cursor=not%20base64',
      '/accounts?q=a&q=b', `/accounts?q=${'x'.repeat(201)}`, '/accounts?q=%00', '/audit?since=yesterday', '/audit?cursor=bm90LWFuLWlk',
      '/groups/cms/members?limit=-1']) {
      const res = await call(query);
      assert.equal(res.status, 400, query);
      assert.equal(res.json.error, 'invalid_request', query);
      assert.equal(typeof res.json.error_description, 'string');
    }
    assert.equal((await call('/groups/no-such-group/members?limit=5')).status, 404);
  });
});
