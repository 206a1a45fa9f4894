/** Overview: store and replica health, signing keys, counts, the latest audit events (`GET /overview`). */
import type Router from '@koa/router';
import { html, type SafeHtml } from '../../views/html.ts';
import type { ConsoleKit } from '../kit.ts';
import { when } from '../layout.ts';
import { auditTable, type AuditEventJson } from './audit-table.ts';

interface KeyJson {
  kid: string;
  alg: string;
  created_at?: string;
  activates_at?: string;
  retires_at?: string;
}
interface Overview {
  store: { ok: boolean; kind: string; latencyMs: number };
  replicas: Array<{ id: string; hostname: string; pid: number; startedAt: string; seenAt: string }>;
  keys: { active: KeyJson[]; published: KeyJson[]; retiring: KeyJson[]; nextRotation?: string } | null;
  counts: Partial<Record<'accounts' | 'groups' | 'clients' | 'dataSources', number>>;
  audit: AuditEventJson[];
}

const COUNTS = [['accounts', 'Accounts', '/admin/accounts'], ['groups', 'Groups', '/admin/groups'], ['clients', 'Clients', '/admin/clients'], ['dataSources', 'Data sources', '/admin/datasources']] as const;

function keyRows(state: string, keys: KeyJson[]): SafeHtml {
  return html`${keys.map((k) => html`<tr><td>${state}</td><td><code>${k.kid.slice(0, 16)}…</code></td><td>${k.alg}</td><td>${when(k.activates_at)}</td><td>${when(k.retires_at) || '—'}</td></tr>\n`)}`;
}

export function overviewSection(router: Router, kit: ConsoleKit): void {
  kit.page(router, '/', async (ctx) => {
    // A group manager's console starts with what they do: their groups' requests.
    if (!kit.session(ctx).admin) return ctx.redirect('/admin/requests');
    const o = await kit.api(ctx).get<Overview>('/overview');
    const body = html`<h1>Overview</h1>
<div class="cards">
<section class="card" aria-labelledby="store-h"><h2 id="store-h">Store</h2>
<p class="big">${o.store.ok ? 'Healthy' : html`<span class="bad">Unavailable</span>`}</p>
<p>${o.store.kind}, answered in ${o.store.latencyMs} ms</p></section>
${COUNTS.map(([key, label, href]) => html`<section class="card" aria-labelledby="${`count-${key}`}"><h2 id="${`count-${key}`}"><a href="${href}">${label}</a></h2><p class="big">${o.counts[key] === undefined ? html`<span class="muted">unknown</span>` : o.counts[key].toLocaleString('en')}</p></section>`)}
</div>
<h2>Replicas</h2>
${o.replicas.length ? html`<div class="table"><table><thead><tr><th scope="col">Host</th><th scope="col">Process</th><th scope="col">Started</th><th scope="col">Last seen</th></tr></thead>
<tbody>${o.replicas.map((r) => html`<tr><td>${r.hostname}</td><td>${r.pid}</td><td>${when(r.startedAt)}</td><td>${when(r.seenAt)}</td></tr>`)}</tbody></table></div>`
  : html`<p class="muted">No replica has reported a heartbeat in the last 30 seconds.</p>`}
<h2>Signing keys</h2>
${o.keys ? html`<p>Next rotation: ${o.keys.nextRotation ? when(o.keys.nextRotation) : 'none scheduled'}</p>
<div class="table"><table><thead><tr><th scope="col">State</th><th scope="col">Key id</th><th scope="col">Algorithm</th><th scope="col">Active from</th><th scope="col">Retires</th></tr></thead>
<tbody>${keyRows('active', o.keys.active)}${keyRows('published (not yet signing)', o.keys.published)}${keyRows('retiring (still published)', o.keys.retiring)}</tbody></table></div>`
  : html`<p class="muted">Not reported.</p>`}
<h2>Latest audit events</h2>
${auditTable(o.audit.slice(0, 10), 'The ten latest events')}
<p><a href="/admin/audit">All audit events</a></p>`;
    await kit.render(ctx, { title: 'Overview', section: 'overview', body });
  });
}
