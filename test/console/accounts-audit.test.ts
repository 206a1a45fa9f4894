/** The Accounts and Audit pages (and the overview's figures), in a real browser, against the admin API. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Page } from 'playwright-core';
import { authorizationCodeFlow, rp, type TestServer } from '../support/harness.ts';
import { type AdminConsole, checkPage, closeAdminConsole, message, openAdminConsole } from './browser.ts';

describe('console: accounts and audit', () => {
  let opened: AdminConsole | undefined;
  let server: TestServer;
  let page: Page;
  before(async () => { ({ server, page } = opened = await openAdminConsole('/admin/accounts')); });
  after(() => closeAdminConsole(opened));

  it('Accounts: server-side search, an account\'s groups and live grants, revoking a grant, disabling and enabling', async () => {
    assert.deepEqual(await page.locator('main table tbody td:first-child').allInnerTexts(), ['admin', 'alice', 'bob']);
    await page.getByLabel(/Search by username/).fill('Analyst');
    await page.getByRole('button', { name: 'Search' }).click();
    await page.waitForURL(/q=Analyst/);
    assert.deepEqual(await page.locator('main table tbody td:first-child').allInnerTexts(), ['bob']);
    await checkPage(page, 'accounts');

    // alice signs in to the demo CLI: a live grant the console shows, and revokes.
    const cli = await rp(server.issuer, 'demo-cli');
    const tokens = await authorizationCodeFlow(cli, {
      redirectUri: 'http://127.0.0.1:50000/callback', scope: 'openid offline_access storage.read:/store/cms', resource: 'https://storage.demo',
      username: 'alice', password: 'alice-password',
    });
    assert.ok(tokens.refresh_token);
    await page.goto(`${server.issuer}/admin/accounts/view?username=alice`);
    const main = await page.locator('main').innerText();
    assert.match(main, /Direct: \/cms, \/cms\/production/);
    const grantRow = page.locator('main table tbody tr', { hasText: 'demo-cli' });
    assert.match(await grantRow.innerText(), /https:\/\/storage\.demo: storage\.read:\/store\/cms/);
    await checkPage(page, 'account-detail');
    await page.getByRole('button', { name: 'Revoke the grant of demo-cli' }).click();
    await page.waitForLoadState();
    assert.match(await message(page, 'status'), /grant was revoked/);
    assert.match(await page.locator('main').innerText(), /No live grants/);
    const refresh = await fetch(`${server.issuer}/token`, {
      method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: tokens.refresh_token!, client_id: 'demo-cli' }),
    });
    assert.equal((await refresh.json() as { error: string }).error, 'invalid_grant');

    await page.goto(`${server.issuer}/admin/accounts/view?username=bob`);
    await page.getByRole('button', { name: 'Disable bob' }).click();
    await page.waitForLoadState();
    assert.match(await message(page, 'status'), /bob is disabled/);
    assert.equal((await server.fedgate.accounts.findByUsername('bob'))!.disabled, true);
    await page.getByRole('button', { name: 'Enable bob' }).click();
    await page.waitForLoadState();
    assert.match(await message(page, 'status'), /bob is enabled again/);
    assert.equal((await server.fedgate.accounts.findByUsername('bob'))!.disabled, false);
  });

  it('Audit: filtered by type, actor, target and time, one page at a time', async () => {
    for (let i = 0; i < 60; i++) await server.fedgate.audit.record({ type: 'test.bulk', actor: 'system', outcome: 'success', target: `/bulk/${String(i).padStart(2, '0')}` });
    await page.goto(`${server.issuer}/admin/audit`);
    await page.getByLabel('Type').fill('test.bulk');
    await page.getByRole('button', { name: 'Filter' }).click();
    await page.waitForURL(/type=test\.bulk/);
    const types = () => page.locator('main table tbody td:nth-child(2)').allInnerTexts();
    const first = await types();
    assert.equal(first.length, 50);
    assert.ok(first.every((t) => t === 'test.bulk'));
    // Newest first: /bulk/59 leads the first page.
    assert.equal(await page.locator('main table tbody tr').first().locator('td:nth-child(4)').innerText(), '/bulk/59');
    await checkPage(page, 'audit');
    await page.getByRole('link', { name: 'Next page' }).click();
    assert.equal((await types()).length, 10);
    assert.equal(await page.locator('main table tbody tr').last().locator('td:nth-child(4)').innerText(), '/bulk/00');
    assert.equal(await page.getByRole('link', { name: 'Next page' }).count(), 0);
    await page.getByRole('link', { name: 'First page' }).click();
    assert.equal((await types()).length, 50);

    // The administrator's own changes by actor and target: bob's disable of the first test.
    await page.goto(`${server.issuer}/admin/audit?actor=admin&target=${encodeURIComponent((await server.fedgate.accounts.findByUsername('bob'))!.id)}`);
    assert.deepEqual([...new Set(await types())].sort(), ['account.disabled', 'account.enabled']);
    // A time window in the future holds nothing.
    await page.goto(`${server.issuer}/admin/audit`);
    await page.getByLabel('Since (UTC)').fill('2999-01-01T00:00:00');
    await page.getByRole('button', { name: 'Filter' }).click();
    await page.waitForURL(/since=/);
    assert.match(await page.locator('main').innerText(), /No audit events/);
    // A malformed time is the API's 400, shown in plain words.
    const bad = await page.goto(`${server.issuer}/admin/audit?since=yesterday`);
    assert.equal(bad!.status(), 400);
    assert.match(await message(page, 'alert'), /ISO 8601/);
  });

  it('Overview: store health, signing keys, counts and the latest audit events', async () => {
    await page.goto(`${server.issuer}/admin`);
    const main = await page.locator('main').innerText();
    assert.match(main, /Store\s+Healthy\s+memory, answered in [\d.]+ ms/);
    assert.match(main, /Accounts\s+3\s/);
    assert.match(main, /Groups\s+5\s/);
    // The signing keys the server really has: each active kid's start is on the page.
    const keys = page.locator('main table', { hasText: 'Algorithm' });
    assert.deepEqual((await keys.locator('tbody td:nth-child(3)').allInnerTexts()).sort(), ['ES256', 'RS256']);
    assert.match(main, /Latest audit events/);
    assert.match(main, /test\.bulk/);
    await checkPage(page, 'overview-full');
  });
});
