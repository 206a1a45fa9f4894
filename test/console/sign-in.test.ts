/**
 * The console's door: signing in through fedgate's login with the built-in
 * console client, its own session, the refusal page for non-administrators,
 * CSRF on every form, pages that work without JavaScript, sign-out.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Browser } from 'playwright-core';
import { startServer, type TestServer } from '../support/harness.ts';
import { checkPage, launchChromium, newContext, signIn } from './browser.ts';

describe('console sign-in', () => {
  let server: TestServer;
  let browser: Browser;
  before(async () => {
    server = await startServer();
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await server?.cleanup();
  });

  it('an administrator signs in through the login page and lands on the overview, with the console session of its own', async () => {
    const context = await newContext(browser);
    const page = await context.newPage();
    await page.goto(`${server.issuer}/admin/groups`);
    // Not signed in: fedgate's own login page, for the console client.
    assert.match(await page.title(), /^Sign in/);
    assert.match(await page.locator('main').innerText(), /fedgate console/);
    await page.getByLabel('Username').fill('admin');
    await page.getByLabel('Password').fill('admin-password');
    await page.getByRole('button', { name: 'Sign in' }).click();
    // Back where the sign-in started, without a consent step.
    await page.waitForURL(`${server.issuer}/admin/groups`);
    assert.equal(await page.getByRole('heading', { level: 1 }).innerText(), 'Groups');
    assert.match(await page.locator('header').innerText(), /Signed in as admin/);

    const cookies = await context.cookies(`${server.issuer}/admin`);
    const session = cookies.find((c) => c.name === 'fedgate.console');
    assert.ok(session, 'the console session cookie');
    assert.equal(session.path, '/admin');
    assert.equal(session.httpOnly, true);
    assert.equal(session.sameSite, 'Lax');
    // The overview: headers of every fedgate page, and the CSP allows only nonce'd scripts.
    const res = await page.goto(`${server.issuer}/admin`);
    const csp = res!.headers()['content-security-policy']!;
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /script-src 'nonce-[^']+'/);
    assert.equal(res!.headers()['cache-control'], 'no-store');
    assert.equal(await page.getByRole('heading', { level: 1 }).innerText(), 'Overview');
    assert.match(await page.locator('main').innerText(), /token\.issued/);
    await checkPage(page, 'overview');
    await context.close();
  });

  it('someone who is neither an administrator nor a group manager gets a clear refusal page and no console session', async () => {
    const context = await newContext(browser);
    const page = await context.newPage();
    await page.goto(`${server.issuer}/admin`);
    await page.getByLabel('Username').fill('alice');
    await page.getByLabel('Password').fill('alice-password');
    const [response] = await Promise.all([
      page.waitForResponse((r) => r.url().startsWith(`${server.issuer}/admin/callback`)),
      page.getByRole('button', { name: 'Sign in' }).click(),
    ]);
    assert.equal(response.status(), 403);
    await page.waitForLoadState();
    assert.equal(await page.getByRole('heading', { level: 1 }).innerText(), 'No access to the console');
    assert.match(await page.locator('main').innerText(), /You are signed in as alice, which is neither/);
    assert.ok(!(await context.cookies(`${server.issuer}/admin`)).some((c) => c.name === 'fedgate.console'));
    await checkPage(page, 'refusal');
    // The account page still works for alice: the console refused, nothing else did.
    await page.goto(`${server.issuer}/account`);
    assert.equal(await page.getByRole('heading', { level: 1 }).innerText(), 'Your account');
    await context.close();
  });

  it('a form sent without the session\'s CSRF token changes nothing', async () => {
    const context = await newContext(browser);
    const page = await context.newPage();
    await signIn(page, server.issuer, 'admin', 'admin-password', '/admin/groups');
    const forged = await page.request.post(`${server.issuer}/admin/groups/create`, { form: { path: '/forged' }, maxRedirects: 0 });
    assert.equal(forged.status(), 403);
    assert.match(await forged.text(), /not sent from this console session/);
    const wrong = await page.request.post(`${server.issuer}/admin/groups/create`, { form: { path: '/forged', csrf: 'x'.repeat(43) }, maxRedirects: 0 });
    assert.equal(wrong.status(), 403);
    assert.equal(await server.fedgate.groups.exists('/forged'), false);
    // The same form sent from the page works.
    await page.getByLabel('Path').fill('/console-made');
    await page.getByRole('button', { name: 'Create group' }).click();
    await page.waitForURL(/\/admin\/groups\/view\?path=%2Fconsole-made/);
    assert.match(await page.getByRole('status').innerText(), /Group \/console-made created/);
    assert.equal(await server.fedgate.groups.exists('/console-made'), true);
    // The change went through the admin API, audited with the administrator as its actor.
    const admin = await server.fedgate.accounts.findByUsername('admin');
    const created = (await server.fedgate.audit.recent(50)).find((e) => e.type === 'group.created' && e.target === '/console-made');
    assert.equal(created?.actor, admin!.id);
    await context.close();
  });

  it('works without JavaScript, and signing out ends the console session only', async () => {
    const context = await newContext(browser, { javaScriptEnabled: false });
    const page = await context.newPage();
    await signIn(page, server.issuer, 'admin', 'admin-password', '/admin/groups');
    await page.getByLabel('Path').fill('/no-script');
    await page.getByLabel('Description').fill('made without JavaScript');
    await page.getByRole('button', { name: 'Create group' }).click();
    await page.waitForURL(/path=%2Fno-script/);
    assert.equal((await server.fedgate.groups.get('/no-script'))?.description, 'made without JavaScript');

    await page.getByRole('button', { name: 'Sign out' }).click();
    assert.equal(await page.getByRole('heading', { level: 1 }).innerText(), 'Signed out of the console');
    assert.ok(!(await context.cookies(`${server.issuer}/admin`)).some((c) => c.name === 'fedgate.console'));
    // The account page's sign-in (fedgate's own session) is another session: still there.
    await page.goto(`${server.issuer}/account`);
    assert.equal(await page.getByRole('heading', { level: 1 }).innerText(), 'Your account');
    // A console page again starts a new sign-in (silently, fedgate still knows the browser) with a new session.
    await page.goto(`${server.issuer}/admin/groups`);
    await page.waitForURL(`${server.issuer}/admin/groups`);
    assert.ok((await context.cookies(`${server.issuer}/admin`)).some((c) => c.name === 'fedgate.console'));
    await context.close();
  });
});
