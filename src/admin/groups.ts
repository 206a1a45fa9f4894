import Router from '@koa/router';
import type { Middleware } from 'koa';
import { z } from 'zod';
import { effectiveGroups, type Account, type Accounts } from '../accounts/accounts.ts';
import { GroupError, isWithinGroup, type Groups } from '../accounts/groups.ts';
import { PolicyValidationError, type PolicyService } from '../authz/policy-service.ts';
import type { Audit } from '../observability/audit.ts';
import { caller, fail, groupParam, parseBody } from './http.ts';
import { encodeCursor, pageRequest, queryText } from './pages.ts';
import { ruleFromJson, ruleJsonSchema, ruleToJson } from '../authz/rules-json.ts';

export interface GroupRoutesDeps {
  accounts: Accounts;
  groups: Groups;
  policy: PolicyService;
  audit: Audit;
  json: Middleware;
}

const STATUS: Record<GroupError['code'], number> = { invalid_path: 400, exists: 409, parent_missing: 400, not_found: 404, not_empty: 409 };
const ERROR: Record<GroupError['code'], string> = {
  invalid_path: 'invalid_request', exists: 'group_exists', parent_missing: 'invalid_request', not_found: 'not_found', not_empty: 'group_not_empty',
};

const memberView = (a: Account) => ({ id: a.id, username: a.username, name: a.name, disabled: a.disabled });

/** `/admin/api/groups`: the group registry, memberships and a group's rules. */
export function groupRoutes(deps: GroupRoutesDeps): Router {
  const { accounts, groups, policy, audit, json } = deps;
  const router = new Router();

  const handle = async (ctx: Parameters<Middleware>[0], work: () => Promise<void>) => {
    try {
      await work();
    } catch (err) {
      if (err instanceof GroupError) return fail(ctx, STATUS[err.code], ERROR[err.code], err.message);
      if (err instanceof PolicyValidationError) return fail(ctx, 400, 'invalid_request', err.message);
      throw err;
    }
  };
  const record = (ctx: Parameters<Middleware>[0], type: string, target: string, detail: Record<string, unknown>) =>
    audit.record({ type, actor: caller(ctx).actor, outcome: 'success', ip: ctx.ip, target, detail });

  router.get('/groups', async (ctx) => {
    const page = pageRequest(ctx);
    const parentText = queryText(ctx, 'parent', 300);
    if (!page || parentText === null) return;
    if (page.paged || parentText !== undefined) {
      // One page (the console's lists and tree): searched in the store, counts are counter reads.
      const parent = parentText === undefined ? undefined : groupParam(parentText === '/' ? '/' : parentText);
      if (parent !== undefined && parent !== '/' && !(await groups.exists(parent))) return fail(ctx, 404, 'not_found', `group ${parent} does not exist`);
      const { groups: found, next } = await groups.page({ q: page.q, parent, after: page.after, limit: page.limit });
      const [members, children, total] = await Promise.all([
        Promise.all(found.map((g) => accounts.memberCount(g.path))),
        Promise.all(found.map((g) => groups.childCount(g.path))),
        page.q ? undefined : parent === undefined ? groups.count() : groups.childCount(parent),
      ]);
      ctx.body = {
        groups: found.map((g, i) => ({ path: g.path, description: g.description, members: members[i], subgroups: children[i] })),
        next: encodeCursor(next),
        ...(total === undefined ? {} : { total }),
      };
      return;
    }
    const all = await groups.list();
    const counts = await Promise.all(all.map((g) => accounts.memberIds(g.path).then((ids) => ids.length)));
    ctx.body = { groups: all.map((g, i) => ({ path: g.path, description: g.description, members: counts[i] })) };
  });

  router.post('/groups', json, async (ctx) => {
    const body = parseBody(ctx, z.object({ path: z.string().min(2).max(300), description: z.string().max(500).optional() }).strict());
    if (!body) return;
    await handle(ctx, async () => {
      const group = await groups.create(body.path, body.description);
      await record(ctx, 'group.created', group.path, { before: null, after: group });
      ctx.status = 201;
      ctx.body = group;
    });
  });

  router.get('/groups/:group', async (ctx) => {
    const path = groupParam(ctx.params.group);
    const group = await groups.get(path);
    if (!group) return fail(ctx, 404, 'not_found', `group ${path} does not exist`);
    ctx.body = { ...group, subgroups: await groups.descendants(path), members: (await accounts.memberIds(path)).length };
  });

  router.patch('/groups/:group', json, async (ctx) => {
    const body = parseBody(ctx, z.object({ path: z.string().min(2).max(300).optional(), description: z.string().max(500).optional() }).strict());
    if (!body) return;
    const from = groupParam(ctx.params.group);
    await handle(ctx, async () => {
      const before = await groups.get(from);
      if (!before) throw new GroupError('not_found', `group ${from} does not exist`);
      let path = from;
      if (body.path && body.path !== from) {
        const renames = await groups.rename(from, body.path);
        // Rules follow the group: a rename is not a delete and re-create.
        const rules = await policy.renameSubjects(renames);
        path = body.path;
        await record(ctx, 'group.renamed', path, { before: { path: from }, after: { path }, renamed: renames, rules_updated: rules.added.length });
      }
      if (body.description !== undefined) {
        const updated = await groups.setDescription(path, body.description || undefined);
        await record(ctx, 'group.updated', path, { before: { description: before.description }, after: { description: updated.description } });
      }
      ctx.body = await groups.get(path);
    });
  });

  router.delete('/groups/:group', async (ctx) => {
    const path = groupParam(ctx.params.group);
    await handle(ctx, async () => {
      const before = await groups.get(path);
      if (!before) throw new GroupError('not_found', `group ${path} does not exist`);
      const rules = (await policy.list()).filter((l) => (l.ptype === 'p' && isWithinGroup(l.values[0]!, path))
        || (l.ptype === 'g' && (l.values[1] === path || l.values[0] === path)));
      if (rules.length) {
        throw new GroupError('not_empty', `group ${path} is named by ${rules.length} policy rule(s); remove them first (GET /admin/api/policies?subject=${path})`);
      }
      await groups.delete(path);
      await record(ctx, 'group.deleted', path, { before, after: null });
      ctx.status = 204;
    });
  });

  router.get('/groups/:group/members', async (ctx) => {
    const path = groupParam(ctx.params.group);
    const page = pageRequest(ctx);
    if (!page) return;
    if (!(await groups.exists(path))) return fail(ctx, 404, 'not_found', `group ${path} does not exist`);
    if (page.paged) {
      const effective = ctx.query.effective === 'true';
      const [{ accounts: found, next }, total] = await Promise.all([
        accounts.memberPage(path, effective, { q: page.q, after: page.after, limit: page.limit }),
        page.q ? undefined : accounts.memberCount(path, effective),
      ]);
      ctx.body = { group: path, members: found.map(memberView), next: encodeCursor(next), ...(total === undefined ? {} : { total }) };
      return;
    }
    // ?effective=true also lists members of subgroups (who the group's rules apply to).
    const paths = ctx.query.effective === 'true' ? [path, ...(await groups.descendants(path))] : [path];
    const ids = [...new Set((await Promise.all(paths.map((p) => accounts.memberIds(p)))).flat())];
    const members = (await Promise.all(ids.map((id) => accounts.findById(id)))).filter((a): a is Account => a !== undefined);
    ctx.body = { group: path, members: members.sort((a, b) => a.username.localeCompare(b.username)).map(memberView) };
  });

  const membership = (add: boolean): Middleware => async (ctx) => {
    const path = groupParam(ctx.params.group);
    const account = await accounts.findByUsername(ctx.params.username!);
    if (!account) return fail(ctx, 404, 'not_found', `user ${ctx.params.username} does not exist`);
    await handle(ctx, async () => {
      const before = effectiveGroups(account.groups);
      if (add) await groups.addMember(path, account.id);
      else if (!(await groups.removeMember(path, account.id))) throw new GroupError('not_found', `${account.username} is not a direct member of ${path}`);
      const after = (await accounts.findById(account.id))!;
      await record(ctx, add ? 'group.member.added' : 'group.member.removed', path, {
        account: account.id, username: account.username, before: { groups: account.groups, effective_groups: before }, after: { groups: after.groups },
      });
      ctx.body = { group: path, username: account.username, groups: after.groups, effective_groups: effectiveGroups(after.groups) };
    });
  };
  router.put('/groups/:group/members/:username', membership(true));
  router.delete('/groups/:group/members/:username', membership(false));

  router.get('/groups/:group/policies', async (ctx) => {
    const path = groupParam(ctx.params.group);
    if (!(await groups.exists(path))) return fail(ctx, 404, 'not_found', `group ${path} does not exist`);
    ctx.body = { subject: path, rules: (await policy.list({ ptype: 'p', subject: path })).map(ruleToJson) };
  });

  router.put('/groups/:group/policies', json, async (ctx) => {
    const path = groupParam(ctx.params.group);
    if (!(await groups.exists(path))) return fail(ctx, 404, 'not_found', `group ${path} does not exist`);
    const body = parseBody(ctx, z.object({ rules: z.array(ruleJsonSchema).max(10_000) }).strict());
    if (!body) return;
    await handle(ctx, async () => {
      const before = await policy.list({ ptype: 'p', subject: path });
      const lines = body.rules.map((r) => ruleFromJson(r, path));
      const diff = await policy.replaceSubject(path, lines);
      await record(ctx, 'policy.changed', path, {
        action: 'replace_subject', before: before.map(ruleToJson), after: lines.map(ruleToJson),
        added: diff.added.map(ruleToJson), removed: diff.removed.map(ruleToJson),
      });
      ctx.body = { subject: path, rules: (await policy.list({ ptype: 'p', subject: path })).map(ruleToJson), added: diff.added.length, removed: diff.removed.length };
    });
  });

  return router;
}
