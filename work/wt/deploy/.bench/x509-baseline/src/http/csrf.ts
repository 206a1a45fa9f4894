import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { Context } from 'koa';

/**
 * Double-submit CSRF token: a random value in an HttpOnly SameSite cookie
 * (scoped to `path`) that each form repeats. Returns the browser's token,
 * creating it when absent.
 */
export function csrfToken(ctx: Context, options: { cookie: string; path: string; secure: boolean }): string {
  const existing = ctx.cookies.get(options.cookie);
  if (existing && /^[A-Za-z0-9_-]{43}$/.test(existing)) return existing;
  const token = randomBytes(32).toString('base64url');
  ctx.cookies.set(options.cookie, token, { httpOnly: true, sameSite: 'lax', secure: options.secure, path: options.path, overwrite: true });
  return token;
}

/** Whether a submitted form value matches the browser's CSRF cookie (constant time). */
export function csrfMatches(ctx: Context, cookie: string, submitted: unknown): boolean {
  const value = ctx.cookies.get(cookie);
  return typeof submitted === 'string' && !!value && submitted.length === value.length
    && timingSafeEqual(Buffer.from(submitted), Buffer.from(value));
}
