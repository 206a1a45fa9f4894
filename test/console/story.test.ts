/**
 * The console's story, end to end, keyboard only: alice asks to join /atlas
 * on her account page, bob (a manager of /atlas in the demo realm) approves
 * in the console, and alice's next storage token carries /atlas's scopes.
 * Plus the Requests page's other side: a rejection with a reason, and what
 * a manager does not see.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Browser } from 'playwright-core';
import { authorizationCodeFlow, decodeJwt, rp, startServer, type TestServer } from '../support/harness.ts';
import { checkPage, launchChromium, message, newContext, tabTo } from './browser.ts';

const STORAGE = 'https://storage.demo';

describe('console story: a membership request approved by a group manager', () => {
  let server: TestServer;
  let browser: Browser;
  before(async () => {
    server = await startServer({ redis: true, configure: (config) => { config.registration.accounts.enabled = true; } });
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await server?.cleanup();
  });

  const storageScopes = async () => {
    const cli = await rp(server.issuer, 'demo-cli');
    const tokens = await authorizationCodeFlow(cli, {
      redirectUri: 'http://127.0.0.1:50000/callback', scope: 'openid wlcg.groups storage.read:/store/atlas', resource: STORAGE,
      username: 'alice', password: 'alice-password',
    });
    return (decodeJwt(tokens.access_token).payload as { scope: string }).scope.split(' ');
  };

  /**
   * A new browser context that opens `path`, signs in on fedgate's login page
   * with the keyboard (the username field has the focus) and waits to land on
   * `landing` (default: `path`).
   */
  const signedIn = async (path: string, username: string, password: string, landing = path) => {
    const context = await newContext(browser);
    const page = await context.newPage();
    await page.goto(`${server.issuer}${path}`);
    await page.waitForSelector('#username');
    await page.keyboard.type(username);
    await page.keyboard.press('Tab');
    await page.keyboard.type(password);
    await page.keyboard.press('Enter');
    await page.waitForURL(`${server.issuer}${landing}`);
    return { context, page };
  };

  it('alice asks on /account, bob approves in the console, alice\'s next storage token carries /atlas\'s scopes (keyboard only)', async () => {
    assert.ok(!(await storageScopes()).includes('storage.read:/store/atlas'), 'before: not a member of /atlas');

    const { context: aliceContext, page: alice } = await signedIn('/account', 'alice', 'alice-password');
    await tabTo(alice, (f) => f.id === 'group', 'the Group field');
    await alice.keyboard.type('/atlas');
    await alice.keyboard.press('Tab');
    await alice.keyboard.type('Analysis of the 2026 run');
    await tabTo(alice, (f) => f.tag === 'button' && f.text === 'Request membership', 'Request membership');
    await alice.keyboard.press('Enter');
    await alice.waitForLoadState();
    assert.match(await alice.locator('main').innerText(), /\/atlas: waiting for a manager/);

    // A group manager's console opens on their requests.
    const { context: bobContext, page: bob } = await signedIn('/admin', 'bob', 'bob-password', '/admin/requests');
    assert.match(await bob.locator('header').innerText(), /Signed in as bob \(group manager\)/);
    const main = await bob.locator('main').innerText();
    assert.match(main, /alice asks to join \/atlas/);
    assert.match(main, /Reason: “Analysis of the 2026 run”/);
    await checkPage(bob, 'requests-manager');
    await tabTo(bob, (f) => f.name === 'Approve alice joining /atlas', 'the Approve button');
    await bob.keyboard.press('Enter');
    await bob.waitForURL(`${server.issuer}/admin/requests`);
    assert.match(await message(bob, 'status'), /Approved: alice → \/atlas/);
    assert.match(await bob.locator('main').innerText(), /No pending membership requests/);

    // The approval went through the admin API, audited with bob as its actor; alice's next token has the group's scopes.
    const bobAccount = await server.fedgate.accounts.findByUsername('bob');
    const approved = (await server.fedgate.audit.recent(100)).find((e) => e.type === 'membership.request.approved' && e.target === '/atlas' && e.actor === bobAccount!.id);
    assert.ok(approved, 'the approval is audited with bob as the actor');
    assert.ok((await server.fedgate.accounts.findByUsername('alice'))!.groups.includes('/atlas'));
    assert.ok((await storageScopes()).includes('storage.read:/store/atlas'));

    await alice.reload();
    assert.match(await alice.locator('main').innerText(), /\/atlas: approved/);
    await aliceContext.close();
    await bobContext.close();
  });

  it('a manager rejects with a reason, sees only their groups, and is refused the administrators\' pages', async () => {
    const { context: aliceContext, page: alice } = await signedIn('/account', 'alice', 'alice-password');
    // alice asks for /ml-users, a group bob does not manage.
    await alice.getByLabel('Group').fill('/ml-users');
    await alice.getByLabel('Reason').fill('Training models');
    await alice.getByRole('button', { name: 'Request membership' }).click();
    await alice.waitForLoadState();

    const { context: bobContext, page: bob } = await signedIn('/admin/requests', 'bob', 'bob-password');
    // bob manages /atlas only: alice's /ml-users request is not his to see.
    assert.doesNotMatch(await bob.locator('main').innerText(), /ml-users/);
    // The nav offers a manager's sections only; an administrators' page says so.
    assert.deepEqual(await bob.locator('header nav a').allInnerTexts(), ['Groups', 'Requests']);
    const res = await bob.goto(`${server.issuer}/admin/policies`);
    assert.equal(res!.status(), 403);
    assert.equal(await bob.getByRole('heading', { level: 1 }).innerText(), 'Administrators only');
    await bob.goto(`${server.issuer}/admin/groups`);
    assert.deepEqual(await bob.locator('main table tbody td:first-child').allInnerTexts(), ['/atlas']);
    // Another group's page: the API refuses, the console says so.
    const other = await bob.goto(`${server.issuer}/admin/groups/view?path=%2Fcms`);
    assert.equal(other!.status(), 403);
    await bobContext.close();

    // The administrator sees and rejects it, with a reason alice then reads.
    const { context: adminContext, page: admin } = await signedIn('/admin/requests', 'admin', 'admin-password');
    assert.match(await admin.locator('main').innerText(), /alice asks to join \/ml-users/);
    await checkPage(admin, 'requests');
    await admin.getByLabel('Reason for rejecting (optional)').fill('Ask your PI first');
    await admin.getByRole('button', { name: 'Reject alice joining /ml-users' }).click();
    await admin.waitForLoadState();
    assert.match(await message(admin, 'status'), /Rejected: alice → \/ml-users/);
    await alice.reload();
    assert.match(await alice.locator('main').innerText(), /\/ml-users: rejected[\s\S]*Ask your PI first/);
    await adminContext.close();
    await aliceContext.close();
  });
  it('an administrator approves and rejects account registrations on the Requests page', async () => {
    const visitor = await (await newContext(browser)).newPage();
    for (const [username, reason] of [['dave', 'Joining the ATLAS analysis'], ['mallory', 'Just looking']] as const) {
      await visitor.goto(`${server.issuer}/account/register`);
      await visitor.getByLabel('Username').fill(username);
      await visitor.getByLabel('Full name').fill(`${username} Example`);
      await visitor.getByLabel('Password').fill(`${username}-password-123`);
      await visitor.getByLabel('Why do you need an account?').fill(reason);
      await visitor.getByRole('button', { name: /Request an account/ }).click();
      await visitor.waitForLoadState();
    }
    const { context: adminContext, page: admin } = await signedIn('/admin/requests', 'admin', 'admin-password');
    const registrations = admin.locator('ul[aria-labelledby=registrations-h]');
    assert.match(await registrations.innerText(), /dave[\s\S]*Reason: “Joining the ATLAS analysis”/);
    await admin.getByRole('button', { name: 'Approve the registration of dave' }).click();
    await admin.waitForLoadState();
    assert.match(await message(admin, 'status'), /Registration approved/);
    await admin.getByRole('button', { name: 'Reject the registration of mallory' }).click();
    await admin.waitForLoadState();
    assert.match(await message(admin, 'status'), /Registration rejected/);
    assert.match(await admin.locator('main').innerText(), /No pending registrations/);
    assert.ok(await server.fedgate.accounts.findByUsername('dave'), 'dave has an account now');
    assert.equal(await server.fedgate.accounts.findByUsername('mallory'), undefined);
    await adminContext.close();
  });
});
