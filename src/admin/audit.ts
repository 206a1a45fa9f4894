import Router from '@koa/router';
import type { Accounts } from '../accounts/accounts.ts';
import type { Audit } from '../observability/audit.ts';
import { fail } from './http.ts';
import { encodeCursor, pageRequest, queryText } from './pages.ts';

export interface AuditRoutesDeps {
  accounts: Accounts;
  audit: Audit;
}

/** The most events one page of the audit trail holds (kept at 1,000 for callers of the earlier `?limit=`). */
const MAX_AUDIT_PAGE = 1000;
const STREAM_ID = /^\d{1,16}-\d{1,20}$/;

/**
 * `GET /admin/api/audit`: the audit trail, newest first, filtered by `type`
 * (exact, or a prefix ending in `.`), `actor`, `target` (an account's
 * username stands for its id too), `since` and `until` (ISO 8601,
 * inclusive), paged by `limit` and `cursor`.
 */
export function auditRoutes(deps: AuditRoutesDeps): Router {
  const { accounts, audit } = deps;
  const router = new Router();

  /** The values an actor or target filter matches: the text itself, and the id of the account it names. */
  const withAccountId = async (value: string): Promise<string[]> => {
    const account = await accounts.findByUsername(value).catch(() => undefined);
    return account ? [value, account.id] : [value];
  };
  const instant = (text: string | undefined): number | undefined | null => {
    if (text === undefined) return undefined;
    const ms = /^\d{4}-\d{2}-\d{2}(T[\d:.]+(Z|[+-]\d{2}:\d{2})?)?$/.test(text) ? Date.parse(text) : Number.NaN;
    return Number.isFinite(ms) ? ms : null;
  };

  router.get('/audit', async (ctx) => {
    const page = pageRequest(ctx, MAX_AUDIT_PAGE);
    const type = queryText(ctx, 'type');
    const actor = queryText(ctx, 'actor');
    const target = queryText(ctx, 'target');
    const sinceText = queryText(ctx, 'since');
    const untilText = queryText(ctx, 'until');
    if (!page || type === null || actor === null || target === null || sinceText === null || untilText === null) return;
    const since = instant(sinceText);
    const until = instant(untilText);
    if (since === null || until === null) return fail(ctx, 400, 'invalid_request', 'since and until must be ISO 8601 times such as 2026-01-31T12:00:00Z');
    if (page.after !== undefined && !STREAM_ID.test(page.after)) return fail(ctx, 400, 'invalid_request', 'cursor is not one this API returned');
    const filtered = type !== undefined || actor !== undefined || target !== undefined || since !== undefined || until !== undefined;
    if (!page.paged && !filtered) {
      // The earlier shape: the newest 100 events.
      ctx.body = { events: await audit.recent(100) };
      return;
    }
    const { events, next } = await audit.page({
      type: type || undefined,
      actor: actor ? await withAccountId(actor) : undefined,
      target: target ? await withAccountId(target) : undefined,
      since,
      until,
      before: page.after,
      limit: page.limit,
    });
    ctx.body = { events, next: encodeCursor(next) };
  });

  return router;
}
