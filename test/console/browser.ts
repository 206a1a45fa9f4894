/**
 * The console's browser tests share this: Debian's Chromium through
 * playwright-core (never a downloaded browser), signing in through the real
 * login page, axe-core injected into each page, and screenshots at 1280 and
 * 390 px written as artifacts under .artifacts/console/ (gitignored).
 */
import assert from 'node:assert/strict';
import { mkdir, readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { startServer, type TestServer } from '../support/harness.ts';

export const CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'];
export const ARTIFACTS = join('.artifacts', 'console');

export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_FLAGS });
}

/** A fresh browser profile (own cookies) at desktop width. */
export function newContext(browser: Browser, options: { javaScriptEnabled?: boolean } = {}): Promise<BrowserContext> {
  return browser.newContext({ viewport: { width: 1280, height: 900 }, ...options });
}

/** Opens `<issuer>/admin` (or `path`) and signs in on fedgate's login page; resolves on the console page. */
export async function signIn(page: Page, issuer: string, username: string, password: string, path = '/admin'): Promise<void> {
  await page.goto(`${issuer}${path}`);
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  // The callback answers 303 to the console, or shows why not (a refusal) at /admin/callback.
  await page.waitForURL((url) => url.pathname.startsWith('/admin'));
}

const require = createRequire(import.meta.url);
let axeSource: Promise<string> | undefined;

/** Runs axe-core in the page; fails on any serious or critical violation (listing them). */
export async function assertAccessible(page: Page, label: string): Promise<void> {
  axeSource ??= readFile(require.resolve('axe-core/axe.min.js'), 'utf8');
  // Evaluated through the DevTools protocol: the console's CSP (nonce'd scripts only) stays as it is.
  await page.evaluate(await axeSource);
  const violations = await page.evaluate(async () => {
    const axe = (globalThis as unknown as { axe: { run(ctx: unknown, options: unknown): Promise<{ violations: Array<{ id: string; impact: string; help: string; nodes: Array<{ target: unknown }> }> }> } }).axe;
    const result = await axe.run(document, { resultTypes: ['violations'] });
    return result.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, targets: v.nodes.slice(0, 3).map((n) => JSON.stringify(n.target)) }));
  });
  const serious = violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  assert.deepEqual(serious, [], `${label}: axe-core found serious or critical violations`);
}

/** Screenshots of the current page at 1280 and 390 px wide (full page), as test artifacts. */
export async function screenshots(page: Page, name: string): Promise<string[]> {
  await mkdir(ARTIFACTS, { recursive: true });
  const original = page.viewportSize() ?? { width: 1280, height: 900 };
  const files: string[] = [];
  for (const width of [1280, 390]) {
    await page.setViewportSize({ width, height: width === 390 ? 844 : 900 });
    const file = join(ARTIFACTS, `${name}-${width}.png`);
    await page.screenshot({ path: file, fullPage: true });
    files.push(file);
  }
  await page.setViewportSize(original);
  return files;
}

/** Accessibility check and screenshots of the page as it is now. */
export async function checkPage(page: Page, name: string): Promise<void> {
  await assertAccessible(page, name);
  await screenshots(page, name);
}

/** A new browser profile signed in to the console as `username` (the demo realm's admin by default). */
export async function consolePage(browser: Browser, issuer: string, username = 'admin', password = `${username}-password`, path = '/admin'): Promise<{ context: BrowserContext; page: Page }> {
  const context = await newContext(browser);
  const page = await context.newPage();
  await signIn(page, issuer, username, password, path);
  return { context, page };
}

/** One fedgate (demo realm), one Chromium and the admin signed in on `path`: the fixture of a page's tests. */
export interface AdminConsole {
  server: TestServer;
  browser: Browser;
  context: BrowserContext;
  page: Page;
}

export async function openAdminConsole(path: string): Promise<AdminConsole> {
  const server = await startServer();
  const browser = await launchChromium();
  const { context, page } = await consolePage(browser, server.issuer, 'admin', 'admin-password', path);
  return { server, browser, context, page };
}

export async function closeAdminConsole(opened: Partial<AdminConsole> | undefined): Promise<void> {
  await opened?.context?.close();
  await opened?.browser?.close();
  await opened?.server?.cleanup();
}

/** The text of the page's status message (after a change) or alert (a refusal). */
export async function message(page: Page, role: 'status' | 'alert'): Promise<string> {
  return page.getByRole(role).first().innerText();
}

/** What has the keyboard focus: its tag, id, label text and accessible name parts. */
interface Focused { tag: string; id: string; name: string; label: string; text: string }

/** Presses Tab until the focused element matches (keyboard only, as a person without a mouse would), failing after `max` presses. */
export async function tabTo(page: Page, matches: (f: Focused) => boolean, what: string, max = 80): Promise<void> {
  for (let i = 0; i < max; i++) {
    await page.keyboard.press('Tab');
    const focused = await page.evaluate(() => {
      const el = document.activeElement as HTMLElement | null;
      if (!el) return { tag: '', id: '', name: '', label: '', text: '' };
      const label = el.id ? document.querySelector(`label[for="${el.id}"]`)?.textContent ?? '' : '';
      return { tag: el.tagName.toLowerCase(), id: el.id, name: el.getAttribute('aria-label') ?? '', label: label.trim(), text: (el.textContent ?? '').trim() };
    });
    if (matches(focused)) return;
  }
  assert.fail(`Tab never reached ${what}`);
}
