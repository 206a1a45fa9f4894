/**
 * `npm run screenshots`: regenerates the console screenshots of the README
 * (docs/console-overview.png at 1280 px, docs/console-requests-390.png at
 * 390 px) from a real fedgate with the demo realm, in Debian's Chromium
 * (playwright-core; never a downloaded browser). alice asks to join /atlas
 * on her account page first, so the manager's Requests page has something
 * to show.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { createFedgate } from '../src/app.ts';
import { loadConfig } from '../src/config/index.ts';
import { createLogger } from '../src/observability/logger.ts';
import { MemoryStore } from '../src/store/index.ts';

const CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'];
const DOCS = resolve(import.meta.dirname, '..', 'docs');

function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => done(port));
    }).on('error', fail);
  });
}

async function signIn(page: Page, url: string, username: string, password: string): Promise<void> {
  await page.goto(url);
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForLoadState();
}

async function main(): Promise<void> {
  const port = await freePort();
  const issuer = `http://127.0.0.1:${port}`;
  const keysDir = await mkdtemp(join(tmpdir(), 'fedgate-screenshots-'));
  const config = await loadConfig({ ISSUER: issuer, PORT: String(port), LOG_LEVEL: 'warn' });
  config.keysDir = keysDir;
  const fedgate = await createFedgate(config, { store: new MemoryStore(), logger: createLogger('warn'), watchKeys: false });
  await fedgate.listen(port, '127.0.0.1');
  let browser: Browser | undefined;
  try {
    browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_FLAGS });
    const alice = await (await browser.newContext({ colorScheme: 'light' })).newPage();
    await signIn(alice, `${issuer}/account`, 'alice', 'alice-password');
    await alice.getByLabel('Group').fill('/atlas');
    await alice.getByLabel('Reason').fill('Analysis of the 2026 run with the ATLAS group');
    await alice.getByRole('button', { name: 'Request membership' }).click();
    await alice.waitForLoadState();

    const admin = await (await browser.newContext({ viewport: { width: 1280, height: 860 }, colorScheme: 'light' })).newPage();
    await signIn(admin, `${issuer}/admin`, 'admin', 'admin-password');
    await admin.goto(`${issuer}/admin`);
    await admin.screenshot({ path: join(DOCS, 'console-overview.png') });

    const bob = await (await browser.newContext({ viewport: { width: 390, height: 844 }, colorScheme: 'light', deviceScaleFactor: 2 })).newPage();
    await signIn(bob, `${issuer}/admin`, 'bob', 'bob-password');
    await bob.goto(`${issuer}/admin/requests`);
    await bob.screenshot({ path: join(DOCS, 'console-requests-390.png') });
    process.stdout.write('wrote docs/console-overview.png and docs/console-requests-390.png\n');
  } finally {
    await browser?.close();
    await fedgate.close();
    await rm(keysDir, { recursive: true, force: true });
  }
}

main().catch((err: Error) => {
  process.stderr.write(`screenshots: ${err.stack ?? err.message}\n`);
  process.exit(1);
});
