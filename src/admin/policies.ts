import Router from '@koa/router';
import type { Context, Middleware } from 'koa';
import { z } from 'zod';
import { effectiveGroups, type Accounts } from '../accounts/accounts.ts';
import { PolicyBusyError, PolicyValidationError, type PolicyDiff, type PolicyService } from '../authz/policy-service.ts';
import type { PolicyLine } from '../authz/types.ts';
import type { Audit } from '../observability/audit.ts';
import { caller, fail, parseBody } from './http.ts';
import { ruleFromJson, ruleJsonSchema, ruleToJson } from '../authz/rules-json.ts';

export interface PolicyRoutesDeps {
  accounts: Accounts;
  policy: PolicyService;
  audit: Audit;
  json: Middleware;
  csv: Middleware;
}

const rulesBody = z.object({ rules: z.array(ruleJsonSchema).min(1).max(10_000) }).strict();

const evaluateBody = z.object({
  /** `user:<name>`, `client:<id>` or a group path; or give `username` / `client_id`. */
  subject: z.string().min(1).max(300).optional(),
  username: z.string().min(1).max(100).optional(),
  client_id: z.string().min(1).max(200).optional(),
  /** Extra direct groups (for a subject that is not an account). */
  groups: z.array(z.string()).max(1000).optional(),
  domain: z.string().min(1).max(100),
  object: z.string().min(1).max(2000),
  action: z.string().min(1).max(300),
  scopes: z.array(z.string().max(300)).max(200).optional(),
}).strict().refine((b) => [b.subject, b.username, b.client_id].filter(Boolean).length === 1, 'give exactly one of subject, username, client_id');

/** `/admin/api/policies`: list, add, remove, replace a subject's rules, import/export CSV, evaluate with explain. */
export function policyRoutes(deps: PolicyRoutesDeps): Router {
  const { accounts, policy, audit, json, csv } = deps;
  const router = new Router();

  const change = async (ctx: Context, action: string, target: string, work: () => Promise<PolicyDiff>, extra: Record<string, unknown> = {}) => {
    try {
      const diff = await work();
      await audit.record({
        type: 'policy.changed', actor: caller(ctx).actor, outcome: 'success', ip: ctx.ip, target,
        detail: { action, ...extra, added: diff.added.map(ruleToJson), removed: diff.removed.map(ruleToJson) },
      });
      ctx.body = { added: diff.added.map(ruleToJson), removed: diff.removed.map(ruleToJson), version: await policy.storedVersion() };
    } catch (err) {
      if (err instanceof PolicyValidationError) {
        await audit.record({ type: 'policy.changed', actor: caller(ctx).actor, outcome: 'failure', ip: ctx.ip, target, detail: { action, problems: err.problems.slice(0, 20) } });
        return fail(ctx, 400, 'invalid_request', err.message);
      }
      if (err instanceof PolicyBusyError) return fail(ctx, 503, 'temporarily_unavailable', err.message);
      throw err;
    }
  };

  const filterOf = (ctx: Context) => {
    const q = ctx.query;
    const str = (v: unknown) => (typeof v === 'string' && v ? v : undefined);
    const ptype = str(q.type);
    return {
      ...(ptype === 'p' || ptype === 'g' || ptype === 'g2' ? { ptype } : {}),
      ...(str(q.subject) ? { subject: str(q.subject)! } : {}),
      ...(str(q.domain) ? { domain: str(q.domain)! } : {}),
    } as Parameters<PolicyService['list']>[0];
  };

  const exportCsv = async (ctx: Context) => {
    ctx.type = 'text/csv; charset=utf-8';
    ctx.set('Content-Disposition', 'attachment; filename="fedgate-policy.csv"');
    ctx.body = await policy.exportCsv(filterOf(ctx));
  };

  router.get('/policies', async (ctx) => {
    if (ctx.accepts('json', 'text/csv') === 'text/csv') return exportCsv(ctx);
    const [version, rules] = await Promise.all([policy.storedVersion(), policy.list(filterOf(ctx))]);
    ctx.body = { version, rules: rules.map(ruleToJson) };
  });
  router.get('/policies/export', exportCsv);

  router.post('/policies', json, async (ctx) => {
    const body = parseBody(ctx, rulesBody);
    if (!body) return;
    const lines = body.rules.map((r) => ruleFromJson(r));
    await change(ctx, 'add', 'policy', () => policy.add(lines));
    if (ctx.status === 200) ctx.status = 201;
  });

  router.delete('/policies', json, async (ctx) => {
    const body = parseBody(ctx, rulesBody);
    if (!body) return;
    const lines = body.rules.map((r) => ruleFromJson(r));
    await change(ctx, 'remove', 'policy', () => policy.remove(lines));
  });

  // Any subject's rules, replaced at once: PUT /policies/subjects/user%3Abob
  router.put('/policies/subjects/:subject', json, async (ctx) => {
    const subject = ctx.params.subject!;
    const body = parseBody(ctx, z.object({ rules: z.array(ruleJsonSchema).max(10_000) }).strict());
    if (!body) return;
    const lines = body.rules.map((r) => ruleFromJson(r, subject));
    const before = await policy.list({ ptype: 'p', subject });
    await change(ctx, 'replace_subject', subject, () => policy.replaceSubject(subject, lines), { before: before.map(ruleToJson), after: lines.map(ruleToJson) });
  });

  router.post('/policies/import', csv, async (ctx) => {
    const mode = ctx.query.mode === 'replace' ? 'replace' : ctx.query.mode === undefined || ctx.query.mode === 'merge' ? 'merge' : undefined;
    if (!mode) return fail(ctx, 400, 'invalid_request', 'mode must be merge or replace');
    const text = ctx.request.body;
    if (typeof text !== 'string' || !ctx.is('text/csv', 'text/plain')) return fail(ctx, 400, 'invalid_request', 'send the policy as text/csv');
    await change(ctx, `import_${mode}`, 'policy', () => policy.importCsv(text, mode));
  });

  router.post('/policies/evaluate', json, async (ctx) => {
    const body = parseBody(ctx, evaluateBody);
    if (!body) return;
    let subject = body.subject;
    let groups = body.groups ?? [];
    if (body.username) {
      const account = await accounts.findByUsername(body.username);
      if (!account) return fail(ctx, 400, 'invalid_request', `user ${body.username} does not exist`);
      subject = `user:${account.username}`;
      groups = [...groups, ...effectiveGroups(account.groups)];
    } else if (body.client_id) {
      subject = `client:${body.client_id}`;
    } else if (subject?.startsWith('user:')) {
      const account = await accounts.findByUsername(subject.slice(5));
      if (account) groups = [...groups, ...effectiveGroups(account.groups)];
    }
    if (!policy.domains().has(body.domain)) return fail(ctx, 400, 'invalid_request', `unknown domain ${body.domain} (known: ${[...policy.domains()].join(', ')})`);
    const request = { subject: subject!, groups, domain: body.domain, object: body.object, action: body.action, scopes: body.scopes ?? [] };
    // Nothing changes: this is the decision the gateway would make now.
    const decision = policy.explain(request);
    const rule = decision.explanation?.rule;
    ctx.body = {
      allowed: decision.allowed,
      request,
      explanation: decision.explanation ? { ...decision.explanation, ...(rule ? { rule: ruleToJson(rule as PolicyLine) } : {}) } : undefined,
    };
  });

  return router;
}
