/** The Groups and Policies pages, in a real browser, against the admin API. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Page } from 'playwright-core';
import type { TestServer } from '../support/harness.ts';
import { type AdminConsole, checkPage, closeAdminConsole, message, openAdminConsole } from './browser.ts';

describe('console: groups and policies', () => {
  let opened: AdminConsole | undefined;
  let server: TestServer;
  let page: Page;
  before(async () => { ({ server, page } = opened = await openAdminConsole('/admin/groups')); });
  after(() => closeAdminConsole(opened));

  it('Groups: the tree one level at a time, create a subgroup, members direct and effective, rename, and delete with the API\'s refusal in plain words', async () => {
    await page.goto(`${server.issuer}/admin/groups`);
    const top = page.locator('main table tbody tr');
    assert.deepEqual(await top.locator('td:first-child').allInnerTexts(), ['/admins', '/atlas', '/cms', '/ml-users']);
    // /cms has a subgroup: its row links one level down.
    await page.getByRole('link', { name: 'Subgroups of /cms' }).click();
    assert.equal(await page.getByRole('heading', { level: 2 }).first().innerText(), 'Subgroups of /cms');
    assert.deepEqual(await page.locator('main table tbody td:first-child').allInnerTexts(), ['/cms/production']);
    await checkPage(page, 'groups-tree');

    // Create /atlas/analysis from /atlas's level (the path field starts with the parent).
    await page.goto(`${server.issuer}/admin/groups?parent=%2Fatlas`);
    assert.equal(await page.getByLabel('Path').inputValue(), '/atlas/');
    await page.getByLabel('Path').fill('/atlas/analysis');
    await page.getByLabel('Description').fill('ATLAS analysis');
    await page.getByRole('button', { name: 'Create group' }).click();
    await page.waitForURL(/path=%2Fatlas%2Fanalysis/);
    assert.match(await message(page, 'status'), /Group \/atlas\/analysis created/);
    await page.getByLabel('Add a member (username)').fill('alice');
    await page.getByRole('button', { name: 'Add member' }).click();
    await page.waitForLoadState();
    assert.match(await message(page, 'status'), /alice is now a member of \/atlas\/analysis/);
    assert.ok((await server.fedgate.accounts.findByUsername('alice'))!.groups.includes('/atlas/analysis'));

    // /atlas: bob directly; alice only through /atlas/analysis (effective).
    await page.goto(`${server.issuer}/admin/groups/view?path=%2Fatlas`);
    const members = () => page.locator('main table tbody td:first-child').allInnerTexts();
    assert.deepEqual(await members(), ['bob']);
    await page.getByRole('link', { name: 'Show effective members (with subgroups)' }).click();
    assert.deepEqual((await members()).sort(), ['alice', 'bob']);
    await checkPage(page, 'group-detail');

    // Deleting a group with members: refused by the API, said in plain words, nothing deleted.
    await page.goto(`${server.issuer}/admin/groups/view?path=%2Fatlas%2Fanalysis`);
    await page.getByRole('button', { name: 'Delete /atlas/analysis' }).click();
    await page.waitForLoadState();
    const refusal = await message(page, 'alert');
    assert.match(refusal, /^The group is still in use\./);
    assert.match(refusal, /member/);
    assert.equal(await server.fedgate.groups.exists('/atlas/analysis'), true);

    // Rename moves the membership with it; then remove the member and delete.
    await page.getByLabel('Path', { exact: true }).fill('/atlas/physics');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.waitForURL(/path=%2Fatlas%2Fphysics/);
    assert.match(await message(page, 'status'), /renamed to \/atlas\/physics/);
    assert.ok((await server.fedgate.accounts.findByUsername('alice'))!.groups.includes('/atlas/physics'));
    await page.getByRole('button', { name: 'Remove alice from /atlas/physics' }).click();
    await page.waitForLoadState();
    await page.getByRole('button', { name: 'Delete /atlas/physics' }).click();
    await page.waitForURL(/\/admin\/groups\?parent=%2Fatlas$/);
    assert.match(await message(page, 'status'), /Group \/atlas\/physics deleted/);
    assert.equal(await server.fedgate.groups.exists('/atlas/physics'), false);
  });

  it('Policies: a group\'s rules by domain, the editor with the API\'s problems on their lines, what-if with the deciding rule, CSV export and import', async () => {
    await page.goto(`${server.issuer}/admin/policies?group=%2Fatlas`);
    const main = page.locator('main');
    assert.match(await main.innerText(), /Domain data/);
    const editor = page.getByLabel(/One rule per line/);
    const original = await editor.inputValue();
    assert.match(original, /^data, \/store\/atlas\/\*\*, read, allow, storage\.read$/m);
    await checkPage(page, 'policies');

    // A line that is not rule-shaped is pointed out before anything is sent.
    await editor.fill(`${original}\n# a comment\nml, /models/**, inference`);
    await page.getByRole('button', { name: 'Save rules' }).click();
    await page.waitForLoadState();
    const lines = original.split('\n').length;
    assert.match(await message(page, 'alert'), new RegExp(`Line ${lines + 2}: expected 4 or 5 values`));
    // Two lines the API refuses among good ones: each of its problems is shown against its line, nothing changes.
    await page.getByLabel(/One rule per line/).fill(`${original}\n\ndata, /store/atlas/x//y, read, allow\nnowhere, /x, read, allow`);
    await page.getByRole('button', { name: 'Save rules' }).click();
    await page.waitForLoadState();
    const problems = await message(page, 'alert');
    assert.match(problems, new RegExp(`Line ${lines + 2}: invalid object pattern`));
    assert.match(problems, new RegExp(`Line ${lines + 3}: .*nowhere`));
    assert.equal(await page.getByLabel(/One rule per line/).getAttribute('aria-invalid'), 'true');
    await checkPage(page, 'policies-problems');
    assert.equal((await server.fedgate.policy.list({ ptype: 'p', subject: '/atlas' })).some((l) => l.values[1] === 'ml'), false);

    // A good change is saved through the API.
    await page.getByLabel(/One rule per line/).fill(`${original}\nml, /models/atlas/**, inference, allow`);
    await page.getByRole('button', { name: 'Save rules' }).click();
    await page.waitForURL(/\/admin\/policies\?group=%2Fatlas$/);
    assert.match(await message(page, 'status'), /1 added, 0 removed/);
    assert.ok((await server.fedgate.policy.list({ ptype: 'p', subject: '/atlas' })).some((l) => l.values[1] === 'ml' && l.values[2] === '/models/atlas/**'));

    // What if bob reads /store/atlas/secret/x? A deny rule of his decides.
    await page.getByLabel('Subject kind').selectOption('user');
    await page.getByLabel('Username, group or client id').fill('bob');
    await page.getByLabel('Service (domain)').fill('data');
    await page.getByLabel('Method or operation').fill('read');
    await page.getByLabel(/^Path/).fill('/store/atlas/secret/x');
    await page.getByLabel(/Token scopes/).fill('storage.read:/store/atlas');
    await page.getByRole('button', { name: 'Evaluate' }).click();
    await page.waitForLoadState();
    const verdict = page.locator('section[aria-labelledby=decision-h]');
    assert.equal(await verdict.getByRole('heading').innerText(), 'Denied');
    assert.match(await verdict.innerText(), /Deciding rule: p, user:bob, data, \/store\/atlas\/secret\/\*\*, \*, deny/);
    // The same for another path: allowed by /atlas's rule.
    await page.getByLabel(/^Path/).fill('/store/atlas/run1/file');
    await page.getByRole('button', { name: 'Evaluate' }).click();
    await page.waitForLoadState();
    assert.equal(await verdict.getByRole('heading').innerText(), 'Allowed');
    assert.match(await verdict.innerText(), /Deciding rule: p, \/atlas, data, \/store\/atlas\/\*\*, read, allow, storage\.read/);
    await checkPage(page, 'policies-what-if');

    // CSV export of /atlas's rules, through the API.
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', { name: "only /atlas's rules" }).click()]);
    const csv = await (await import('node:fs/promises')).readFile((await download.path())!, 'utf8');
    assert.match(csv, /^p, \/atlas, data, \/store\/atlas\/\*\*, read, allow, storage\.read$/m);
    assert.doesNotMatch(csv, /\/cms/);
    // Import (merge): a bad file is refused with its line, a good one is added.
    await page.getByLabel(/Policy CSV/).fill('p, /atlas, sync, /groups/atlas/shared/**, read, allow\nq, nonsense');
    await page.getByRole('button', { name: 'Import' }).click();
    await page.waitForLoadState();
    assert.match(await message(page, 'alert'), /import:2: unknown line type "q"/);
    await page.getByLabel(/Policy CSV/).fill('p, /atlas, sync, /groups/atlas/shared/**, read, allow');
    await page.getByRole('button', { name: 'Import' }).click();
    await page.waitForURL(/\/admin\/policies\?group=%2Fatlas$/);
    assert.match(await message(page, 'status'), /1 rules added, 0 removed/);
    const admin = await server.fedgate.accounts.findByUsername('admin');
    const audited = (await server.fedgate.audit.recent(100)).filter((e) => e.type === 'policy.changed' && e.outcome === 'success');
    assert.ok(audited.length >= 2 && audited.every((e) => e.actor === admin!.id));
  });
});
