/** Overview: store and replica health, signing keys, counts, the latest audit events (`GET /overview`). */
import type Router from '@koa/router';
import { html, type SafeHtml } from '../../views/html.ts';
import { AdminApiError } from '../admin-client.ts';
import type { ConsoleKit } from '../kit.ts';
import { when } from '../layout.ts';
import { auditTable, type AuditEventJson } from './audit-table.ts';

interface Overview {
  store?: { ok?: boolean; kind?: string; latencyMs?: number };
  replicas?: Array<Record<string, unknown>>;
  keys?: Record<string, unknown>;
  counts?: Record<string, number>;
  audit?: AuditEventJson[];
}

/** A value of the overview for people: lists as lists, times as times, objects by their fields. */
function show(value: unknown, key = ''): SafeHtml | string {
  if (Array.isArray(value)) {
    if (!value.length) return 'none';
    return html`<ul>${value.map((v) => html`<li>${show(v)}</li>`)}</ul>`;
  }
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>);
    return html`${entries.map(([k, v], i) => html`${i ? ', ' : ''}${k}: ${show(v, k)}`)}`;
  }
  if (/at$|time|rotation|since|activates|expires/i.test(key) && value !== null && value !== undefined) return when(value);
  if (typeof value === 'boolean') return value ? 'yes' : 'no';
  return String(value ?? '');
}

const COUNT_LABELS: Record<string, string> = { accounts: 'Accounts', groups: 'Groups', clients: 'Clients', dataSources: 'Data sources' };

export function overviewSection(router: Router, kit: ConsoleKit): void {
  kit.page(router, '/', async (ctx) => {
    // A group manager's console starts with what they do: their groups' requests.
    if (!kit.session(ctx).admin) return ctx.redirect('/admin/requests');
    const api = kit.api(ctx);
    let overview: Overview | undefined;
    try {
      overview = await api.get<Overview>('/overview');
    } catch (err) {
      if (!(err instanceof AdminApiError) || err.error !== 'http_404') throw err;
    }
    const events = overview?.audit ?? (await api.get<{ events: AuditEventJson[] }>('/audit', { limit: 10 })).events;
    const store = overview?.store;
    const body = html`<h1>Overview</h1>
${overview ? html`<div class="cards">
<section class="card" aria-labelledby="store-h"><h2 id="store-h">Store</h2>
<p class="big">${store?.ok ? 'Healthy' : html`<span class="bad">Unavailable</span>`}</p>
<p>${store?.kind ?? ''}${store?.latencyMs !== undefined ? ` · ${store.latencyMs} ms` : ''}</p></section>
${Object.entries(overview.counts ?? {}).map(([k, v]) => html`<section class="card"><h2>${COUNT_LABELS[k] ?? k}</h2><p class="big">${v.toLocaleString('en')}</p></section>`)}
</div>
<h2>Replicas</h2>
${overview.replicas?.length ? html`<ul>${overview.replicas.map((r) => html`<li>${show(r)}</li>`)}</ul>` : html`<p class="muted">No replica reports.</p>`}
<h2>Signing keys</h2>
${overview.keys ? html`<dl class="facts">${Object.entries(overview.keys).map(([k, v]) => html`<dt>${k}</dt><dd>${show(v, k)}</dd>`)}</dl>` : html`<p class="muted">Not reported.</p>`}`
  : html`<p class="muted">This fedgate's admin API has no overview; the latest audit events follow.</p>`}
<h2>Latest audit events</h2>
${auditTable(events.slice(0, 10), 'The ten latest events')}
<p><a href="/admin/audit">All audit events</a></p>`;
    await kit.render(ctx, { title: 'Overview', section: 'overview', body });
  });
}
