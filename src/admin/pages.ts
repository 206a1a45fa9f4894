import type { Context } from 'koa';
import { fail } from './http.ts';

/** Page size when a list is asked for one page without a `limit`. */
export const DEFAULT_PAGE_SIZE = 50;
/** The largest `limit` of a list page (the admin API contract: 1..200). */
export const MAX_PAGE_SIZE = 200;
/** Longest search text accepted (`q`, `actor`, `target`, `type`). */
const MAX_QUERY_LENGTH = 200;
/** Longest decoded cursor: an index member (a username with name and email, a group path). */
const MAX_CURSOR_LENGTH = 2000;
const MAX_CURSOR_TEXT = Math.ceil((MAX_CURSOR_LENGTH * 4) / 3);

/** The page a list request asks for. */
export interface PageRequest {
  /** True when any of `q`, `limit`, `cursor` was given: answer one page with `next`. */
  paged: boolean;
  q: string | undefined;
  limit: number;
  /** The decoded cursor: where the previous page stopped. */
  after: string | undefined;
}

/** One query parameter as a single string (a repeated parameter is a 400 `invalid_request`). */
export function queryText(ctx: Context, name: string, maxLength = MAX_QUERY_LENGTH): string | undefined | null {
  const value = ctx.query[name];
  if (value === undefined) return undefined;
  if (Array.isArray(value)) {
    fail(ctx, 400, 'invalid_request', `${name} may be given once`);
    return null;
  }
  if (value.length > maxLength || /[\u0000-\u001f\u007f]/.test(value)) {
    fail(ctx, 400, 'invalid_request', `${name} must be at most ${maxLength} characters without control characters`);
    return null;
  }
  return value;
}

/**
 * Reads `q`, `limit` (1..maxLimit) and `cursor` of a list request; answers
 * 400 and returns undefined when one is malformed.
 */
export function pageRequest(ctx: Context, maxLimit = MAX_PAGE_SIZE): PageRequest | undefined {
  const q = queryText(ctx, 'q');
  const limitText = queryText(ctx, 'limit');
  const cursor = queryText(ctx, 'cursor', MAX_CURSOR_TEXT);
  if (q === null || limitText === null || cursor === null) return undefined;
  let limit = DEFAULT_PAGE_SIZE;
  if (limitText !== undefined) {
    limit = /^\d{1,4}$/.test(limitText) ? Number(limitText) : 0;
    if (limit < 1 || limit > maxLimit) {
      fail(ctx, 400, 'invalid_request', `limit must be a whole number from 1 to ${maxLimit}`);
      return undefined;
    }
  }
  let after: string | undefined;
  if (cursor !== undefined && cursor !== '') {
    after = decodeCursor(cursor);
    if (after === undefined) {
      fail(ctx, 400, 'invalid_request', 'cursor is not one this API returned');
      return undefined;
    }
  }
  return { paged: q !== undefined || limitText !== undefined || cursor !== undefined, q: q || undefined, limit, after };
}

/** The opaque cursor for a position (base64url, so any member text travels in a URL). */
export function encodeCursor(position: string | undefined): string | null {
  return position === undefined ? null : Buffer.from(position, 'utf8').toString('base64url');
}

function decodeCursor(cursor: string): string | undefined {
  if (!/^[A-Za-z0-9_-]+$/.test(cursor)) return undefined;
  const bytes = Buffer.from(cursor, 'base64url');
  const text = bytes.toString('utf8');
  // Reject what does not round-trip: not valid UTF-8, or not base64url this API wrote.
  if (!Buffer.from(text, 'utf8').equals(bytes) || bytes.toString('base64url') !== cursor) return undefined;
  return text;
}
