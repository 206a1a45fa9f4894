/** Audit: events filtered by type, actor, target and time, paginated by the API. */
import type Router from '@koa/router';
import { html } from '../../views/html.ts';
import type { ConsoleKit } from '../kit.ts';
import { pager } from '../layout.ts';
import { auditTable, type AuditEventJson } from './audit-table.ts';

const PAGE = 50;
const FILTERS = ['type', 'actor', 'target', 'since', 'until'] as const;

/** A `datetime-local` value (or ISO text) as the API's ISO 8601 time in UTC. */
function isoTime(value: string): string {
  if (!value) return '';
  return /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?$/.test(value) ? `${value.length === 16 ? `${value}:00` : value}Z` : value;
}

export function auditSection(router: Router, kit: ConsoleKit): void {
  kit.page(router, '/audit', async (ctx) => {
    const query = Object.fromEntries(FILTERS.map((f) => [f, typeof ctx.query[f] === 'string' ? (ctx.query[f] as string).trim().slice(0, 200) : ''])) as Record<(typeof FILTERS)[number], string>;
    const cursor = typeof ctx.query.cursor === 'string' ? ctx.query.cursor : undefined;
    const answer = await kit.api(ctx).get<{ events: AuditEventJson[]; next?: string | null }>('/audit', {
      type: query.type, actor: query.actor, target: query.target, since: isoTime(query.since), until: isoTime(query.until), limit: PAGE, cursor,
    });
    const body = html`<h1>Audit</h1>
<form method="get" action="/admin/audit">
<div class="row">
<div><label for="f-type">Type</label><input id="f-type" name="type" value="${query.type}" placeholder="group.created" list="audit-types">
<datalist id="audit-types">${['login', 'login.failed', 'token.issued', 'token.revoked', 'group.created', 'group.renamed', 'group.deleted', 'group.member.added', 'group.member.removed', 'policy.changed', 'account.disabled', 'account.enabled', 'datasource.created', 'datasource.deleted', 'client.registered', 'admin.change'].map((t) => html`<option value="${t}"></option>`)}</datalist></div>
<div><label for="f-actor">Actor (username, account id or client:id)</label><input id="f-actor" name="actor" value="${query.actor}"></div>
<div><label for="f-target">Target</label><input id="f-target" name="target" value="${query.target}" placeholder="/atlas"></div>
</div>
<div class="row">
<div><label for="f-since">Since (UTC)</label><input id="f-since" name="since" type="datetime-local" step="1" value="${query.since.replace(/Z$/, '')}"></div>
<div><label for="f-until">Until (UTC)</label><input id="f-until" name="until" type="datetime-local" step="1" value="${query.until.replace(/Z$/, '')}"></div>
<div class="narrow"><button type="submit">Filter</button></div>
</div>
</form>
${auditTable(answer.events.slice(0, PAGE), 'Newest first')}
${pager('/admin/audit', { ...query, cursor }, answer.next)}`;
    await kit.render(ctx, { title: 'Audit', section: 'audit', body });
  }, { adminOnly: true });
}
