import { randomBytes } from 'node:crypto';
import type { Context } from 'koa';

/** Options of {@link sendPage}. */
export interface PageOptions {
  /**
   * Allow inline scripts that carry the page's nonce (small improvements
   * such as copy buttons; the page must work without them).
   */
  scripts?: boolean;
}

/**
 * Sends a server-rendered page with the headers every fedgate page carries:
 * a nonce-based CSP (no script at all, no outside assets), no framing, no
 * caching, no referrer.
 */
export function sendPage(ctx: Context, render: (nonce: string) => string, status = 200, options: PageOptions = {}): void {
  const nonce = randomBytes(16).toString('base64');
  ctx.status = status;
  ctx.type = 'text/html; charset=utf-8';
  const scripts = options.scripts ? ` script-src 'nonce-${nonce}';` : '';
  ctx.set('Content-Security-Policy', `default-src 'none'; style-src 'nonce-${nonce}';${scripts} img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'`);
  ctx.set('X-Frame-Options', 'DENY');
  ctx.set('X-Content-Type-Options', 'nosniff');
  ctx.set('Referrer-Policy', 'no-referrer');
  ctx.set('Cache-Control', 'no-store');
  ctx.body = render(nonce);
}
