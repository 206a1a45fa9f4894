/** Clients: list, create (public or confidential), rotate secret, disable, delete; initial access tokens. */
import type Router from '@koa/router';
import type { Context } from 'koa';
import { html, type SafeHtml } from '../../views/html.ts';
import { AdminApiError, AdminClient, plainRefusal } from '../admin-client.ts';
import { allValues, type ConsoleKit, type FormFields } from '../kit.ts';
import { csrfField, pager, when } from '../layout.ts';

interface ClientJson {
  client_id: string;
  client_name?: string;
  public?: boolean;
  token_endpoint_auth_method?: string;
  disabled?: boolean;
  redirect_uris?: string[];
  grant_types?: string[];
  scope?: string;
  /** From the configuration file: read-only here. */
  configured?: boolean;
  /** `data_source`: a data source's introspection client, changed through its data source. */
  managed_by?: string;
  client_secret?: string;
}
interface InitialAccessTokenJson {
  id: string;
  expires_at?: number;
  expiresAt?: number | string;
  created_at?: number;
  consumed?: boolean | number;
}

const PAGE = 50;
const GRANTS = [['authorization_code', 'Authorization code'], ['refresh_token', 'Refresh token'], ['client_credentials', 'Client credentials'], ['urn:ietf:params:oauth:grant-type:device_code', 'Device code']] as const;
const seg = AdminClient.segment;
const clientHref = (id: string) => `/admin/clients/view?${new URLSearchParams({ id })}`;
const notOffered = (err: unknown) => err instanceof AdminApiError && err.error === 'http_404';

function isPublic(c: ClientJson): boolean {
  return c.public ?? c.token_endpoint_auth_method === 'none';
}

function secretShown(secret: string, what: string): SafeHtml {
  return html`<div role="alert"><p>The ${what} is shown <strong>only now</strong>: fedgate keeps no copy it could show again.</p></div>
<p class="secret" data-copy="${what}" id="secret">${secret}</p>`;
}

export function clientSection(router: Router, kit: ConsoleKit): void {
  const listPage = async (ctx: Context, extra?: { error?: string; fields?: FormFields; status?: number }) => {
    const session = kit.session(ctx);
    const api = kit.api(ctx);
    const q = typeof ctx.query.q === 'string' ? ctx.query.q.trim().slice(0, 200) : '';
    const cursor = typeof ctx.query.cursor === 'string' ? ctx.query.cursor : undefined;
    const [clients, tokens] = await Promise.all([
      api.get<{ clients: ClientJson[]; next?: string | null }>('/clients', { q, limit: PAGE, cursor }).catch((err: unknown) => (notOffered(err) ? undefined : Promise.reject(err))),
      api.get<{ initial_access_tokens?: InitialAccessTokenJson[]; tokens?: InitialAccessTokenJson[] }>('/initial-access-tokens').catch((err: unknown) => (notOffered(err) ? undefined : Promise.reject(err))),
    ]);
    const f = extra?.fields ?? {};
    const tokenList = tokens?.initial_access_tokens ?? tokens?.tokens ?? [];
    const body = html`<h1>Clients</h1>
${clients ? html`<form method="get" action="/admin/clients" role="search" class="row">
<div><label for="q">Search clients</label><input id="q" name="q" type="search" value="${q}"></div>
<div class="narrow"><button type="submit">Search</button></div>
</form>
${clients.clients.length ? html`<div class="table"><table>
<thead><tr><th scope="col">Client</th><th scope="col">Type</th><th scope="col">Grant types</th><th scope="col">State</th></tr></thead>
<tbody>${clients.clients.slice(0, PAGE).map((c) => html`<tr><td><a href="${clientHref(c.client_id)}">${c.client_name ?? c.client_id}</a><br><code class="muted">${c.client_id}</code></td><td>${isPublic(c) ? 'public' : 'confidential'}</td><td>${(c.grant_types ?? []).join(', ')}</td><td>${c.disabled ? html`<span class="bad">disabled</span>` : 'active'}${c.configured ? ' (configuration file)' : c.managed_by ? ' (data source)' : ''}</td></tr>\n`)}</tbody>
</table></div>` : html`<p class="muted">No clients found.</p>`}
${pager('/admin/clients', { q, cursor }, clients.next)}
<h2 id="create-h">Create a client</h2>
<form method="post" action="/admin/clients/create" aria-labelledby="create-h">
${csrfField(session.csrf)}
${extra?.error && html`<div role="alert"><p>${extra.error}</p></div>`}
<div class="row">
<div><label for="c-name">Name</label><input id="c-name" name="client_name" value="${f.client_name ?? ''}" required></div>
<div><label for="c-id">Client id (optional: fedgate makes one)</label><input id="c-id" name="client_id" value="${f.client_id ?? ''}"></div>
</div>
<fieldset><legend>Type</legend>
<label class="check"><input type="radio" name="type" value="confidential"${f.type !== 'public' ? ' checked' : ''}> Confidential (a server that keeps a secret)</label>
<label class="check"><input type="radio" name="type" value="public"${f.type === 'public' ? ' checked' : ''}> Public (a browser or native app; PKCE, no secret)</label>
</fieldset>
<fieldset><legend>Grant types</legend>
${GRANTS.map(([v, l]) => html`<label class="check"><input type="checkbox" name="grant_types" value="${v}"${(f.grant_types ?? 'authorization_code').split(' ').includes(v) ? ' checked' : ''}> ${l}</label>`)}
</fieldset>
<label for="c-redirects">Redirect URIs, one per line</label>
<textarea id="c-redirects" name="redirect_uris" class="code" rows="3">${f.redirect_uris ?? ''}</textarea>
<label for="c-scope">Scopes (space-separated)</label>
<input id="c-scope" name="scope" value="${f.scope ?? 'openid profile email'}">
<button type="submit">Create client</button>
</form>` : html`<p class="muted">This fedgate's admin API does not manage clients; configured clients are in the configuration file.</p>`}
<h2>Initial access tokens</h2>
<p>An initial access token lets one client register itself (RFC 7591).</p>
${tokens && (tokenList.length ? html`<ul>${tokenList.map((t) => html`<li><code>${t.id}</code>, expires ${when(t.expires_at ?? t.expiresAt)}${t.consumed ? ' (used)' : ''}
<form class="inline" method="post" action="/admin/clients/iat/delete">${csrfField(session.csrf)}<input type="hidden" name="id" value="${t.id}"><button type="submit" class="secondary" aria-label="${`Withdraw initial access token ${t.id}`}">Withdraw</button></form></li>`)}</ul>` : html`<p class="muted">None outstanding.</p>`)}
<form method="post" action="/admin/clients/iat/create" class="row">
${csrfField(session.csrf)}
<div><label for="iat-ttl">Valid for (hours)</label><input id="iat-ttl" name="hours" type="number" min="1" max="720" value="24"></div>
<div class="narrow"><button type="submit">Issue an initial access token</button></div>
</form>`;
    await kit.render(ctx, { title: 'Clients', section: 'clients', body, status: extra?.status ?? 200 });
  };

  kit.page(router, '/clients', (ctx) => listPage(ctx), { adminOnly: true });

  kit.action(router, '/clients/create', async (ctx, fields) => {
    const grantTypes = allValues(ctx.request.body, 'grant_types');
    const record = {
      ...(fields.client_id?.trim() ? { client_id: fields.client_id.trim() } : {}),
      client_name: fields.client_name?.trim() ?? '',
      public: fields.type === 'public',
      redirect_uris: (fields.redirect_uris ?? '').split(/\s+/).filter(Boolean),
      grant_types: grantTypes,
      scope: fields.scope?.trim() ?? '',
    };
    try {
      const created = await kit.api(ctx).post<ClientJson>('/clients', record);
      const body = html`<h1>Client ${created.client_name ?? created.client_id} created</h1>
<dl class="facts"><dt>Client id</dt><dd><code data-copy="client id">${created.client_id}</code></dd><dt>Type</dt><dd>${isPublic(created) ? 'public' : 'confidential'}</dd></dl>
${created.client_secret ? secretShown(created.client_secret, 'client secret') : html`<p>A public client has no secret: it uses PKCE.</p>`}
<p><a href="${clientHref(created.client_id)}">The client's page</a> · <a href="/admin/clients">All clients</a></p>`;
      await kit.render(ctx, { title: 'Client created', section: 'clients', body, status: 201 });
    } catch (err) {
      if (!(err instanceof AdminApiError) || err.status !== 400) throw err;
      await listPage(ctx, { error: plainRefusal(err), fields: { ...fields, grant_types: grantTypes.join(' ') }, status: 400 });
    }
  }, { adminOnly: true });

  kit.page(router, '/clients/view', async (ctx) => {
    const id = String(ctx.query.id ?? '');
    const session = kit.session(ctx);
    const c = await kit.api(ctx).get<ClientJson>(`/clients/${seg(id)}`);
    const hidden = html`${csrfField(session.csrf)}<input type="hidden" name="id" value="${c.client_id}">`;
    const body = html`<h1>Client ${c.client_name ?? c.client_id}</h1>
<p><a href="/admin/clients">All clients</a></p>
<dl class="facts">
<dt>Client id</dt><dd><code>${c.client_id}</code></dd>
<dt>Type</dt><dd>${isPublic(c) ? 'public' : 'confidential'}</dd>
<dt>State</dt><dd>${c.disabled ? html`<strong class="bad">disabled</strong>` : 'active'}</dd>
<dt>Grant types</dt><dd>${(c.grant_types ?? []).join(', ')}</dd>
<dt>Redirect URIs</dt><dd>${(c.redirect_uris ?? []).map((u, i) => html`${i ? html`<br>` : ''}<code>${u}</code>`)}</dd>
<dt>Scopes</dt><dd><code>${c.scope ?? ''}</code></dd>
</dl>
${c.configured || c.managed_by ? html`<p class="muted">${c.configured ? 'This client comes from the configuration file: change it there.' : 'This is a data source\'s introspection client: rotate or remove it on the data source\'s page.'}</p>` : html`
<form method="post" action="/admin/clients/state">${hidden}<input type="hidden" name="disabled" value="${c.disabled ? 'false' : 'true'}">
<button type="submit"${c.disabled ? '' : html` class="danger"`}>${c.disabled ? 'Enable' : 'Disable'} ${c.client_id}</button></form>
${!isPublic(c) && html`<form method="post" action="/admin/clients/secret">${hidden}<button type="submit">Rotate the client secret</button></form>`}
<form method="post" action="/admin/clients/delete">${hidden}<button type="submit" class="danger">Delete ${c.client_id}</button></form>`}`;
    await kit.render(ctx, { title: `Client ${c.client_id}`, section: 'clients', body });
  }, { adminOnly: true });

  kit.action(router, '/clients/state', async (ctx, fields) => {
    const id = fields.id ?? '';
    const disabled = fields.disabled === 'true';
    try {
      await kit.api(ctx).patch(`/clients/${seg(id)}`, { disabled });
      await kit.done(ctx, clientHref(id), disabled ? `${id} is disabled: it gets no tokens.` : `${id} is enabled again.`);
    } catch (err) {
      await kit.refused(ctx, clientHref(id), err);
    }
  }, { adminOnly: true });

  kit.action(router, '/clients/secret', async (ctx, fields) => {
    const id = fields.id ?? '';
    try {
      const answer = await kit.api(ctx).post<{ client_secret: string }>(`/clients/${seg(id)}/secret`);
      const body = html`<h1>New secret for ${id}</h1><p>The previous secret no longer works.</p>${secretShown(answer.client_secret, 'client secret')}<p><a href="${clientHref(id)}">Back to ${id}</a></p>`;
      await kit.render(ctx, { title: `New secret for ${id}`, section: 'clients', body });
    } catch (err) {
      await kit.refused(ctx, clientHref(id), err);
    }
  }, { adminOnly: true });

  kit.action(router, '/clients/delete', async (ctx, fields) => {
    const id = fields.id ?? '';
    try {
      await kit.api(ctx).delete(`/clients/${seg(id)}`);
      await kit.done(ctx, '/admin/clients', `Client ${id} deleted.`);
    } catch (err) {
      await kit.refused(ctx, clientHref(id), err);
    }
  }, { adminOnly: true });

  kit.action(router, '/clients/iat/create', async (ctx, fields) => {
    const hours = Math.min(Math.max(Number.parseInt(fields.hours ?? '24', 10) || 24, 1), 720);
    try {
      const answer = await kit.api(ctx).post<{ initial_access_token: string; expires_at: number; registration_endpoint: string }>('/initial-access-tokens', { ttl: hours * 3600 });
      const body = html`<h1>Initial access token</h1>
<p>Valid until ${when(answer.expires_at)} for one registration at <code>${answer.registration_endpoint}</code>.</p>
${secretShown(answer.initial_access_token, 'initial access token')}
<p><a href="/admin/clients">Back to clients</a></p>`;
      await kit.render(ctx, { title: 'Initial access token', section: 'clients', body, status: 201 });
    } catch (err) {
      await kit.refused(ctx, '/admin/clients', err);
    }
  }, { adminOnly: true });

  kit.action(router, '/clients/iat/delete', async (ctx, fields) => {
    try {
      await kit.api(ctx).delete(`/initial-access-tokens/${seg(fields.id ?? '')}`);
      await kit.done(ctx, '/admin/clients', 'The initial access token was withdrawn.');
    } catch (err) {
      await kit.refused(ctx, '/admin/clients', err);
    }
  }, { adminOnly: true });
}
