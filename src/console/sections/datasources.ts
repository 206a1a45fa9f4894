/**
 * Data sources: the list, an onboarding wizard (three steps, state carried
 * in the form) that ends with the onboarding bundle and the reverse proxy
 * snippets (the introspection secret shown once), secret rotation, and
 * removal that first says what it will stop.
 */
import type Router from '@koa/router';
import type { Context } from 'koa';
import { html, type SafeHtml } from '../../views/html.ts';
import { AdminApiError, AdminClient, plainRefusal } from '../admin-client.ts';
import type { ConsoleKit, FormFields } from '../kit.ts';
import { csrfField, when } from '../layout.ts';

interface DataSourceJson {
  name: string;
  displayName?: string;
  kind?: string;
  audience: string;
  upstream?: string;
  authzHeaders?: string;
  storage?: { basePath: string };
  source?: string;
  readOnly?: boolean;
  introspectionClientId?: string;
  managedRules?: Array<Record<string, string>>;
  effective?: { scopes?: string[]; gatewayUrl?: string | null; authzUrl?: string; domain?: string };
  createdAt?: string;
  onboarding?: Bundle;
}

interface Bundle {
  name: string;
  audience: string;
  scopes: string[];
  issuer: string;
  jwks_uri: string;
  token_endpoint: string;
  introspection_endpoint: string;
  introspection: { client_id: string; client_secret?: string } | null;
  authz_endpoint: string;
  gateway_url: string | null;
  protected_resource_metadata: string[];
  policy_domain: string;
  policy_rules: Array<Record<string, string>>;
  snippets: { nginx: string; envoy: string; traefik: string; xrootd?: string };
}

const KINDS = ['storage', 'compute', 'ml', 'sync', 'other'];
const FORMS = [['nginx', 'nginx (auth_request)'], ['traefik', 'Traefik (forwardAuth)'], ['envoy', 'Envoy (ext_authz)']];
/** The wizard's fields, carried from step to step. */
const WIZARD_FIELDS = ['name', 'displayName', 'kind', 'audience', 'upstream', 'authzHeaders', 'basePath', 'policies', 'grants', 'introspection'] as const;
const seg = AdminClient.segment;

const dsHref = (name: string) => `/admin/datasources/view?${new URLSearchParams({ name })}`;

function ruleText(rule: Record<string, string>): string {
  return rule.type === 'p'
    ? `p, ${rule.subject}, ${rule.domain}, ${rule.object}, ${rule.action}, ${rule.effect}${rule.scope ? `, ${rule.scope}` : ''}`
    : Object.values(rule).join(', ');
}

/** The record the wizard's fields describe (the API validates it). */
function recordOf(f: FormFields): Record<string, unknown> {
  const lines = (text: string | undefined) => (text ?? '').split(/\r?\n/).map((l) => l.trim()).filter((l) => l && !l.startsWith('#')).map((l) => l.split(',').map((v) => v.trim()));
  const defaultPolicies = lines(f.policies).map(([group, path, action, scope]) => ({ group, path, action, ...(scope ? { scope } : {}) }));
  const scopeGrants = lines(f.grants).map(([group, scope]) => ({ group, scope }));
  return {
    name: f.name?.trim() ?? '',
    audience: f.audience?.trim() ?? '',
    ...(f.displayName?.trim() ? { displayName: f.displayName.trim() } : {}),
    kind: f.kind || 'other',
    ...(f.kind === 'storage' && f.basePath?.trim() ? { storage: { basePath: f.basePath.trim() } } : {}),
    ...(f.upstream?.trim() ? { upstream: f.upstream.trim() } : {}),
    authzHeaders: f.authzHeaders || 'nginx',
    defaultPolicies,
    scopeGrants,
    introspection: f.introspection === 'yes',
  };
}

function carried(fields: FormFields, except: readonly string[]): SafeHtml {
  return html`${WIZARD_FIELDS.filter((n) => !except.includes(n) && fields[n] !== undefined).map((n) => html`<input type="hidden" name="${n}" value="${fields[n]}">`)}`;
}

function snippets(bundle: Bundle): SafeHtml {
  const entries: Array<[string, string, string]> = [['nginx', 'nginx', bundle.snippets.nginx], ['envoy', 'Envoy', bundle.snippets.envoy], ['traefik', 'Traefik', bundle.snippets.traefik]];
  if (bundle.snippets.xrootd) entries.push(['xrootd', 'XRootD (scitokens.cfg)', bundle.snippets.xrootd]);
  return html`${entries.map(([id, label, text]) => html`<h3 id="${`snippet-${id}`}">${label}</h3><pre data-copy="${`${label} snippet`}" aria-labelledby="${`snippet-${id}`}" tabindex="0">${text}</pre>`)}`;
}

function bundleFacts(bundle: Bundle, secret?: string): SafeHtml {
  return html`<dl class="facts">
<dt>Issuer</dt><dd><code>${bundle.issuer}</code></dd>
<dt>Audience</dt><dd><code>${bundle.audience}</code></dd>
<dt>Scopes</dt><dd>${bundle.scopes.length ? html`<code>${bundle.scopes.join(' ')}</code>` : 'none'}</dd>
<dt>Keys (JWKS)</dt><dd><code>${bundle.jwks_uri}</code></dd>
<dt>Decision endpoint</dt><dd><code>${bundle.authz_endpoint}</code></dd>
<dt>Gateway route</dt><dd>${bundle.gateway_url ? html`<code>${bundle.gateway_url}</code>` : 'none (decisions at /authz only)'}</dd>
<dt>Policy domain</dt><dd><code>${bundle.policy_domain}</code></dd>
<dt>Introspection client</dt><dd>${bundle.introspection ? html`<code>${bundle.introspection.client_id}</code> at <code>${bundle.introspection_endpoint}</code>` : 'none (JWT access tokens)'}</dd>
</dl>
${secret && html`<h2>Introspection client secret</h2>
<div role="alert"><p>This secret is shown <strong>only now</strong>: fedgate keeps no copy it could show again. Store it with the service's configuration.</p></div>
<p class="secret" data-copy="introspection client secret" id="secret">${secret}</p>`}`;
}

export function dataSourceSection(router: Router, kit: ConsoleKit): void {
  kit.page(router, '/datasources', async (ctx) => {
    const { resource_servers: list } = await kit.api(ctx).get<{ resource_servers: DataSourceJson[] }>('/resource-servers');
    const body = html`<h1>Data sources</h1>
<p><a href="/admin/datasources/new">Onboard a data source</a></p>
<div class="table"><table>
<thead><tr><th scope="col">Name</th><th scope="col">Kind</th><th scope="col">Audience</th><th scope="col">Gateway route</th><th scope="col">Source</th></tr></thead>
<tbody>${list.map((ds) => html`<tr><td><a href="${dsHref(ds.name)}">${ds.displayName ?? ds.name}</a><br><code class="muted">${ds.name}</code></td><td>${ds.kind ?? ''}</td><td><code>${ds.audience}</code></td><td>${ds.effective?.gatewayUrl ? html`<code>${ds.effective.gatewayUrl}</code>` : html`<span class="muted">/authz only</span>`}</td><td>${ds.readOnly ? 'configuration file (read-only)' : 'onboarded'}</td></tr>\n`)}</tbody>
</table></div>`;
    await kit.render(ctx, { title: 'Data sources', section: 'datasources', body });
  }, { adminOnly: true });

  const wizard = async (ctx: Context, step: number, fields: FormFields, error?: string) => {
    const session = kit.session(ctx);
    const f = fields;
    const steps = ['The service', 'Who may use it', 'Review'];
    const progress = html`<ol class="row" aria-label="Steps">${steps.map((s, i) => html`<li${i + 1 === step ? html` aria-current="step"` : ''}>${i + 1 === step ? html`<strong>${s}</strong>` : s}</li>`)}</ol>`;
    let form: SafeHtml;
    if (step === 1) {
      form = html`<form method="post" action="/admin/datasources/new">
${csrfField(session.csrf)}${carried(f, ['name', 'displayName', 'kind', 'audience', 'upstream', 'authzHeaders', 'basePath'])}
<div class="row">
<div><label for="ds-name">Name (the /api/&lt;name&gt; route and policy domain)</label><input id="ds-name" name="name" value="${f.name ?? ''}" required pattern="[a-z0-9][a-z0-9-]{0,62}" placeholder="atlas-store"></div>
<div><label for="ds-display">Display name</label><input id="ds-display" name="displayName" value="${f.displayName ?? ''}" placeholder="ATLAS storage"></div>
</div>
<div class="row">
<div><label for="ds-kind">Kind</label><select id="ds-kind" name="kind">${KINDS.map((k) => html`<option value="${k}"${(f.kind ?? 'storage') === k ? ' selected' : ''}>${k}</option>`)}</select></div>
<div><label for="ds-audience">Audience (the resource indicator its tokens carry)</label><input id="ds-audience" name="audience" value="${f.audience ?? ''}" required placeholder="https://atlas-store.example.org"></div>
</div>
<div class="row">
<div><label for="ds-base">Storage base path (storage only)</label><input id="ds-base" name="basePath" value="${f.basePath ?? ''}" placeholder="/store/atlas"></div>
<div><label for="ds-upstream">Upstream URL (optional: fedgate proxies /api/&lt;name&gt; to it)</label><input id="ds-upstream" name="upstream" value="${f.upstream ?? ''}" placeholder="https://10.0.0.5:8443"></div>
</div>
<fieldset><legend>Its reverse proxy asks fedgate's /authz as</legend>
${FORMS.map(([v, l]) => html`<label class="check"><input type="radio" name="authzHeaders" value="${v}"${(f.authzHeaders ?? 'nginx') === v ? ' checked' : ''}> ${l}</label>`)}
</fieldset>
<button type="submit" name="step" value="2">Next: who may use it</button>
</form>`;
    } else if (step === 2) {
      form = html`<form method="post" action="/admin/datasources/new">
${csrfField(session.csrf)}${carried(f, ['policies', 'grants', 'introspection'])}
<label for="ds-policies">Access rules, one per line: group, path, action, required scope (optional)</label>
<textarea id="ds-policies" name="policies" class="code" rows="5" spellcheck="false" placeholder="/atlas, /store/atlas/**, read, storage.read">${f.policies ?? ''}</textarea>
<label for="ds-grants">Scope grants, one per line: group, scope</label>
<textarea id="ds-grants" name="grants" class="code" rows="4" spellcheck="false" placeholder="/atlas, storage.read:/store/atlas">${f.grants ?? ''}</textarea>
<label class="check"><input type="checkbox" name="introspection" value="yes"${f.introspection === 'yes' ? ' checked' : ''}> Give it an introspection client (opaque tokens, RFC 7662)</label>
<p><button type="submit" name="step" value="3">Next: review</button> <button type="submit" name="step" value="1" class="secondary">Back</button></p>
</form>`;
    } else {
      form = html`<p>fedgate will create this data source; it checks everything and refuses with reasons if something is wrong.</p>
<pre tabindex="0" aria-label="The data source record">${JSON.stringify(recordOf(f), null, 2)}</pre>
<form method="post" action="/admin/datasources/create">${csrfField(session.csrf)}${carried(f, [])}<button type="submit">Create data source</button></form>
<form method="post" action="/admin/datasources/new">${csrfField(session.csrf)}<input type="hidden" name="step" value="2">${carried(f, [])}<button type="submit" class="secondary">Back</button></form>`;
    }
    const body = html`<h1>Onboard a data source</h1>
${progress}
${error && html`<div role="alert"><p>${error}</p></div>`}
<h2>Step ${step}: ${steps[step - 1]}</h2>
${form}`;
    await kit.render(ctx, { title: 'Onboard a data source', section: 'datasources', body, status: error ? 400 : 200 });
  };

  kit.page(router, '/datasources/new', (ctx) => wizard(ctx, 1, {}), { adminOnly: true });
  kit.action(router, '/datasources/new', async (ctx, fields) => {
    const step = Math.min(Math.max(Number.parseInt(fields.step ?? '1', 10) || 1, 1), 3);
    await wizard(ctx, step, fields);
  }, { adminOnly: true });

  kit.action(router, '/datasources/create', async (ctx, fields) => {
    try {
      const answer = await kit.api(ctx).post<{ resource_server: DataSourceJson; onboarding: Bundle }>('/resource-servers', recordOf(fields));
      const bundle = answer.onboarding;
      const body = html`<h1>Data source ${answer.resource_server.displayName ?? bundle.name} is on board</h1>
<div class="notice" role="status"><p>Tokens for <code>${bundle.audience}</code> can be issued now, on every replica.</p></div>
<h2>Onboarding bundle</h2>
${bundleFacts(bundle, bundle.introspection?.client_secret)}
<h2>Reverse proxy snippets</h2>
<p>Each asks fedgate's decision endpoint before a request reaches the service.</p>
${snippets(bundle)}
<p><a href="${dsHref(bundle.name)}">The data source's page</a> · <a href="/admin/datasources">All data sources</a></p>`;
      await kit.render(ctx, { title: `Data source ${bundle.name}`, section: 'datasources', body, status: 201 });
    } catch (err) {
      if (!(err instanceof AdminApiError) || err.status >= 500 || err.status === 401 || err.status === 403) throw err;
      await wizard(ctx, 1, fields, plainRefusal(err));
    }
  }, { adminOnly: true });

  kit.page(router, '/datasources/view', async (ctx) => {
    const name = String(ctx.query.name ?? '');
    const ds = await kit.api(ctx).get<DataSourceJson>(`/resource-servers/${seg(name)}`);
    const session = kit.session(ctx);
    const bundle = ds.onboarding!;
    const body = html`<h1>${ds.displayName ?? ds.name}</h1>
<p><a href="/admin/datasources">All data sources</a>${ds.readOnly ? html` · <span class="badge">from the configuration file: read-only here</span>` : ''}${ds.createdAt ? html` · onboarded ${when(ds.createdAt)}` : ''}</p>
${bundleFacts(bundle)}
<h2>Policy rules it manages</h2>
${ds.managedRules?.length ? html`<ul>${ds.managedRules.map((r) => html`<li><code>${ruleText(r)}</code></li>`)}</ul>` : html`<p class="muted">None.</p>`}
<h2>Reverse proxy snippets</h2>
${snippets(bundle)}
${!ds.readOnly && html`${ds.introspectionClientId && html`<h2>Introspection secret</h2>
<form method="post" action="/admin/datasources/rotate">${csrfField(session.csrf)}<input type="hidden" name="name" value="${ds.name}">
<p>A new secret replaces the current one at once on every replica; the service must be given the new one.</p>
<button type="submit">Rotate the introspection secret</button></form>`}
<h2>Remove</h2>
<p><a href="${`/admin/datasources/remove?${new URLSearchParams({ name: ds.name })}`}">Remove this data source…</a></p>`}`;
    await kit.render(ctx, { title: `Data source ${ds.name}`, section: 'datasources', body });
  }, { adminOnly: true });

  kit.action(router, '/datasources/rotate', async (ctx, fields) => {
    const name = fields.name ?? '';
    try {
      const answer = await kit.api(ctx).post<{ client_id: string; client_secret: string }>(`/resource-servers/${seg(name)}/introspection-secret`);
      const body = html`<h1>New introspection secret for ${name}</h1>
<p>Client <code>${answer.client_id}</code>; the previous secret no longer works.</p>
<div role="alert"><p>This secret is shown <strong>only now</strong>.</p></div>
<p class="secret" data-copy="introspection client secret" id="secret">${answer.client_secret}</p>
<p><a href="${dsHref(name)}">Back to ${name}</a></p>`;
      await kit.render(ctx, { title: `New secret for ${name}`, section: 'datasources', body });
    } catch (err) {
      await kit.refused(ctx, dsHref(name), err);
    }
  }, { adminOnly: true });

  kit.page(router, '/datasources/remove', async (ctx) => {
    const name = String(ctx.query.name ?? '');
    const ds = await kit.api(ctx).get<DataSourceJson>(`/resource-servers/${seg(name)}`);
    const session = kit.session(ctx);
    const body = html`<h1>Remove ${ds.displayName ?? ds.name}?</h1>
<p>Removing it stops, on every replica at once:</p>
<ul>
<li>tokens for the audience <code>${ds.audience}</code>: fedgate no longer issues them, and its gateway no longer accepts them;</li>
<li>${ds.effective?.gatewayUrl ? html`the gateway route <code>${ds.effective.gatewayUrl}</code> (requests get 404)` : 'no gateway route (it has none)'};</li>
<li>decisions for its reverse proxy at <code>${ds.effective?.authzUrl ?? `/authz?service=${ds.name}`}</code> (refused);</li>
<li>${ds.managedRules?.length ? html`its ${ds.managedRules.length} policy rule(s): ${ds.managedRules.map((r, i) => html`${i ? '; ' : ''}<code>${ruleText(r)}</code>`)}` : 'no policy rules (it manages none)'};</li>
<li>${ds.introspectionClientId ? html`its introspection client <code>${ds.introspectionClientId}</code> (deleted)` : 'no introspection client (it has none)'}.</li>
</ul>
<form method="post" action="/admin/datasources/delete">${csrfField(session.csrf)}<input type="hidden" name="name" value="${ds.name}">
<button type="submit" class="danger">Remove ${ds.name}</button></form>
<p><a href="${dsHref(ds.name)}">Keep it</a></p>`;
    await kit.render(ctx, { title: `Remove ${ds.name}`, section: 'datasources', body });
  }, { adminOnly: true });

  kit.action(router, '/datasources/delete', async (ctx, fields) => {
    const name = fields.name ?? '';
    try {
      await kit.api(ctx).delete(`/resource-servers/${seg(name)}`);
      await kit.done(ctx, '/admin/datasources', `Data source ${name} removed.`);
    } catch (err) {
      await kit.refused(ctx, dsHref(name), err);
    }
  }, { adminOnly: true });
}
