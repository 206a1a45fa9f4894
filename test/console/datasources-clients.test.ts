/** The Data sources and Clients pages, in a real browser, against the admin API. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Page } from 'playwright-core';
import type { TestServer } from '../support/harness.ts';
import { type AdminConsole, checkPage, closeAdminConsole, message, openAdminConsole } from './browser.ts';

describe('console: data sources and clients', () => {
  let opened: AdminConsole | undefined;
  let server: TestServer;
  let page: Page;
  before(async () => { ({ server, page } = opened = await openAdminConsole('/admin/datasources')); });
  after(() => closeAdminConsole(opened));

  /** Basic-authenticated introspection with a data source's client: whether the secret works. */
  const introspects = async (clientId: string, secret: string) => {
    const res = await fetch(`${server.issuer}/token/introspection`, {
      method: 'POST',
      headers: { authorization: `Basic ${Buffer.from(`${clientId}:${secret}`).toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token: 'not-a-token' }),
    });
    await res.arrayBuffer();
    return res.status === 200;
  };

  it('Data sources: the list, the onboarding wizard ending with the bundle, snippets and the secret once, rotation, removal that says what it stops', async () => {
    const rows = await page.locator('main table tbody tr').allInnerTexts();
    assert.ok(rows.some((r) => /https:\/\/storage\.demo/.test(r) && /read-only/.test(r)), 'the configured storage, read-only');
    await checkPage(page, 'datasources');

    await page.getByRole('link', { name: 'Onboard a data source' }).click();
    await page.getByLabel(/^Name/).fill('atlas-store');
    await page.getByLabel('Display name').fill('ATLAS storage');
    await page.getByLabel('Kind').selectOption('storage');
    await page.getByLabel(/^Audience/).fill('https://atlas-store.example.org');
    await page.getByLabel(/Storage base path/).fill('/store/atlas');
    await page.getByLabel('Traefik (forwardAuth)').check();
    await checkPage(page, 'datasource-wizard');
    await page.getByRole('button', { name: 'Next: who may use it' }).click();
    await page.getByLabel(/Access rules/).fill('/atlas, /store/atlas/**, read, storage.read');
    await page.getByLabel(/Scope grants/).fill('/atlas, storage.read:/store/atlas');
    await page.getByLabel(/introspection client/).check();
    // Back and forth keeps what was typed.
    await page.getByRole('button', { name: 'Back' }).click();
    assert.equal(await page.getByLabel(/^Name/).inputValue(), 'atlas-store');
    await page.getByRole('button', { name: 'Next: who may use it' }).click();
    assert.equal(await page.getByLabel(/Access rules/).inputValue(), '/atlas, /store/atlas/**, read, storage.read');
    await page.getByRole('button', { name: 'Next: review' }).click();
    assert.match(await page.locator('main pre').innerText(), /"basePath": "\/store\/atlas"/);
    await page.getByRole('button', { name: 'Create data source' }).click();
    await page.waitForLoadState();
    assert.equal(await page.getByRole('heading', { level: 1 }).innerText(), 'Data source ATLAS storage is on board');
    const main = await page.locator('main').innerText();
    assert.match(main, /Audience\s+https:\/\/atlas-store\.example\.org/);
    assert.match(main, /shown only now/);
    for (const snippet of ['nginx', 'Envoy', 'Traefik', 'XRootD (scitokens.cfg)']) assert.ok(await page.getByRole('heading', { name: snippet }).count(), snippet);
    assert.match(await page.locator('pre[aria-labelledby=snippet-traefik]').innerText(), /forwardAuth/);
    const secret = await page.locator('#secret').innerText();
    const clientId = (await server.fedgate.dataSources.get('atlas-store'))!.introspectionClientId!;
    assert.ok(await introspects(clientId, secret), 'the secret shown is the introspection client\'s');
    await checkPage(page, 'datasource-bundle');

    // The page of the data source never shows the secret again.
    await page.getByRole('link', { name: "The data source's page" }).click();
    assert.doesNotMatch(await page.locator('main').innerText(), new RegExp(secret));
    await page.getByRole('button', { name: 'Rotate the introspection secret' }).click();
    await page.waitForLoadState();
    const rotated = await page.locator('#secret').innerText();
    assert.notEqual(rotated, secret);
    assert.ok(await introspects(clientId, rotated));
    assert.equal(await introspects(clientId, secret), false, 'the old secret stops working');

    // A wizard refusal comes back to step one with the API's reason.
    await page.goto(`${server.issuer}/admin/datasources/new`);
    await page.getByLabel(/^Name/).fill('dup');
    await page.getByLabel(/^Audience/).fill('https://atlas-store.example.org');
    await page.getByLabel(/Storage base path/).fill('/store/dup');
    await page.getByRole('button', { name: 'Next: who may use it' }).click();
    await page.getByRole('button', { name: 'Next: review' }).click();
    await page.getByRole('button', { name: 'Create data source' }).click();
    await page.waitForLoadState();
    assert.match(await message(page, 'alert'), /atlas-store\.example\.org/);
    assert.equal(await page.getByLabel(/^Name/).inputValue(), 'dup');

    // Removal: first what it will stop, then gone.
    await page.goto(`${server.issuer}/admin/datasources/remove?name=atlas-store`);
    const stops = await page.locator('main').innerText();
    assert.match(stops, /tokens for the audience https:\/\/atlas-store\.example\.org/);
    assert.match(stops, /its \d+ policy rule\(s\):[^\n]* p, \/atlas, atlas-store, \/store\/atlas\/\*\*, read, allow, storage\.read/);
    assert.match(stops, new RegExp(`its introspection client ${clientId} \\(deleted\\)`));
    await checkPage(page, 'datasource-remove');
    await page.getByRole('button', { name: 'Remove atlas-store' }).click();
    await page.waitForURL(`${server.issuer}/admin/datasources`);
    assert.match(await message(page, 'status'), /Data source atlas-store removed/);
    assert.equal(server.fedgate.dataSources.get('atlas-store'), undefined);
    assert.equal(await introspects(clientId, rotated), false);
  });

  it('Clients: list, create confidential and public, the secret once, rotate, disable, delete; initial access tokens', async () => {
    await page.goto(`${server.issuer}/admin/clients`);
    assert.match(await page.locator('main table').innerText(), /demo-portal[\s\S]*configuration file/);
    await page.getByLabel('Name', { exact: true }).fill('Analysis portal');
    await page.getByLabel(/Client id/).fill('analysis-portal');
    await page.getByLabel(/Redirect URIs/).fill('https://portal.example.org/callback');
    await page.getByLabel('Client credentials').check();
    await checkPage(page, 'clients');
    await page.getByRole('button', { name: 'Create client' }).click();
    await page.waitForLoadState();
    assert.equal(await page.getByRole('heading', { level: 1 }).innerText(), 'Client Analysis portal created');
    const secret = await page.locator('#secret').innerText();
    assert.ok(secret.length >= 32);
    // The secret works at the token endpoint.
    const tokenWith = async (s: string) => (await (await fetch(`${server.issuer}/token`, {
      method: 'POST', headers: { authorization: `Basic ${Buffer.from(`analysis-portal:${s}`).toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'client_credentials' }),
    })).json() as { error?: string }).error ?? 'issued';
    assert.equal(await tokenWith(secret), 'issued');
    assert.equal(await tokenWith('wrong'), 'invalid_client');

    await page.getByRole('link', { name: "The client's page" }).click();
    await page.getByRole('button', { name: 'Rotate the client secret' }).click();
    await page.waitForLoadState();
    const rotated = await page.locator('#secret').innerText();
    assert.equal(await tokenWith(rotated), 'issued');
    assert.equal(await tokenWith(secret), 'invalid_client');
    await page.getByRole('link', { name: 'Back to analysis-portal' }).click();
    await page.getByRole('button', { name: 'Disable analysis-portal' }).click();
    await page.waitForLoadState();
    assert.match(await message(page, 'status'), /analysis-portal is disabled/);
    assert.equal(await tokenWith(rotated), 'invalid_client');
    await checkPage(page, 'client-detail');
    await page.getByRole('button', { name: 'Delete analysis-portal' }).click();
    await page.waitForURL(`${server.issuer}/admin/clients`);
    assert.match(await message(page, 'status'), /Client analysis-portal deleted/);

    // A public client: no secret.
    await page.getByLabel('Name', { exact: true }).fill('Notebook');
    await page.getByLabel(/Public \(a browser/).check();
    await page.getByLabel(/Redirect URIs/).fill('http://127.0.0.1/callback');
    await page.getByRole('button', { name: 'Create client' }).click();
    await page.waitForLoadState();
    assert.match(await page.locator('main').innerText(), /A public client has no secret/);

    // A refused client: the API's reason, the form kept.
    await page.goto(`${server.issuer}/admin/clients`);
    await page.getByLabel('Name', { exact: true }).fill('Broken');
    await page.getByLabel(/Redirect URIs/).fill('not a uri');
    await page.getByRole('button', { name: 'Create client' }).click();
    await page.waitForLoadState();
    assert.match(await message(page, 'alert'), /redirect/i);
    assert.equal(await page.getByLabel('Name', { exact: true }).inputValue(), 'Broken');

    // Initial access tokens: issue one (shown once), see it listed without its value, withdraw it.
    await page.getByRole('button', { name: 'Issue an initial access token' }).click();
    await page.waitForLoadState();
    const iat = await page.locator('#secret').innerText();
    await page.getByRole('link', { name: 'Back to clients' }).click();
    assert.doesNotMatch(await page.locator('main').innerText(), new RegExp(iat));
    const withdraw = page.getByRole('button', { name: /^Withdraw initial access token/ });
    assert.equal(await withdraw.count(), 1);
    await withdraw.click();
    await page.waitForLoadState();
    assert.match(await message(page, 'status'), /withdrawn/);
    const reg = await fetch(`${server.issuer}/reg`, { method: 'POST', headers: { authorization: `Bearer ${iat}`, 'content-type': 'application/json' }, body: JSON.stringify({ redirect_uris: ['https://x.example.org/cb'] }) });
    assert.equal(reg.status, 401);
  });
});
