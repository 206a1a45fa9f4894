import Router from '@koa/router';
import type { Context, Middleware } from 'koa';
import { z } from 'zod';
import type { Account, Accounts } from '../accounts/accounts.ts';
import { GroupError, isWithinGroup, managesGroup, type Groups } from '../accounts/groups.ts';
import {
  REQUEST_STATUSES, RequestError, type MembershipRequest, type MembershipRequests, type RegistrationRequest,
  type RegistrationRequests, type RequestRecord, type RequestStatus,
} from '../accounts/requests.ts';
import { AccountError } from '../accounts/accounts.ts';
import type { Audit } from '../observability/audit.ts';
import { caller, fail, groupParam, parseBody } from './http.ts';
import { encodeCursor, pageRequest, queryText } from './pages.ts';

export interface MemberRoutesDeps {
  accounts: Accounts;
  groups: Groups;
  audit: Audit;
  requests: MembershipRequests;
  registrations: RegistrationRequests;
  json: Middleware;
}

/**
 * What a group manager (not an administrator) may call: the group a route
 * touches, which must lie within a group they manage, or `own` for routes
 * that narrow their answer to the caller's groups themselves. Undefined:
 * administrators only. (INDIGO IAM's group managers: they decide
 * membership requests and manage members of their groups, nothing else.)
 */
export function managerRoute(method: string, path: string): { group: string } | 'own' | undefined {
  const segments = path.split('/').filter(Boolean);
  let decoded: string[];
  try {
    decoded = segments.map((s) => decodeURIComponent(s));
  } catch {
    return undefined;
  }
  const [first, group, sub, member, extra] = decoded;
  if (method === 'GET' && decoded.length === 1 && (first === 'me' || first === 'requests')) return 'own';
  if (method === 'POST' && first === 'requests' && decoded.length === 3 && (sub === 'approve' || sub === 'reject')) return 'own';
  if (first !== 'groups' || group === undefined || extra !== undefined) return undefined;
  const target = { group: groupParam(group) };
  if (method === 'GET' && sub === undefined) return target;
  if (method === 'GET' && (sub === 'members' || sub === 'managers') && member === undefined) return target;
  if ((method === 'PUT' || method === 'DELETE') && sub === 'members' && member !== undefined) return target;
  return undefined;
}

const iso = (seconds: number | undefined) => (seconds === undefined ? undefined : new Date(seconds * 1000).toISOString());

const decided = (r: RequestRecord) => ({
  status: r.status,
  reason: r.reason,
  createdAt: iso(r.createdAt),
  ...(r.decidedAt !== undefined ? { decidedAt: iso(r.decidedAt), decidedBy: r.decidedBy } : {}),
  ...(r.decisionReason ? { decisionReason: r.decisionReason } : {}),
});

/** A membership request on the wire. */
export const requestView = (r: MembershipRequest) => ({ id: r.id, username: r.username, group: r.group, ...decided(r) });

/** A registration on the wire (never its password hash). */
const registrationView = (r: RegistrationRequest) => ({
  id: r.id, username: r.username, name: r.name, email: r.email,
  ...(r.identity ? { identity: r.identity } : {}), ...(r.accountId ? { accountId: r.accountId } : {}), ...decided(r),
});

const personView = (a: Account) => ({ id: a.id, username: a.username, name: a.name });

/**
 * One page of `items` (newest first, as the books list them) after the
 * position `after` (`<createdAt> <id>` of the last item of the previous
 * page), so pages stay stable while requests are added or decided.
 */
function page<T extends RequestRecord>(items: readonly T[], limit: number, after: string | undefined): { items: T[]; next: string | null } {
  let start = 0;
  if (after) {
    const [createdAt, id = ''] = after.split(' ');
    const at = Number(createdAt);
    start = items.findIndex((r) => r.createdAt < at || (r.createdAt === at && r.id.localeCompare(id) > 0));
    if (start < 0) start = items.length;
  }
  const shown = items.slice(start, start + limit);
  const last = shown.at(-1);
  return { items: shown, next: encodeCursor(last && start + limit < items.length ? `${last.createdAt} ${last.id}` : undefined) };
}

/**
 * `/admin/api`: group managers, membership requests, self-registrations and
 * `/me`. The router in routes.ts has admitted the caller and, for a group
 * manager, checked the group a route names ({@link managerRoute}); routes
 * marked `own` narrow to the caller's groups here.
 */
export function memberRoutes(deps: MemberRoutesDeps): Router {
  const { accounts, groups, audit, requests, registrations, json } = deps;
  const router = new Router();

  const record = (ctx: Context, type: string, target: string, detail: Record<string, unknown>) =>
    audit.record({ type, actor: caller(ctx).actor, outcome: 'success', ip: ctx.ip, target, detail });
  const mayManage = (ctx: Context, group: string) => caller(ctx).admin || managesGroup(caller(ctx).manages, group);
  /** `status`, `group` and the page (`q`, `limit`, `cursor`) of a list request, or undefined after answering 400. */
  const query = (ctx: Context) => {
    const paging = pageRequest(ctx);
    const status = queryText(ctx, 'status') ?? 'pending';
    const group = queryText(ctx, 'group', 300);
    if (!paging || status === null || group === null) return undefined;
    if (!REQUEST_STATUSES.includes(status as RequestStatus)) {
      fail(ctx, 400, 'invalid_request', `status must be one of ${REQUEST_STATUSES.join(', ')}`);
      return undefined;
    }
    return { ...paging, status: status as RequestStatus, group: group ? groupParam(group) : undefined };
  };
  const requestFailure = (ctx: Context, err: unknown) => {
    if (err instanceof RequestError) return fail(ctx, err.code === 'not_found' ? 404 : 409, err.code === 'not_found' ? 'not_found' : 'request_decided', err.message);
    if (err instanceof GroupError) return fail(ctx, err.code === 'not_found' ? 409 : 400, 'invalid_request', err.message);
    if (err instanceof AccountError) return fail(ctx, 409, err.code, err.message);
    throw err;
  };

  router.get('/me', (ctx) => {
    const me = caller(ctx);
    ctx.body = { username: me.label, admin: me.admin, manages: [...me.manages] };
  });

  router.get('/groups/:group/managers', async (ctx) => {
    const path = groupParam(ctx.params.group);
    if (!(await groups.exists(path))) return fail(ctx, 404, 'not_found', `group ${path} does not exist`);
    const found = await Promise.all((await groups.managerIds(path)).map((id) => accounts.findById(id)));
    ctx.body = { group: path, managers: found.filter((a): a is Account => a !== undefined).map(personView) };
  });

  const managerRole = (add: boolean): Middleware => async (ctx) => {
    const path = groupParam(ctx.params.group);
    const account = await accounts.findByUsername(ctx.params.username!);
    if (!account) return fail(ctx, 404, 'not_found', `user ${ctx.params.username} does not exist`);
    try {
      const changed = add ? await groups.addManager(path, account.id) : await groups.removeManager(path, account.id);
      if (!add && !changed) return fail(ctx, 404, 'not_found', `${account.username} is not a manager of ${path}`);
      if (changed) await record(ctx, add ? 'group.manager.added' : 'group.manager.removed', path, { account: account.id, username: account.username });
    } catch (err) {
      if (err instanceof GroupError) return fail(ctx, 404, 'not_found', err.message);
      throw err;
    }
    ctx.body = { group: path, username: account.username, manages: await groups.managedBy(account.id) };
  };
  router.put('/groups/:group/managers/:username', managerRole(true));
  router.delete('/groups/:group/managers/:username', managerRole(false));

  router.get('/requests', async (ctx) => {
    const q = query(ctx);
    if (!q) return;
    const group = q.group;
    const needle = q.q?.toLowerCase();
    const shown = (await requests.list(q.status)).filter((r) => mayManage(ctx, r.group)
      && (!group || isWithinGroup(r.group, group))
      && (!needle || r.username.toLowerCase().includes(needle) || r.group.toLowerCase().includes(needle) || r.reason.toLowerCase().includes(needle)));
    const { items, next } = page(shown, q.limit, q.after);
    ctx.body = { requests: items.map(requestView), next, total: shown.length };
  });

  const decideBody = z.object({ reason: z.string().trim().max(1000).optional() }).strict();
  const decide = (approve: boolean): Middleware => async (ctx) => {
    const body = parseBody(ctx, decideBody);
    if (!body) return;
    const request = await requests.get(ctx.params.id!);
    if (!request) return fail(ctx, 404, 'not_found', 'no such request');
    if (!mayManage(ctx, request.group)) return fail(ctx, 403, 'access_denied', 'the request is for a group you do not manage');
    if (approve && request.status === 'pending' && !(await groups.exists(request.group))) {
      return fail(ctx, 409, 'invalid_request', `group ${request.group} no longer exists; reject the request`);
    }
    try {
      const after = await requests.decide(request.id, approve ? 'approved' : 'rejected', caller(ctx).label, body.reason, async (r) => {
        if (approve) await groups.addMember(r.group, r.accountId);
      });
      await record(ctx, approve ? 'membership.request.approved' : 'membership.request.rejected', request.group, {
        request: request.id, account: request.accountId, username: request.username, ...(body.reason ? { reason: body.reason } : {}),
      });
      ctx.body = requestView(after);
    } catch (err) {
      requestFailure(ctx, err);
    }
  };
  router.post('/requests/:id/approve', json, decide(true));
  router.post('/requests/:id/reject', json, decide(false));

  router.get('/registrations', async (ctx) => {
    const q = query(ctx);
    if (!q) return;
    const needle = q.q?.toLowerCase();
    const shown = (await registrations.list(q.status)).filter((r) => !needle || r.username.toLowerCase().includes(needle)
      || (r.name ?? '').toLowerCase().includes(needle) || (r.email ?? '').toLowerCase().includes(needle));
    const { items, next } = page(shown, q.limit, q.after);
    ctx.body = { registrations: items.map(registrationView), next, total: shown.length };
  });

  const decideRegistration = (approve: boolean): Middleware => async (ctx) => {
    const body = parseBody(ctx, decideBody);
    if (!body) return;
    const registration = await registrations.get(ctx.params.id!);
    if (!registration) return fail(ctx, 404, 'not_found', 'no such registration');
    if (approve && registration.status === 'pending' && (await accounts.findByUsername(registration.username))) {
      return fail(ctx, 409, 'username_taken', `username ${registration.username} is taken; reject the registration`);
    }
    const identity = registration.identity;
    if (approve && registration.status === 'pending' && identity && (await accounts.findByIdentity(identity.type, identity.issuer, identity.subject))) {
      return fail(ctx, 409, 'identity_taken', 'the identity of this registration is linked to an account meanwhile; reject the registration');
    }
    try {
      const after = await registrations.decide(registration.id, approve ? 'approved' : 'rejected', caller(ctx).label, body.reason, async (r) => {
        if (!approve) return;
        const account = await accounts.create({ username: r.username, name: r.name, email: r.email, passwordHash: r.passwordHash });
        if (r.identity) await accounts.link(account.id, r.identity);
        await record(ctx, 'account.created', account.id, { username: account.username, registration: r.id, ...(r.identity ? { identity: r.identity } : {}) });
        return { accountId: account.id, passwordHash: undefined };
      });
      await record(ctx, approve ? 'registration.approved' : 'registration.rejected', registration.username, {
        registration: registration.id, ...(after.accountId ? { account: after.accountId } : {}), ...(body.reason ? { reason: body.reason } : {}),
      });
      ctx.body = registrationView(after);
    } catch (err) {
      requestFailure(ctx, err);
    }
  };
  router.post('/registrations/:id/approve', json, decideRegistration(true));
  router.post('/registrations/:id/reject', json, decideRegistration(false));

  return router;
}
