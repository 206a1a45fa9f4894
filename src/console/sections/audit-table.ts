/** Audit events as a table (the overview's latest events and the audit page). */
import { html, type SafeHtml } from '../../views/html.ts';
import { when } from '../layout.ts';

/** An audit event as the admin API answers it. */
export interface AuditEventJson {
  id?: string;
  time?: string;
  type?: string;
  actor?: string;
  outcome?: string;
  ip?: string;
  client?: string;
  target?: string;
  detail?: Record<string, unknown>;
}

/** A short summary of an event's detail (the whole JSON is on the audit page's detail rows). */
function summary(detail: Record<string, unknown> | undefined): string {
  if (!detail) return '';
  const text = JSON.stringify(detail);
  return text.length > 160 ? `${text.slice(0, 157)}…` : text;
}

export function auditTable(events: AuditEventJson[], caption: string): SafeHtml {
  if (!events.length) return html`<p class="muted">No audit events.</p>`;
  return html`<div class="table"><table>
<caption class="muted">${caption}</caption>
<thead><tr><th scope="col">Time</th><th scope="col">Type</th><th scope="col">Actor</th><th scope="col">Target</th><th scope="col">Outcome</th><th scope="col">Detail</th></tr></thead>
<tbody>
${events.map((e) => html`<tr><td>${when(e.time)}</td><td><code>${e.type}</code></td><td>${e.actor}</td><td>${e.target ?? ''}</td><td>${e.outcome === 'failure' ? html`<span class="bad">failure</span>` : e.outcome}</td><td><code>${summary(e.detail)}</code></td></tr>\n`)}
</tbody></table></div>`;
}
