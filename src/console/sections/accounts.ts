/** Accounts: server-side search, disable and enable, linked identities, groups, AUP acceptance, live grants with revoke. */
import type Router from '@koa/router';
import { html } from '../../views/html.ts';
import { AdminApiError, AdminClient } from '../admin-client.ts';
import type { ConsoleKit } from '../kit.ts';
import { csrfField, pager, when } from '../layout.ts';
import { groupHref } from './groups.ts';

interface AccountJson {
  id: string;
  username: string;
  name?: string;
  email?: string;
  groups?: string[];
  effective_groups?: string[];
  disabled?: boolean;
  identities?: Array<{ type: string; issuer: string; subject: string }>;
  aup?: { version: string; acceptedAt: string | number } | null;
}
interface GrantJson {
  id: string;
  client_id: string;
  /** OIDC scopes. */
  scope: string;
  /** Scopes per audience (resource indicator). */
  resources: Record<string, string>;
  created_at: number | null;
  expires_at: number | null;
}

const PAGE = 50;
const seg = AdminClient.segment;
const accountHref = (username: string) => `/admin/accounts/view?${new URLSearchParams({ username })}`;

export function accountSection(router: Router, kit: ConsoleKit): void {
  kit.page(router, '/accounts', async (ctx) => {
    const q = typeof ctx.query.q === 'string' ? ctx.query.q.trim().slice(0, 200) : '';
    const cursor = typeof ctx.query.cursor === 'string' ? ctx.query.cursor : undefined;
    const answer = await kit.api(ctx).get<{ accounts: AccountJson[]; next?: string | null; total?: number }>('/accounts', { q, limit: PAGE, cursor });
    const list = answer.accounts.slice(0, PAGE);
    const body = html`<h1>Accounts</h1>
<form method="get" action="/admin/accounts" role="search" class="row">
<div><label for="q">Search by username, name or email</label><input id="q" name="q" type="search" value="${q}"></div>
<div class="narrow"><button type="submit">Search</button></div>
</form>
${answer.total !== undefined && html`<p class="muted">${answer.total.toLocaleString('en')} accounts in all.</p>`}
${list.length ? html`<div class="table"><table>
<thead><tr><th scope="col">Username</th><th scope="col">Name</th><th scope="col">Email</th><th scope="col">Groups</th><th scope="col">State</th></tr></thead>
<tbody>${list.map((a) => html`<tr><td><a href="${accountHref(a.username)}">${a.username}</a></td><td>${a.name ?? ''}</td><td>${a.email ?? ''}</td><td>${(a.groups ?? []).join(', ')}</td><td>${a.disabled ? html`<span class="bad">disabled</span>` : 'active'}</td></tr>\n`)}</tbody>
</table></div>` : html`<p class="muted">No accounts found.</p>`}
${pager('/admin/accounts', { q, cursor }, answer.next)}`;
    await kit.render(ctx, { title: 'Accounts', section: 'accounts', body });
  }, { adminOnly: true });

  kit.page(router, '/accounts/view', async (ctx) => {
    const username = String(ctx.query.username ?? '');
    const api = kit.api(ctx);
    const session = kit.session(ctx);
    const [account, grants] = await Promise.all([
      api.get<AccountJson>(`/accounts/${seg(username)}`),
      api.get<{ grants: GrantJson[] }>(`/accounts/${seg(username)}/grants`).catch((err: unknown) => {
        if (err instanceof AdminApiError && err.error === 'http_404') return undefined;
        throw err;
      }),
    ]);
    const hidden = html`${csrfField(session.csrf)}<input type="hidden" name="username" value="${account.username}">`;
    const body = html`<h1>Account ${account.username}</h1>
<p><a href="/admin/accounts">All accounts</a></p>
<dl class="facts">
<dt>Name</dt><dd>${account.name ?? ''}</dd>
<dt>Email</dt><dd>${account.email ?? ''}</dd>
<dt>Subject (sub)</dt><dd><code>${account.id}</code></dd>
<dt>State</dt><dd>${account.disabled ? html`<strong class="bad">disabled</strong>` : 'active'}</dd>
<dt>Usage policy</dt><dd>${account.aup ? `version ${account.aup.version}, accepted ${when(account.aup.acceptedAt)}` : account.aup === null ? 'not accepted' : html`<span class="muted">not reported</span>`}</dd>
</dl>
<form method="post" action="/admin/accounts/state">${hidden}<input type="hidden" name="disabled" value="${account.disabled ? 'false' : 'true'}">
${account.disabled ? html`<button type="submit">Enable ${account.username}</button>` : html`<button type="submit" class="danger">Disable ${account.username}</button> <span class="muted">Disabling revokes every grant at once.</span>`}
</form>
<h2>Groups</h2>
<p>Direct: ${(account.groups ?? []).length ? (account.groups ?? []).map((g, i) => html`${i ? ', ' : ''}<a href="${groupHref(g)}"><code>${g}</code></a>`) : 'none'}</p>
<p>Effective (with the groups above them): ${(account.effective_groups ?? []).join(', ') || 'none'}</p>
<h2>Linked identities</h2>
${account.identities?.length ? html`<div class="table"><table><thead><tr><th scope="col">Type</th><th scope="col">Issuer</th><th scope="col">Subject</th></tr></thead>
<tbody>${account.identities.map((i) => html`<tr><td>${i.type}</td><td><code>${i.issuer}</code></td><td><code>${i.subject}</code></td></tr>`)}</tbody></table></div>` : html`<p class="muted">None: password sign-in only.</p>`}
<h2>Live grants</h2>
${grants === undefined ? html`<p class="muted">This fedgate's admin API does not list grants.</p>`
  : grants.grants.length ? html`<div class="table"><table><thead><tr><th scope="col">Client</th><th scope="col">Scopes</th><th scope="col">Services (audience: scopes)</th><th scope="col">Since</th><th scope="col">Expires</th><th scope="col"><span class="muted">Action</span></th></tr></thead>
<tbody>${grants.grants.map((g) => html`<tr><td>${g.client_id}</td><td><code>${g.scope}</code></td><td>${Object.entries(g.resources).map(([aud, scopes], i) => html`${i ? html`<br>` : ''}<code>${aud}</code>: <code>${scopes}</code>`)}</td><td>${when(g.created_at)}</td><td>${when(g.expires_at)}</td>
<td><form class="inline" method="post" action="/admin/accounts/revoke">${hidden}<input type="hidden" name="grant" value="${g.id}"><button type="submit" class="secondary" aria-label="${`Revoke the grant of ${g.client_id}`}">Revoke</button></form></td></tr>\n`)}</tbody></table></div>`
  : html`<p class="muted">No live grants.</p>`}`;
    await kit.render(ctx, { title: `Account ${account.username}`, section: 'accounts', body });
  }, { adminOnly: true });

  kit.action(router, '/accounts/state', async (ctx, fields) => {
    const username = fields.username ?? '';
    const disabled = fields.disabled === 'true';
    try {
      await kit.api(ctx).patch(`/accounts/${seg(username)}`, { disabled });
      await kit.done(ctx, accountHref(username), disabled ? `${username} is disabled; their grants were revoked.` : `${username} is enabled again.`);
    } catch (err) {
      await kit.refused(ctx, accountHref(username), err);
    }
  }, { adminOnly: true });

  kit.action(router, '/accounts/revoke', async (ctx, fields) => {
    const username = fields.username ?? '';
    try {
      await kit.api(ctx).delete(`/accounts/${seg(username)}/grants/${seg(fields.grant ?? '')}`);
      await kit.done(ctx, accountHref(username), 'The grant was revoked, with every token issued under it.');
    } catch (err) {
      await kit.refused(ctx, accountHref(username), err);
    }
  }, { adminOnly: true });
}
