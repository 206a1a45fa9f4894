/**
 * Requests: pending membership requests (a manager sees those of their
 * groups, as the API decides) and, for administrators, account
 * registrations; approve or reject with a reason.
 */
import type Router from '@koa/router';
import { html } from '../../views/html.ts';
import { AdminApiError, AdminClient } from '../admin-client.ts';
import type { ConsoleKit } from '../kit.ts';
import { csrfField, pager, when } from '../layout.ts';

interface MembershipRequestJson {
  id: string;
  username?: string;
  user?: string;
  name?: string;
  group: string;
  reason?: string;
  status?: string;
  createdAt?: string | number;
  created_at?: string | number;
}
interface RegistrationJson {
  id: string;
  username?: string;
  name?: string;
  email?: string;
  reason?: string;
  identity?: { type?: string; issuer?: string; subject?: string };
  createdAt?: string | number;
  created_at?: string | number;
}

const PAGE = 50;
const seg = AdminClient.segment;
const notOffered = (err: unknown) => err instanceof AdminApiError && err.error === 'http_404';

export function requestSection(router: Router, kit: ConsoleKit): void {
  kit.page(router, '/requests', async (ctx) => {
    const session = kit.session(ctx);
    const api = kit.api(ctx);
    const cursor = typeof ctx.query.cursor === 'string' ? ctx.query.cursor : undefined;
    const [requests, registrations] = await Promise.all([
      api.get<{ requests: MembershipRequestJson[]; next?: string | null }>('/requests', { status: 'pending', limit: PAGE, cursor })
        .catch((err: unknown) => (notOffered(err) ? undefined : Promise.reject(err))),
      session.admin
        ? api.get<{ registrations: RegistrationJson[] }>('/registrations', { status: 'pending' })
          .catch((err: unknown) => (notOffered(err) || (err instanceof AdminApiError && err.status === 400) ? undefined : Promise.reject(err)))
        : Promise.resolve(undefined),
    ]);
    const csrf = csrfField(session.csrf);
    const body = html`<h1>Requests</h1>
<h2 id="membership-h">Membership requests</h2>
${requests === undefined ? html`<p class="muted">This fedgate's admin API has no membership requests.</p>`
  : requests.requests.length ? html`<ul class="plain" aria-labelledby="membership-h">${requests.requests.slice(0, PAGE).map((r) => {
    const who = r.username ?? r.user ?? '';
    return html`<li class="card">
<p><strong>${who}</strong>${r.name ? ` (${r.name})` : ''} asks to join <code>${r.group}</code>${r.createdAt ?? r.created_at ? html` <span class="muted">on ${when(r.createdAt ?? r.created_at)}</span>` : ''}.</p>
${r.reason ? html`<p>Reason: “${r.reason}”</p>` : ''}
<form class="inline" method="post" action="/admin/requests/approve">${csrf}<input type="hidden" name="id" value="${r.id}"><input type="hidden" name="what" value="${`${who} → ${r.group}`}"><button type="submit" aria-label="${`Approve ${who} joining ${r.group}`}">Approve</button></form>
<form method="post" action="/admin/requests/reject" class="row">${csrf}<input type="hidden" name="id" value="${r.id}"><input type="hidden" name="what" value="${`${who} → ${r.group}`}">
<div><label for="${`reason-${r.id}`}">Reason for rejecting (optional)</label><input id="${`reason-${r.id}`}" name="reason" maxlength="500"></div>
<div class="narrow"><button type="submit" class="secondary" aria-label="${`Reject ${who} joining ${r.group}`}">Reject</button></div></form>
</li>`;
  })}</ul>${pager('/admin/requests', { cursor }, requests.next)}`
  : html`<p class="muted">No pending membership requests.</p>`}
${session.admin && html`<h2 id="registrations-h">Account registrations</h2>
${registrations === undefined ? html`<p class="muted">Self-registration is not enabled.</p>`
  : registrations.registrations.length ? html`<ul class="plain" aria-labelledby="registrations-h">${registrations.registrations.map((r) => html`<li class="card">
<p><strong>${r.username ?? r.name ?? r.email ?? r.id}</strong>${r.email ? html` &lt;${r.email}&gt;` : ''}${r.identity?.issuer ? html` via <code>${r.identity.issuer}</code>` : ''}${r.createdAt ?? r.created_at ? html` <span class="muted">on ${when(r.createdAt ?? r.created_at)}</span>` : ''}</p>
${r.reason ? html`<p>Reason: “${r.reason}”</p>` : ''}
<form class="inline" method="post" action="/admin/registrations/approve">${csrf}<input type="hidden" name="id" value="${r.id}"><button type="submit" aria-label="${`Approve the registration of ${r.username ?? r.email ?? r.id}`}">Approve</button></form>
<form class="inline" method="post" action="/admin/registrations/reject">${csrf}<input type="hidden" name="id" value="${r.id}"><button type="submit" class="secondary" aria-label="${`Reject the registration of ${r.username ?? r.email ?? r.id}`}">Reject</button></form>
</li>`)}</ul>` : html`<p class="muted">No pending registrations.</p>`}`}`;
    await kit.render(ctx, { title: 'Requests', section: 'requests', body });
  });

  kit.action(router, '/requests/approve', async (ctx, fields) => {
    try {
      await kit.api(ctx).post(`/requests/${seg(fields.id ?? '')}/approve`);
      await kit.done(ctx, '/admin/requests', `Approved: ${fields.what ?? 'the request'}. The member's next token carries the group.`);
    } catch (err) {
      await kit.refused(ctx, '/admin/requests', err);
    }
  });
  kit.action(router, '/requests/reject', async (ctx, fields) => {
    try {
      await kit.api(ctx).post(`/requests/${seg(fields.id ?? '')}/reject`, fields.reason?.trim() ? { reason: fields.reason.trim() } : {});
      await kit.done(ctx, '/admin/requests', `Rejected: ${fields.what ?? 'the request'}.`);
    } catch (err) {
      await kit.refused(ctx, '/admin/requests', err);
    }
  });
  for (const verdict of ['approve', 'reject'] as const) {
    kit.action(router, `/registrations/${verdict}`, async (ctx, fields) => {
      try {
        await kit.api(ctx).post(`/registrations/${seg(fields.id ?? '')}/${verdict}`);
        await kit.done(ctx, '/admin/requests', verdict === 'approve' ? 'Registration approved: the account exists now.' : 'Registration rejected.');
      } catch (err) {
        await kit.refused(ctx, '/admin/requests', err);
      }
    }, { adminOnly: true });
  }
}
