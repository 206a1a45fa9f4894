import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  adminApi, adminToken, authorizationCodeFlow, Browser, decodeJwt, formAction, hiddenInput, loginThroughPages, rp, startServer, type TestServer,
} from '../support/harness.ts';

/**
 * Group managers and membership requests, as people use them: alice asks on
 * her account page (form posts with the CSRF token and cookies), bob, the
 * demo realm's manager of /atlas, decides through the admin API with his
 * own token, and alice's next token carries the group.
 */
const STORAGE = 'https://storage.demo';
const CLI_REDIRECT = 'http://127.0.0.1:50000/callback';

describe('group managers and membership requests', () => {
  let server: TestServer;
  let admin: string;
  let bob: string;
  const alice = new Browser();

  before(async () => {
    server = await startServer({
      redis: true,
      configure: (config) => {
        config.groups.push({ path: '/atlas/analysis', description: 'ATLAS analysis' });
        config.users.push({ username: 'carol', password: 'carol-password', groups: [], disabled: false } as typeof config.users[number]);
      },
    });
    admin = await adminToken(server.issuer);
    bob = await adminToken(server.issuer, { username: 'bob', password: 'bob-password' });
  });
  after(() => server.cleanup());

  const api = async (token: string, path: string, init: { method?: string; body?: unknown } = {}) => {
    const res = await fetch(`${adminApi(server.issuer)}${path}`, {
      method: init.method ?? 'GET',
      headers: { authorization: `Bearer ${token}`, ...(init.body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {}),
    });
    return { status: res.status, body: await res.json().catch(() => undefined) as Record<string, unknown> & { error?: string } };
  };

  /** alice's account page, signed in through the pages on first use. */
  const accountPage = async () => {
    let res = await alice.request(`${server.issuer}/account`);
    if (res.status === 302) {
      const callback = await loginThroughPages(alice, new URL(res.headers.get('location')!, server.issuer), `${server.issuer}/account/callback`, { username: 'alice', password: 'alice-password' });
      await alice.request(callback);
      res = await alice.request(`${server.issuer}/account`);
    }
    assert.equal(res.status, 200);
    return res.text();
  };
  const post = async (suffix: string, fields: Record<string, string>) => {
    const page = await accountPage();
    return alice.request(new URL(formAction(page, suffix), server.issuer), { form: { csrf: hiddenInput(page, 'csrf'), ...fields } });
  };
  const storageToken = async () => {
    const cli = await rp(server.issuer, 'demo-cli');
    const tokens = await authorizationCodeFlow(cli, {
      redirectUri: CLI_REDIRECT, scope: 'openid wlcg.groups storage.read:/store/atlas storage.read:/store/cms', resource: STORAGE,
      username: 'alice', password: 'alice-password',
    });
    return decodeJwt(tokens.access_token).payload as { scope: string; 'wlcg.groups'?: string[] };
  };
  const pending = async (token: string, query = '') => (await api(token, `/requests?status=pending${query}`)).body.requests as Array<{ id: string; group: string; username: string }>;

  it('tells a manager and an administrator who they are (/me)', async () => {
    assert.deepEqual((await api(bob, '/me')).body, { username: 'bob', admin: false, manages: ['/atlas'] });
    assert.deepEqual((await api(admin, '/me')).body, { username: 'admin', admin: true, manages: [] });
    assert.equal((await server.fedgate.provider().AccessToken.find(bob))?.scope, 'fedgate.admin', 'a manager gets the admin API scope');
  });

  it('lets alice ask to join a group on her account page, with a reason, and refuses forged and bad forms', async () => {
    const before = await storageToken();
    assert.ok(!before.scope.split(' ').includes('storage.read:/store/atlas'));
    const forged = await alice.request(`${server.issuer}/account/requests`, { form: { csrf: 'x'.repeat(43), group: '/atlas', reason: 'analysis' } });
    assert.equal(forged.status, 403);
    const missing = await post('/account/requests', { group: '/no-such-group', reason: 'x' });
    assert.equal(missing.status, 400);
    assert.match(await missing.text(), /There is no group \/no-such-group/);
    const already = await post('/account/requests', { group: '/cms', reason: 'again' });
    assert.equal(already.status, 400, 'already a member');
    const res = await post('/account/requests', { group: '/atlas', reason: 'Higgs analysis on ATLAS data' });
    assert.equal(res.status, 303);
    const twice = await post('/account/requests', { group: '/atlas', reason: 'again' });
    assert.equal(twice.status, 400, 'one pending request per group');
    const page = await accountPage();
    assert.match(page, /\/atlas<\/strong>: waiting for a manager/);
    assert.match(page, /Higgs analysis on ATLAS data/);
  });

  it('shows a manager the requests of their groups only, and refuses them everything else (403)', async () => {
    const carol = new Browser();
    const carolRequest = async (group: string) => {
      let res = await carol.request(`${server.issuer}/account`);
      const callback = await loginThroughPages(carol, new URL(res.headers.get('location')!, server.issuer), `${server.issuer}/account/callback`, { username: 'carol', password: 'carol-password' });
      await carol.request(callback);
      const page = await (await carol.request(`${server.issuer}/account`)).text();
      res = await carol.request(new URL(formAction(page, '/account/requests'), server.issuer), { form: { csrf: hiddenInput(page, 'csrf'), group, reason: 'please' } });
      assert.equal(res.status, 303);
    };
    await carolRequest('/ml-users');
    const mine = await pending(bob);
    assert.deepEqual(mine.map((r) => [r.username, r.group]), [['alice', '/atlas']]);
    const all = await pending(admin);
    assert.deepEqual(all.map((r) => r.group).sort(), ['/atlas', '/ml-users']);
    const other = all.find((r) => r.group === '/ml-users')!;
    const refused = await api(bob, `/requests/${other.id}/approve`, { method: 'POST', body: {} });
    assert.equal(refused.status, 403);
    assert.equal(refused.body.error, 'access_denied');
    for (const [method, path] of [
      ['GET', '/groups'], ['GET', '/accounts'], ['GET', '/audit'], ['GET', '/registrations'],
      ['PUT', '/groups/%2Fml-users/members/carol'], ['GET', '/groups/%2Fcms/members'],
      ['PUT', '/groups/%2Fatlas/managers/carol'], ['PUT', '/groups/%2Fatlas/policies'], ['DELETE', '/groups/%2Fatlas%2Fanalysis'],
    ] as const) {
      const res = await api(bob, path, { method, ...(method === 'PUT' ? { body: { rules: [] } } : {}) });
      assert.equal(res.status, 403, `${method} ${path}`);
      assert.equal(res.body.error, 'access_denied');
    }
    // Within the subtree: members of /atlas and /atlas/analysis.
    assert.equal((await api(bob, '/groups/%2Fatlas/members')).status, 200);
    assert.equal((await api(bob, '/groups/%2Fatlas%2Fanalysis/managers')).status, 200);
    assert.equal((await api(bob, '/groups/%2Fatlas%2Fanalysis/members/carol', { method: 'PUT' })).status, 200);
    assert.equal((await api(bob, '/groups/%2Fatlas%2Fanalysis/members/carol', { method: 'DELETE' })).status, 200);
  });

  it('refuses a user who manages nothing, even with a request id', async () => {
    const carol = await adminToken(server.issuer, { username: 'carol', password: 'carol-password' });
    assert.ok(!((await server.fedgate.provider().AccessToken.find(carol))?.scope ?? '').split(' ').includes('fedgate.admin'), 'no admin scope for a non-manager');
    const [request] = await pending(admin, '&group=%2Fatlas');
    const res = await api(carol, `/requests/${request!.id}/approve`, { method: 'POST', body: {} });
    assert.equal(res.status, 403);
    assert.equal((await api(carol, '/me')).status, 403);
  });

  it('approves as the manager, audited with its actor; alice\'s next token carries /atlas and its storage scope', async () => {
    const [request] = await pending(bob);
    const approved = await api(bob, `/requests/${request!.id}/approve`, { method: 'POST', body: {} });
    assert.equal(approved.status, 200, JSON.stringify(approved.body));
    assert.equal(approved.body.status, 'approved');
    assert.equal(approved.body.decidedBy, 'bob');
    const again = await api(admin, `/requests/${request!.id}/approve`, { method: 'POST', body: {} });
    assert.equal(again.status, 409, 'decided once');
    const bobAccount = (await server.fedgate.accounts.findByUsername('bob'))!;
    const events = await server.fedgate.audit.recent(20);
    assert.ok(events.some((e) => e.type === 'membership.request.approved' && e.actor === bobAccount.id && e.target === '/atlas'));
    const token = await storageToken();
    assert.ok(token.scope.split(' ').includes('storage.read:/store/atlas'), token.scope);
    assert.ok(token['wlcg.groups']?.includes('/atlas'));
    assert.match(await accountPage(), /\/atlas<\/strong>: approved/);
    assert.deepEqual(((await api(admin, '/requests?status=approved&group=%2Fatlas')).body.requests as Array<{ username: string }>).map((r: { username: string }) => r.username), ['alice']);
  });

  it('rejects with a reason, shown on the account page; cancels', async () => {
    const a = await post('/account/requests', { group: '/ml-users', reason: 'ML' });
    assert.equal(a.status, 303);
    const id = (await pending(admin, '&q=alice')).find((r) => r.group === '/ml-users')!.id;
    const rejected = await api(admin, `/requests/${id}/reject`, { method: 'POST', body: { reason: 'ML is for staff only' } });
    assert.equal(rejected.status, 200);
    assert.match(await accountPage(), /ML is for staff only/);
    assert.equal((await post('/account/requests', { group: '/atlas/analysis', reason: 'analysis' })).status, 303);
    const page = await accountPage();
    const cancelId = (await pending(admin)).find((r) => r.group === '/atlas/analysis')!.id;
    const cancelled = await alice.request(new URL(formAction(page, '/account/requests/cancel'), server.issuer), { form: { csrf: hiddenInput(page, 'csrf'), id: cancelId } });
    assert.equal(cancelled.status, 303);
    assert.equal((await pending(admin)).some((r) => r.id === cancelId), false);
  });

  it('pages the request list with limit and cursor, and searches it', async () => {
    assert.equal((await post('/account/requests', { group: '/atlas/analysis', reason: 'first' })).status, 303);
    assert.equal((await post('/account/requests', { group: '/ml-users', reason: 'second' })).status, 303);
    assert.equal((await post('/account/requests', { group: '/admins', reason: 'third' })).status, 303);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const res = await api(admin, `/requests?q=alice&limit=2${cursor ? `&cursor=${cursor}` : ''}`);
      assert.equal(res.status, 200);
      assert.equal(res.body.total, 3);
      seen.push(...(res.body.requests as Array<{ id: string }>).map((r) => r.id));
      cursor = res.body.next as string | null;
    } while (cursor);
    assert.equal(seen.length, 3);
    assert.equal(new Set(seen).size, 3, 'no request twice across pages');
    const found = await api(admin, '/requests?q=second');
    assert.deepEqual((found.body.requests as Array<{ group: string }>).map((r) => r.group), ['/ml-users']);
    assert.deepEqual((await pending(bob)).map((r) => r.group), ['/atlas/analysis'], 'a manager sees only their subtree');
    assert.equal((await api(admin, '/requests?limit=0')).status, 400);
    assert.equal((await api(admin, '/requests?status=bogus')).status, 400);
    assert.equal((await api(admin, '/requests?cursor=%%%')).status, 400);
  });

  it('lets alice leave a group; her next token no longer carries it', async () => {
    const res = await post('/account/leave', { group: '/atlas' });
    assert.equal(res.status, 303);
    const token = await storageToken();
    assert.ok(!token.scope.split(' ').includes('storage.read:/store/atlas'), token.scope);
    assert.ok(!token['wlcg.groups']?.includes('/atlas'));
    assert.equal((await post('/account/leave', { group: '/atlas' })).status, 400);
  });

  it('names and removes managers (administrators only); the removed manager\'s token stops at once', async () => {
    const put = await api(admin, '/groups/%2Fcms/managers/carol', { method: 'PUT' });
    assert.equal(put.status, 200);
    assert.deepEqual(((await api(admin, '/groups/%2Fcms/managers')).body.managers as Array<{ username: string }>).map((m: { username: string }) => m.username), ['carol']);
    const carol = await adminToken(server.issuer, { username: 'carol', password: 'carol-password' });
    assert.deepEqual((await api(carol, '/me')).body, { username: 'carol', admin: false, manages: ['/cms'] });
    assert.equal((await api(admin, '/groups/%2Fcms/managers/carol', { method: 'DELETE' })).status, 200);
    assert.equal((await api(carol, '/me')).status, 403);
    const events = await server.fedgate.audit.recent(20);
    assert.ok(events.some((e) => e.type === 'group.manager.added' && e.target === '/cms'));
    assert.ok(events.some((e) => e.type === 'group.manager.removed' && e.target === '/cms'));
  });

  it('moves managers with a renamed group', async () => {
    assert.equal((await api(admin, '/groups/%2Fatlas', { method: 'PATCH', body: { path: '/atlas-vo' } })).status, 200);
    assert.deepEqual((await api(bob, '/me')).body, { username: 'bob', admin: false, manages: ['/atlas-vo'] });
    assert.equal((await api(admin, '/groups/%2Fatlas-vo', { method: 'PATCH', body: { path: '/atlas' } })).status, 200);
  });
});
