import { indexPage } from '../store/index-page.ts';
import type { Store } from '../store/store.ts';
import type { Accounts } from './accounts.ts';
import { FedgateError } from '../util/errors.ts';

/** A group: a path in the hierarchy (`/cms/production` lies under `/cms`). */
export interface Group {
  path: string;
  description?: string | undefined;
  createdAt: number;
}

/** A stable error whose `code` callers switch on. */
export class GroupError extends FedgateError {
  readonly code: 'invalid_path' | 'exists' | 'parent_missing' | 'not_found' | 'not_empty';
  constructor(code: GroupError['code'], message: string) {
    super(code, message);
    this.code = code;
  }
}

/** Segments of letters, digits and `._-`, never `.` or `..` (a path must not look like traversal). */
const GROUP_PATH = /^(\/(?!\.\.?(?:\/|$))[A-Za-z0-9._-]+)+$/;
const groupKey = (path: string) => `group:${path}`;
const GROUP_PATHS = 'group-paths';
/** Every group path, sorted (pages and searches of the registry). */
const GROUP_INDEX = 'group-index';
/** The paths of a group's children, sorted; the top-level groups are the children of `/`. */
const childrenKey = (parent: string | undefined) => `group-children:${parent ?? '/'}`;
/** Set once the sorted indexes hold the groups that predate them. */
const GROUP_INDEX_BUILT = 'group-list-index-built';

/** What {@link Groups.page} looks for. */
export interface GroupPageQuery {
  /** A substring of the path (case-sensitive, as paths are). */
  q?: string | undefined;
  /** Only the children of this group (`/` for the top level). */
  parent?: string | undefined;
  after?: string | undefined;
  limit: number;
}
/** Account ids that manage the group (INDIGO IAM's group managers). */
const managersKey = (path: string) => `group-managers:${path}`;
/** Groups the account manages: the other side of {@link managersKey}. */
const managedKey = (accountId: string) => `account-manages:${accountId}`;

/** The parent path of a group, or undefined for a top-level group. */
export function parentGroup(path: string): string | undefined {
  const cut = path.lastIndexOf('/');
  return cut > 0 ? path.slice(0, cut) : undefined;
}

/** True when `path` is `ancestor` or lies under it. */
export function isWithinGroup(path: string, ancestor: string): boolean {
  return path === ancestor || path.startsWith(`${ancestor}/`);
}

/** Whether a manager of `managed` groups manages `group`: it is one of them or lies under one. */
export function managesGroup(managed: readonly string[], group: string): boolean {
  return managed.some((m) => isWithinGroup(group, m));
}

/** `path` with its `from` prefix replaced by `to` (for renames of a subtree). */
function moved(path: string, from: string, to: string): string {
  return `${to}${path.slice(from.length)}`;
}

/**
 * The group registry. Memberships live on the accounts (their direct
 * groups, indexed per group); this holds which groups exist, so that
 * memberships and policy rules can only name real groups.
 */
export class Groups {
  readonly #store: Store;
  readonly #accounts: Accounts;
  /** Called after groups were created, renamed or deleted (the hierarchy changed). */
  onChanged: (() => Promise<void>) | undefined;
  /** Called after a group's managers changed (who may get an admin API token changed). */
  onManagersChanged: (() => Promise<void>) | undefined;

  constructor(store: Store, accounts: Accounts) {
    this.#store = store;
    this.#accounts = accounts;
  }

  async get(path: string): Promise<Group | undefined> {
    return this.#store.get<Group>(groupKey(path));
  }

  async exists(path: string): Promise<boolean> {
    return (await this.get(path)) !== undefined;
  }

  async paths(): Promise<string[]> {
    return (await this.#store.setMembers(GROUP_PATHS)).sort();
  }

  async list(): Promise<Group[]> {
    const groups = await Promise.all((await this.paths()).map((p) => this.get(p)));
    return groups.filter((g): g is Group => g !== undefined);
  }

  /** How many groups exist (a counter read, not a scan). */
  async count(): Promise<number> {
    return this.#store.indexSize(GROUP_INDEX);
  }

  /**
   * One page of groups in path order: all of them, or the children of
   * `parent`; `q` keeps paths containing it. The search runs in the store,
   * a bounded number of paths per call, and stops after about 50 ms with a
   * cursor even when the page is not full.
   */
  async page(query: GroupPageQuery): Promise<{ groups: Group[]; next: string | undefined }> {
    const index = query.parent === undefined ? GROUP_INDEX : childrenKey(query.parent === '/' ? undefined : query.parent);
    const { members: paths, next } = await indexPage(this.#store, index, { after: query.after, contains: query.q || undefined, limit: query.limit });
    const groups = await Promise.all(paths.map((p) => this.get(p)));
    return { groups: groups.filter((g): g is Group => g !== undefined), next };
  }

  /** How many children `path` has. */
  async childCount(path: string): Promise<number> {
    return this.#store.indexSize(childrenKey(path));
  }

  /** Builds the sorted indexes once for groups created before they existed; later changes keep them current. */
  async ensureIndex(): Promise<void> {
    if (await this.#store.get(GROUP_INDEX_BUILT)) return;
    const paths = await this.paths();
    await this.#store.addToIndex(GROUP_INDEX, paths);
    const byParent = Map.groupBy(paths, (p) => parentGroup(p) ?? '/');
    await Promise.all([...byParent].map(([parent, children]) => this.#store.addToIndex(childrenKey(parent === '/' ? undefined : parent), children)));
    await this.#store.set(GROUP_INDEX_BUILT, true);
  }

  async #index(path: string): Promise<void> {
    await Promise.all([
      this.#store.addToSet(GROUP_PATHS, path),
      this.#store.addToIndex(GROUP_INDEX, [path]),
      this.#store.addToIndex(childrenKey(parentGroup(path)), [path]),
    ]);
  }

  async #unindex(path: string): Promise<void> {
    await Promise.all([
      this.#store.removeFromSet(GROUP_PATHS, path),
      this.#store.removeFromIndex(GROUP_INDEX, [path]),
      this.#store.removeFromIndex(childrenKey(parentGroup(path)), [path]),
    ]);
  }

  /** Creates a group; its parent must exist. */
  async create(path: string, description?: string): Promise<Group> {
    if (!GROUP_PATH.test(path)) throw new GroupError('invalid_path', `${path} is not a group path such as /cms/production`);
    const parent = parentGroup(path);
    if (parent && !(await this.exists(parent))) throw new GroupError('parent_missing', `parent group ${parent} does not exist`);
    const group: Group = { path, ...(description ? { description } : {}), createdAt: Math.floor(Date.now() / 1000) };
    if (!(await this.#store.setIfAbsent(groupKey(path), group))) throw new GroupError('exists', `group ${path} already exists`);
    await this.#index(path);
    await this.onChanged?.();
    return group;
  }

  /** Creates the groups that do not exist yet, parents first (configuration is a seed). */
  async seed(groups: ReadonlyArray<{ path: string; description?: string | undefined }>): Promise<string[]> {
    const created: string[] = [];
    const byDepth = [...groups].sort((a, b) => a.path.split('/').length - b.path.split('/').length);
    for (const group of byDepth) {
      if (await this.exists(group.path)) continue;
      try {
        await this.create(group.path, group.description);
        created.push(group.path);
      } catch (err) {
        // Another replica seeded it first.
        if (!(err instanceof GroupError && err.code === 'exists')) throw err;
      }
    }
    return created;
  }

  async setDescription(path: string, description: string | undefined): Promise<Group> {
    const group = await this.get(path);
    if (!group) throw new GroupError('not_found', `group ${path} does not exist`);
    const updated: Group = { path, ...(description ? { description } : {}), createdAt: group.createdAt };
    await this.#store.set(groupKey(path), updated);
    return updated;
  }

  /** Subgroups of `path`, at any depth. */
  async descendants(path: string): Promise<string[]> {
    return (await this.paths()).filter((p) => p !== path && isWithinGroup(p, path));
  }

  /**
   * Renames a group and its whole subtree, moving every member with it.
   * The new parent must exist; the new path must be free and not inside the
   * old one. Returns the renamed paths (old → new), parents first.
   */
  async rename(from: string, to: string): Promise<Array<[string, string]>> {
    if (!GROUP_PATH.test(to)) throw new GroupError('invalid_path', `${to} is not a group path such as /cms/production`);
    if (!(await this.exists(from))) throw new GroupError('not_found', `group ${from} does not exist`);
    if (isWithinGroup(to, from)) throw new GroupError('invalid_path', `${to} lies inside ${from}`);
    if (await this.exists(to)) throw new GroupError('exists', `group ${to} already exists`);
    const parent = parentGroup(to);
    if (parent && !(await this.exists(parent))) throw new GroupError('parent_missing', `parent group ${parent} does not exist`);
    const subtree = [from, ...(await this.descendants(from))].sort((a, b) => a.length - b.length);
    const renames = subtree.map((p): [string, string] => [p, moved(p, from, to)]);
    for (const [oldPath, newPath] of renames) {
      const group = (await this.get(oldPath))!;
      await this.#store.set(groupKey(newPath), { ...group, path: newPath });
      await this.#index(newPath);
    }
    // Members follow: each account's direct groups are rewritten once.
    const memberIds = new Set((await Promise.all(subtree.map((p) => this.#accounts.memberIds(p)))).flat());
    for (const id of memberIds) {
      const account = await this.#accounts.findById(id);
      if (!account) continue;
      await this.#accounts.setGroups(id, account.groups.map((g) => (isWithinGroup(g, from) ? moved(g, from, to) : g)));
    }
    // Managers follow too.
    let managersMoved = false;
    for (const [oldPath, newPath] of renames) {
      for (const id of await this.#store.setMembers(managersKey(oldPath))) {
        await this.#store.addToSet(managersKey(newPath), id);
        await this.#store.addToSet(managedKey(id), newPath);
        await this.#store.removeFromSet(managedKey(id), oldPath);
        managersMoved = true;
      }
      await this.#store.delete(managersKey(oldPath));
    }
    for (const [oldPath] of renames.reverse()) {
      await this.#unindex(oldPath);
      await this.#store.delete(groupKey(oldPath));
    }
    await this.onChanged?.();
    if (managersMoved) await this.onManagersChanged?.();
    return renames.reverse();
  }

  /** Deletes a group that has no subgroups and no members (nothing is orphaned). */
  async delete(path: string): Promise<void> {
    if (!(await this.exists(path))) throw new GroupError('not_found', `group ${path} does not exist`);
    const children = await this.descendants(path);
    if (children.length) throw new GroupError('not_empty', `group ${path} has subgroups (${children.slice(0, 5).join(', ')}${children.length > 5 ? ', ...' : ''}); delete or move them first`);
    const members = await this.#accounts.memberIds(path);
    if (members.length) throw new GroupError('not_empty', `group ${path} has ${members.length} member(s); remove them first`);
    await this.#unindex(path);
    await this.#store.delete(groupKey(path));
    // A deleted group's managers manage nothing there any more.
    const managers = await this.#store.setMembers(managersKey(path));
    for (const id of managers) await this.#store.removeFromSet(managedKey(id), path);
    await this.#store.delete(managersKey(path));
    await this.onChanged?.();
    if (managers.length) await this.onManagersChanged?.();
  }

  /** Account ids of the group's managers (directly of this group, not inherited from a parent). */
  async managerIds(path: string): Promise<string[]> {
    return (await this.#store.setMembers(managersKey(path))).sort();
  }

  /** Groups the account manages directly; their subgroups are managed too (see {@link managesGroup}). */
  async managedBy(accountId: string): Promise<string[]> {
    return (await this.#store.setMembers(managedKey(accountId))).sort();
  }

  /** Makes the account a manager of the group. False when it already was. */
  async addManager(path: string, accountId: string): Promise<boolean> {
    if (!(await this.exists(path))) throw new GroupError('not_found', `group ${path} does not exist`);
    if (!(await this.#accounts.findById(accountId))) throw new GroupError('not_found', 'no such account');
    const already = (await this.#store.setMembers(managedKey(accountId))).includes(path);
    await this.#store.addToSet(managersKey(path), accountId);
    await this.#store.addToSet(managedKey(accountId), path);
    if (!already) await this.onManagersChanged?.();
    return !already;
  }

  /** Ends the account's manager role for the group. False when it was not a manager of it. */
  async removeManager(path: string, accountId: string): Promise<boolean> {
    const was = (await this.#store.setMembers(managedKey(accountId))).includes(path);
    await this.#store.removeFromSet(managersKey(path), accountId);
    await this.#store.removeFromSet(managedKey(accountId), path);
    if (was) await this.onManagersChanged?.();
    return was;
  }

  async addMember(path: string, accountId: string): Promise<void> {
    if (!(await this.exists(path))) throw new GroupError('not_found', `group ${path} does not exist`);
    const account = await this.#accounts.findById(accountId);
    if (!account) throw new GroupError('not_found', 'no such account');
    if (!account.groups.includes(path)) await this.#accounts.setGroups(accountId, [...account.groups, path]);
  }

  async removeMember(path: string, accountId: string): Promise<boolean> {
    const account = await this.#accounts.findById(accountId);
    if (!account) throw new GroupError('not_found', 'no such account');
    if (!account.groups.includes(path)) return false;
    await this.#accounts.setGroups(accountId, account.groups.filter((g) => g !== path));
    return true;
  }
}
