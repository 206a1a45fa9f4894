/**
 * Groups: the tree (one level at a time, from the API's `?parent=`), search,
 * create, rename, delete (the API's refusals in plain words), members direct
 * and effective, managers.
 */
import type Router from '@koa/router';
import type { Context } from 'koa';
import { html } from '../../views/html.ts';
import { AdminApiError, AdminClient } from '../admin-client.ts';
import type { ConsoleKit } from '../kit.ts';
import { csrfField, pager } from '../layout.ts';

interface GroupJson {
  path: string;
  description?: string;
  members?: number;
  /** How many children (one page of a list answers it). */
  subgroups?: number;
}
interface MemberJson {
  id?: string;
  username: string;
  name?: string;
  disabled?: boolean;
}

const PAGE = 50;
const seg = AdminClient.segment;

/** The parent of a group path (`/` for a top-level group). */
function parentOf(path: string): string {
  const i = path.lastIndexOf('/');
  return i <= 0 ? '/' : path.slice(0, i);
}

/** A group path from a form or query: trimmed, with its leading slash. */
export function groupPath(value: unknown): string {
  const text = typeof value === 'string' ? value.trim() : '';
  return !text ? '' : text.startsWith('/') ? text : `/${text}`;
}

export const groupHref = (path: string) => `/admin/groups/view?${new URLSearchParams({ path })}`;

/** Whether a manager of `manages` manages `path` (the group or one of its ancestors). */
export function manages(manages: readonly string[], path: string): boolean {
  return manages.some((m) => path === m || path.startsWith(`${m}/`));
}

export function groupSection(router: Router, kit: ConsoleKit): void {
  kit.page(router, '/groups', async (ctx) => {
    const session = kit.session(ctx);
    const q = typeof ctx.query.q === 'string' ? ctx.query.q.trim().slice(0, 200) : '';
    const parent = groupPath(ctx.query.parent) || '/';
    const cursor = typeof ctx.query.cursor === 'string' ? ctx.query.cursor : undefined;
    let groups: GroupJson[] = [];
    let next: string | null = null;
    // A group manager's console lists the groups they manage (the API opens them those groups' pages only).
    if (session.admin) {
      const answer = await kit.api(ctx).get<{ groups: GroupJson[]; next?: string | null }>('/groups', q ? { q, limit: PAGE, cursor } : { parent, limit: PAGE, cursor });
      // One level of the tree: an API without ?parent= answers every group, so only the children are kept.
      groups = q ? answer.groups : answer.groups.filter((g) => parentOf(g.path) === parent);
      next = answer.next ?? null;
      if (groups.length > PAGE) groups = groups.slice(0, PAGE);
    } else {
      groups = session.manages.map((path) => ({ path }));
    }
    const crumbs = parent === '/' ? [] : parent.slice(1).split('/').map((_, i, all) => `/${all.slice(0, i + 1).join('/')}`);
    const body = html`<h1>Groups</h1>
${session.admin && html`<form method="get" action="/admin/groups" role="search" class="row">
<div><label for="q">Search groups</label><input id="q" name="q" type="search" value="${q}" placeholder="e.g. atlas"></div>
<div class="narrow"><button type="submit">Search</button></div>
</form>`}
${!q && session.admin && html`<nav aria-label="Group tree position"><p><a href="/admin/groups">All top-level groups</a>${crumbs.map((c) => html` / <a href="${`/admin/groups?${new URLSearchParams({ parent: c })}`}">${c.slice(c.lastIndexOf('/') + 1)}</a>`)}</p></nav>`}
<h2>${q ? `Groups matching “${q}”` : parent === '/' ? (session.admin ? 'Top-level groups' : 'Groups you manage') : `Subgroups of ${parent}`}</h2>
${groups.length ? html`<div class="table tree"><table>
<thead><tr><th scope="col">Group</th><th scope="col">Description</th><th scope="col">Members</th><th scope="col">Subgroups</th></tr></thead>
<tbody>${groups.map((g) => html`<tr><td><a href="${groupHref(g.path)}"><code>${g.path}</code></a></td><td>${g.description ?? ''}</td><td>${g.members ?? ''}</td><td>${g.subgroups === 0 ? html`<span class="muted">none</span>` : html`<a href="${`/admin/groups?${new URLSearchParams({ parent: g.path })}`}" aria-label="${`Subgroups of ${g.path}`}">${g.subgroups ?? ''} subgroups</a>`}</td></tr>\n`)}</tbody>
</table></div>` : html`<p class="muted">No groups here.</p>`}
${pager('/admin/groups', { q, parent: q ? undefined : parent === '/' ? undefined : parent, cursor }, next)}
${session.admin && html`<h2>Create a group</h2>
<form method="post" action="/admin/groups/create">
${csrfField(session.csrf)}
<div class="row">
<div><label for="new-path">Path</label><input id="new-path" name="path" required value="${parent === '/' ? '' : `${parent}/`}" placeholder="/atlas/analysis" aria-describedby="new-path-help"></div>
<div><label for="new-description">Description</label><input id="new-description" name="description" maxlength="500"></div>
<div class="narrow"><button type="submit">Create group</button></div>
</div>
<p id="new-path-help" class="muted">A path such as <code>/atlas/analysis</code>; its parent must exist.</p>
</form>`}`;
    await kit.render(ctx, { title: 'Groups', section: 'groups', body });
  });

  kit.page(router, '/groups/view', async (ctx) => {
    const session = kit.session(ctx);
    const path = groupPath(ctx.query.path);
    if (!path) return ctx.redirect('/admin/groups');
    const effective = ctx.query.effective === 'true';
    const cursor = typeof ctx.query.cursor === 'string' ? ctx.query.cursor : undefined;
    const api = kit.api(ctx);
    const [group, children, members, managers] = await Promise.all([
      api.get<GroupJson>(`/groups/${seg(path)}`),
      session.admin ? api.get<{ groups: GroupJson[]; next?: string | null; total?: number }>('/groups', { parent: path, limit: PAGE }) : { groups: [] as GroupJson[], next: null, total: undefined },
      api.get<{ members: MemberJson[]; next?: string | null; total?: number }>(`/groups/${seg(path)}/members`, { ...(effective ? { effective: 'true' } : {}), limit: PAGE, cursor }),
      api.get<{ managers: Array<MemberJson | string> }>(`/groups/${seg(path)}/managers`).catch((err: unknown) => {
        if (err instanceof AdminApiError && err.error === 'http_404') return undefined;
        throw err;
      }),
    ]);
    const memberList = members.members.slice(0, PAGE);
    const managerNames = (managers?.managers ?? []).map((m) => (typeof m === 'string' ? m : m.username));
    const canManage = session.admin || manages(session.manages, path);
    const hidden = html`${csrfField(session.csrf)}<input type="hidden" name="path" value="${path}">`;
    // An API without ?parent= answers every group: only the children are shown.
    const subgroups = children.groups.map((g) => g.path).filter((p) => parentOf(p) === path).slice(0, PAGE);
    const moreSubgroups = !!children.next;
    const body = html`<h1>Group <code>${path}</code></h1>
<p>${group.description || html`<span class="muted">No description.</span>`}</p>
<p><a href="${`/admin/groups?${new URLSearchParams({ parent: parentOf(path) === '/' ? '' : parentOf(path) })}`}">Back to the tree</a>${session.admin ? html` · <a href="${`/admin/policies?${new URLSearchParams({ group: path })}`}">Rules of this group</a>` : ''}</p>
${session.admin && html`<h2>Subgroups</h2>
${subgroups.length ? html`<ul>${subgroups.map((s) => html`<li><a href="${groupHref(s)}"><code>${s}</code></a></li>`)}</ul>${moreSubgroups ? html`<p><a href="${`/admin/groups?${new URLSearchParams({ parent: path })}`}">All ${children.total ?? ''} subgroups</a></p>` : ''}` : html`<p class="muted">None.</p>`}`}
<h2 id="members">Members ${effective ? '(effective: with subgroups)' : '(direct)'}</h2>
<p>${effective ? html`<a href="${`${groupHref(path)}#members`}">Show direct members</a>` : html`<a href="${`${groupHref(path)}&effective=true#members`}">Show effective members (with subgroups)</a>`}${members.total !== undefined ? ` · ${members.total} in all` : ''}</p>
${memberList.length ? html`<div class="table"><table>
<thead><tr><th scope="col">Username</th><th scope="col">Name</th><th scope="col">State</th>${canManage && !effective ? html`<th scope="col"><span class="muted">Action</span></th>` : ''}</tr></thead>
<tbody>${memberList.map((m) => html`<tr><td>${session.admin ? html`<a href="${`/admin/accounts/view?${new URLSearchParams({ username: m.username })}`}">${m.username}</a>` : m.username}</td><td>${m.name ?? ''}</td><td>${m.disabled ? html`<span class="bad">disabled</span>` : 'active'}</td>${canManage && !effective ? html`<td><form class="inline" method="post" action="/admin/groups/members/remove">${hidden}<input type="hidden" name="username" value="${m.username}"><button type="submit" class="secondary" aria-label="${`Remove ${m.username} from ${path}`}">Remove</button></form></td>` : ''}</tr>\n`)}</tbody>
</table></div>` : html`<p class="muted">No members.</p>`}
${pager('/admin/groups/view', { path, effective: effective ? 'true' : undefined, cursor }, members.next)}
${canManage && html`<form method="post" action="/admin/groups/members/add" class="row">
${hidden}
<div><label for="member-username">Add a member (username)</label><input id="member-username" name="username" required autocomplete="off"></div>
<div class="narrow"><button type="submit">Add member</button></div>
</form>`}
${managers && html`<h2>Managers</h2>
<p class="muted">Managers approve membership requests and manage the members of this group and its subgroups.</p>
${managerNames.length ? html`<ul>${managerNames.map((m) => html`<li>${m}${session.admin ? html` <form class="inline" method="post" action="/admin/groups/managers/remove">${hidden}<input type="hidden" name="username" value="${m}"><button type="submit" class="secondary" aria-label="${`Remove ${m} as manager of ${path}`}">Remove</button></form>` : ''}</li>`)}</ul>` : html`<p class="muted">No managers.</p>`}
${session.admin && html`<form method="post" action="/admin/groups/managers/add" class="row">
${hidden}
<div><label for="manager-username">Add a manager (username)</label><input id="manager-username" name="username" required autocomplete="off"></div>
<div class="narrow"><button type="submit">Add manager</button></div>
</form>`}`}
${session.admin && html`<h2>Rename or describe</h2>
<form method="post" action="/admin/groups/rename">
${hidden}
<div class="row">
<div><label for="rename-to">Path</label><input id="rename-to" name="to" value="${path}" required></div>
<div><label for="rename-description">Description</label><input id="rename-description" name="description" value="${group.description ?? ''}" maxlength="500"></div>
<div class="narrow"><button type="submit">Save</button></div>
</div>
<p class="muted">Renaming moves the subgroups, memberships and rules with the group.</p>
</form>
<h2>Delete</h2>
<form method="post" action="/admin/groups/delete">
${hidden}
<p>A group is deleted only when it has no subgroups, members or rules; fedgate says what is left otherwise.</p>
<button type="submit" class="danger">Delete ${path}</button>
</form>`}`;
    await kit.render(ctx, { title: `Group ${path}`, section: 'groups', body });
  });

  const back = (path: string) => (path ? groupHref(path) : '/admin/groups');
  const change = (route: string, work: (api: AdminClient, path: string, fields: Record<string, string>) => Promise<string>, options: { adminOnly?: boolean; after?: (path: string, fields: Record<string, string>) => string } = {}) => {
    kit.action(router, route, async (ctx: Context, fields) => {
      const path = groupPath(fields.path);
      const location = back(path);
      try {
        const text = await work(kit.api(ctx), path, fields);
        await kit.done(ctx, options.after?.(path, fields) ?? location, text);
      } catch (err) {
        await kit.refused(ctx, location, err);
      }
    }, options.adminOnly ? { adminOnly: true } : {});
  };

  kit.action(router, '/groups/create', async (ctx, fields) => {
    const path = groupPath(fields.path);
    const parent = path ? parentOf(path) : '/';
    try {
      await kit.api(ctx).post('/groups', { path, ...(fields.description ? { description: fields.description } : {}) });
      await kit.done(ctx, groupHref(path), `Group ${path} created.`);
    } catch (err) {
      await kit.refused(ctx, parent === '/' ? '/admin/groups' : `/admin/groups?${new URLSearchParams({ parent })}`, err);
    }
   }, { adminOnly: true });
  change('/groups/rename', async (api, path, fields) => {
    const to = groupPath(fields.to);
    await api.patch(`/groups/${seg(path)}`, { ...(to && to !== path ? { path: to } : {}), description: fields.description ?? '' });
    return to && to !== path ? `Group ${path} renamed to ${to}.` : `Group ${path} saved.`;
  }, { adminOnly: true, after: (path, fields) => groupHref(groupPath(fields.to) || path) });
  kit.action(router, '/groups/delete', async (ctx, fields) => {
    const path = groupPath(fields.path);
    try {
      await kit.api(ctx).delete(`/groups/${seg(path)}`);
      const parent = parentOf(path);
      await kit.done(ctx, parent === '/' ? '/admin/groups' : `/admin/groups?${new URLSearchParams({ parent })}`, `Group ${path} deleted.`);
    } catch (err) {
      await kit.refused(ctx, groupHref(path), err);
    }
  }, { adminOnly: true });
  change('/groups/members/add', async (api, path, fields) => {
    await api.put(`/groups/${seg(path)}/members/${seg(fields.username?.trim() ?? '')}`);
    return `${fields.username} is now a member of ${path}.`;
  });
  change('/groups/members/remove', async (api, path, fields) => {
    await api.delete(`/groups/${seg(path)}/members/${seg(fields.username ?? '')}`);
    return `${fields.username} is no longer a member of ${path}.`;
  });
  change('/groups/managers/add', async (api, path, fields) => {
    await api.put(`/groups/${seg(path)}/managers/${seg(fields.username?.trim() ?? '')}`);
    return `${fields.username} now manages ${path}.`;
  }, { adminOnly: true });
  change('/groups/managers/remove', async (api, path, fields) => {
    await api.delete(`/groups/${seg(path)}/managers/${seg(fields.username ?? '')}`);
    return `${fields.username} no longer manages ${path}.`;
  }, { adminOnly: true });
}
