/**
 * Policies: a group's rules across domains, an editor whose problems come
 * from the admin API line by line, "what if" (the API's decision with its
 * deciding rule), and CSV import and export.
 */
import type Router from '@koa/router';
import type { Context } from 'koa';
import { html, type SafeHtml } from '../../views/html.ts';
import { AdminApiError, AdminClient, plainRefusal } from '../admin-client.ts';
import type { ConsoleKit, FormFields } from '../kit.ts';
import { csrfField } from '../layout.ts';
import { groupHref, groupPath } from './groups.ts';

interface RuleJson {
  type: string;
  subject?: string;
  domain?: string;
  object?: string;
  action?: string;
  effect?: string;
  scope?: string;
  member?: string;
  group?: string;
  method?: string;
  operation?: string;
}

/** The policy domains of fedgate: the gateway's services (those of the demo realm and any onboarded), exchange and scopes. */
const USUAL_DOMAINS = ['orchestrator', 'data', 'ml', 'sync', 'exchange', 'exchange-by', 'scopes'];
const MAX_EDITOR_LINES = 2000;
const seg = AdminClient.segment;

/** A rule of a group as one editor line: `domain, object, action, effect, scope`. */
function editorLine(rule: RuleJson): string {
  return [rule.domain, rule.object, rule.action, rule.effect, rule.scope].map((v) => v ?? '').join(', ').replace(/, $/, '');
}

/**
 * Editor lines back to the API's rule objects. Only the shape is read here
 * (four or five comma-separated values); what they mean is the API's to
 * judge. Blank lines and `#` comments are skipped; `lines[i]` is the editor
 * line of rule i.
 */
function parseEditor(text: string): { rules: RuleJson[]; lines: number[]; problems: Map<number, string> } {
  const rules: RuleJson[] = [];
  const lines: number[] = [];
  const problems = new Map<number, string>();
  text.split(/\r?\n/).slice(0, MAX_EDITOR_LINES).forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith('#')) return;
    const values = line.split(',').map((v) => v.trim());
    if (values.length < 4 || values.length > 5) {
      problems.set(i + 1, `expected 4 or 5 values (domain, object, action, effect[, scope]), found ${values.length}`);
      return;
    }
    const [domain, object, action, effect, scope] = values as [string, string, string, string, string | undefined];
    rules.push({ type: 'p', domain, object, action, effect, scope: scope ?? '' });
    lines.push(i + 1);
  });
  return { rules, lines, problems };
}

/** The API's problems (`rule 3 (...): reason`, or `rules.2.effect: ...`) on the editor lines they are about. */
function problemsByLine(err: AdminApiError, lines: number[]): { byLine: Map<number, string[]>; other: string[] } {
  const byLine = new Map<number, string[]>();
  const other: string[] = [];
  for (const problem of err.message.split('; ')) {
    const m = /^rule (\d+) \([^)]*\): (.*)$/s.exec(problem) ?? /^rules\.(\d+)(?:\.\w+)?: (.*)$/s.exec(problem);
    const index = m ? Number(m[1]) - (problem.startsWith('rules.') ? 0 : 1) : -1;
    const line = lines[index];
    if (m && line !== undefined) byLine.set(line, [...(byLine.get(line) ?? []), m[2]!]);
    else other.push(problem);
  }
  return { byLine, other };
}

function rulesByDomain(rules: RuleJson[]): SafeHtml {
  if (!rules.length) return html`<p class="muted">This group has no rules of its own.</p>`;
  const domains = [...new Set(rules.map((r) => r.domain ?? ''))].sort();
  return html`${domains.map((d) => html`<h3>Domain <code>${d}</code></h3>
<div class="table"><table>
<thead><tr><th scope="col">Object</th><th scope="col">Action</th><th scope="col">Effect</th><th scope="col">Required scope</th></tr></thead>
<tbody>${rules.filter((r) => r.domain === d).map((r) => html`<tr><td><code>${r.object}</code></td><td><code>${r.action}</code></td><td>${r.effect === 'deny' ? html`<strong class="bad">deny</strong>` : 'allow'}</td><td>${r.scope ? html`<code>${r.scope}</code>` : ''}</td></tr>`)}</tbody>
</table></div>`)}`;
}

interface EvaluateAnswer {
  allowed: boolean;
  request: { subject: string; groups: string[]; domain: string; object: string; action: string; scopes: string[] };
  explanation?: { outcome: string; rule?: RuleJson; missingScopes?: string[]; principals?: string[] };
}

function ruleText(rule: RuleJson): string {
  if (rule.type === 'p') return `p, ${rule.subject}, ${rule.domain}, ${rule.object}, ${rule.action}, ${rule.effect}${rule.scope ? `, ${rule.scope}` : ''}`;
  return Object.values(rule).join(', ');
}

function decision(answer: EvaluateAnswer): SafeHtml {
  const e = answer.explanation;
  const outcome = e?.outcome === 'deny' ? 'a deny rule matched' : e?.outcome === 'no_match' ? 'no rule matched, so the default is to deny' : 'an allow rule matched and no deny rule did';
  return html`<section aria-labelledby="decision-h" class="card">
<h3 id="decision-h">${answer.allowed ? 'Allowed' : 'Denied'}</h3>
<p><strong>${answer.request.subject}</strong> ${answer.request.action} <code>${answer.request.object}</code> in <code>${answer.request.domain}</code>${answer.request.scopes.length ? html` with scopes <code>${answer.request.scopes.join(' ')}</code>` : ''}: ${outcome}.</p>
${e?.rule ? html`<p>Deciding rule: <code>${ruleText(e.rule)}</code></p>` : ''}
${e?.missingScopes?.length ? html`<p>An allow rule needs one of these scopes: <code>${e.missingScopes.join(' ')}</code>.</p>` : ''}
${e?.principals?.length ? html`<p class="muted">Checked as: ${e.principals.join(', ')}</p>` : ''}
</section>`;
}

interface PolicyPageState {
  group: string;
  editor?: string;
  editorProblems?: { byLine: Map<number, string[]>; other: string[] };
  evaluate?: FormFields;
  answer?: EvaluateAnswer;
  evaluateError?: string;
  importError?: string;
  importText?: string;
}

export function policySection(router: Router, kit: ConsoleKit): void {
  const render = async (ctx: Context, state: PolicyPageState, status = 200) => {
    const session = kit.session(ctx);
    const { group } = state;
    let rules: RuleJson[] = [];
    if (group) rules = (await kit.api(ctx).get<{ rules: RuleJson[] }>(`/groups/${seg(group)}/policies`)).rules;
    const editor = state.editor ?? rules.map(editorLine).join('\n');
    const problems = state.editorProblems;
    const problemLines = problems ? [...problems.byLine.entries()].sort((a, b) => a[0] - b[0]) : [];
    const ev = state.evaluate ?? {};
    const domains = [...new Set([...USUAL_DOMAINS, ...rules.map((r) => r.domain ?? '')])].filter(Boolean);
    const body = html`<h1>Policies</h1>
<form method="get" action="/admin/policies" class="row">
<div><label for="group">Group</label><input id="group" name="group" value="${group}" placeholder="/atlas" required></div>
<div class="narrow"><button type="submit">Show rules</button></div>
</form>
${group && html`<h2>Rules of <a href="${groupHref(group)}"><code>${group}</code></a></h2>
${rulesByDomain(rules)}
<h2 id="editor-h">Edit the rules of ${group}</h2>
<form method="post" action="/admin/policies/save" aria-labelledby="editor-h">
${csrfField(session.csrf)}<input type="hidden" name="group" value="${group}">
${problems && html`<div role="alert" id="editor-problems"><p>fedgate refused these rules; nothing was changed.</p><ul>
${problemLines.map(([line, list]) => html`<li>Line ${line}: ${list.join('; ')}</li>`)}${problems.other.map((p) => html`<li>${p}</li>`)}
</ul></div>`}
<label for="rules">One rule per line: domain, object, action, effect, required scope (optional)</label>
<textarea id="rules" name="rules" class="code" rows="${Math.min(Math.max(editor.split('\n').length + 2, 6), 30)}" spellcheck="false"${problems ? html` aria-describedby="editor-problems" aria-invalid="true"` : ''}>${editor}</textarea>
<p class="muted">For example <code>data, /store/atlas/**, read, allow, storage.read</code> or <code>scopes, https://storage.demo, storage.read:/store/atlas, allow</code>. Domains: ${domains.join(', ')}.</p>
<button type="submit">Save rules</button>
</form>`}
<h2 id="whatif-h">What if…</h2>
<p>Ask fedgate's policy decision point what it would decide now; nothing changes.</p>
<form method="post" action="/admin/policies/evaluate" aria-labelledby="whatif-h">
${csrfField(session.csrf)}<input type="hidden" name="group" value="${group}">
${state.evaluateError && html`<div role="alert"><p>${state.evaluateError}</p></div>`}
<fieldset><legend>Who</legend>
<div class="row">
<div><label for="ev-kind">Subject kind</label><select id="ev-kind" name="kind">
${[['user', 'A user (with their groups)'], ['group', 'A member of a group'], ['client', 'A client']].map(([v, l]) => html`<option value="${v}"${(ev.kind ?? 'user') === v ? ' selected' : ''}>${l}</option>`)}
</select></div>
<div><label for="ev-subject">Username, group or client id</label><input id="ev-subject" name="subject" value="${ev.subject ?? ''}" required></div>
</div></fieldset>
<div class="row">
<div><label for="ev-domain">Service (domain)</label><input id="ev-domain" name="domain" list="domains" value="${ev.domain ?? 'data'}" required>
<datalist id="domains">${domains.map((d) => html`<option value="${d}"></option>`)}</datalist></div>
<div><label for="ev-action">Method or operation</label><input id="ev-action" name="action" value="${ev.action ?? 'GET'}" required></div>
</div>
<div class="row">
<div><label for="ev-object">Path (or audience, for scopes and exchange)</label><input id="ev-object" name="object" value="${ev.object ?? '/'}" required></div>
<div><label for="ev-scopes">Token scopes (space-separated, optional)</label><input id="ev-scopes" name="scopes" value="${ev.scopes ?? ''}"></div>
</div>
<button type="submit">Evaluate</button>
</form>
${state.answer && decision(state.answer)}
<h2>Export and import (CSV)</h2>
<p><a href="/admin/policies/export.csv" download>Download the whole policy as CSV</a>${group ? html` · <a href="${`/admin/policies/export.csv?${new URLSearchParams({ subject: group })}`}" download>only ${group}'s rules</a>` : ''}</p>
<form method="post" action="/admin/policies/import">
${csrfField(session.csrf)}<input type="hidden" name="group" value="${group}">
${state.importError && html`<div role="alert" id="import-problems"><p>${state.importError}</p></div>`}
<label for="csv">Policy CSV (<code>p, /atlas, data, /store/atlas/**, read, allow, storage.read</code> lines)</label>
<textarea id="csv" name="csv" class="code" rows="6" spellcheck="false" required>${state.importText ?? ''}</textarea>
<fieldset><legend>How</legend>
<label class="check"><input type="radio" name="mode" value="merge" checked> Add these rules to the policy</label>
<label class="check"><input type="radio" name="mode" value="replace"> Replace the whole policy with these rules</label>
</fieldset>
<button type="submit">Import</button>
</form>`;
    await kit.render(ctx, { title: group ? `Policies of ${group}` : 'Policies', section: 'policies', body, status });
  };

  kit.page(router, '/policies', async (ctx) => {
    await render(ctx, { group: groupPath(ctx.query.group) });
  }, { adminOnly: true });

  kit.action(router, '/policies/save', async (ctx, fields) => {
    const group = groupPath(fields.group);
    const text = fields.rules ?? '';
    const parsed = parseEditor(text);
    const byLine = new Map([...parsed.problems.entries()].map(([line, p]) => [line, [p]]));
    if (byLine.size) return render(ctx, { group, editor: text, editorProblems: { byLine, other: [] } }, 400);
    try {
      const answer = await kit.api(ctx).put<{ added: number; removed: number }>(`/groups/${seg(group)}/policies`, { rules: parsed.rules });
      await kit.done(ctx, `/admin/policies?${new URLSearchParams({ group })}`, `Rules of ${group} saved: ${answer.added} added, ${answer.removed} removed.`);
    } catch (err) {
      if (!(err instanceof AdminApiError) || err.status !== 400) throw err;
      await render(ctx, { group, editor: text, editorProblems: problemsByLine(err, parsed.lines) }, 400);
    }
  }, { adminOnly: true });

  kit.action(router, '/policies/evaluate', async (ctx, fields) => {
    const group = groupPath(fields.group);
    const subject = (fields.subject ?? '').trim();
    const who = fields.kind === 'group' ? { subject: groupPath(subject) } : fields.kind === 'client' ? { client_id: subject } : { username: subject };
    const scopes = (fields.scopes ?? '').split(/\s+/).filter(Boolean);
    try {
      const answer = await kit.api(ctx).post<EvaluateAnswer>('/policies/evaluate', {
        ...who, domain: (fields.domain ?? '').trim(), object: (fields.object ?? '').trim(), action: (fields.action ?? '').trim(), ...(scopes.length ? { scopes } : {}),
      });
      await render(ctx, { group, evaluate: fields, answer });
    } catch (err) {
      if (!(err instanceof AdminApiError) || err.status !== 400) throw err;
      await render(ctx, { group, evaluate: fields, evaluateError: plainRefusal(err) }, 400);
    }
  }, { adminOnly: true });

  kit.page(router, '/policies/export.csv', async (ctx) => {
    const subject = typeof ctx.query.subject === 'string' ? ctx.query.subject : undefined;
    const csv = await kit.api(ctx).call<string>('GET', '/policies/export', { query: { subject }, csv: true });
    ctx.set('Cache-Control', 'no-store');
    ctx.set('Content-Disposition', 'attachment; filename="fedgate-policy.csv"');
    ctx.type = 'text/csv; charset=utf-8';
    ctx.body = csv;
  }, { adminOnly: true });

  kit.action(router, '/policies/import', async (ctx, fields) => {
    const group = groupPath(fields.group);
    const mode = fields.mode === 'replace' ? 'replace' : 'merge';
    try {
      const answer = await kit.api(ctx).call<{ added: unknown[]; removed: unknown[] }>('POST', '/policies/import', { query: { mode }, text: fields.csv ?? '' });
      await kit.done(ctx, `/admin/policies${group ? `?${new URLSearchParams({ group })}` : ''}`, `Policy imported (${mode}): ${answer.added.length} rules added, ${answer.removed.length} removed.`);
    } catch (err) {
      if (!(err instanceof AdminApiError) || err.status !== 400) throw err;
      await render(ctx, { group, importError: plainRefusal(err), importText: fields.csv ?? '' }, 400);
    }
  }, { adminOnly: true });
}
