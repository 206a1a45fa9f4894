/**
 * The WLCG scope grammar (WLCG common JWT profile 1.0 §2.2, §3.1), in one
 * place below every feature that reads scopes: token issuance (src/oidc),
 * token exchange (src/exchange), the policy decision point (src/authz), the
 * gateway, the configuration and data source records. It imports nothing.
 *
 * The boundary rule it holds: a storage path in a scope means what it says
 * only in normal form. {@link storagePathProblem} is the one function that
 * decides that; every parse of a storage scope goes through it, so a path
 * that is not in normal form is never covered, never covers and never
 * matches anything.
 */

/** The WLCG storage capabilities (WLCG profile 1.2 §2.2.1: `stage` does not include reading, `poll` only asks where files are). */
export const WLCG_STORAGE_CAPABILITIES = ['storage.read', 'storage.create', 'storage.modify', 'storage.stage', 'storage.poll'] as const;
export type StorageCapability = (typeof WLCG_STORAGE_CAPABILITIES)[number];
/** The WLCG compute capability scopes (WLCG profile §2.2.1). */
export const WLCG_COMPUTE_SCOPES = ['compute.read', 'compute.modify', 'compute.create', 'compute.cancel'] as const;

/** A storage capability with its path, whatever the path looks like (`storage.read:<anything>`). */
const STORAGE_SCOPE = /^(storage\.(?:read|create|modify|stage|poll)):([^]*)$/;
/** A storage capability without a path (a policy rule's required scope: the rule's object decides the path). */
const BARE_STORAGE = /^storage\.(?:read|create|modify|stage|poll)$/;
const COMPUTE_SCOPE = /^compute\.(?:read|modify|create|cancel)$/;
/** WLCG group selection scopes (WLCG profile §3.1): `wlcg.groups` and `wlcg.groups:/cms`. */
const WLCG_GROUPS_SCOPE = /^wlcg\.groups(?::(\/.+))?$/;
/**
 * A path segment in normal form: RFC 6749 §3.3 scope-token characters
 * (printable ASCII but space, `"` and `\`), less `/` (the separator) and
 * `%` (no percent-encoding: `%2e%2e` would mean `..` to a server that decodes).
 */
const SEGMENT = /^[\x21\x23\x24\x26-\x2e\x30-\x5b\x5d-\x7e]+$/;
/** Longest storage path in a scope. */
export const MAX_STORAGE_PATH_LENGTH = 1024;

/**
 * Why `path` is not a storage path in normal form, or undefined when it is.
 * Normal form: absolute (starts with `/`); `/` itself, or non-empty segments
 * (no `//`, no trailing `/`) none of which is `.` or `..`; no
 * percent-encoding, control characters, white space, quotes, backslashes or
 * non-ASCII characters; at most {@link MAX_STORAGE_PATH_LENGTH} characters.
 * Nothing is normalised for the caller: a path that needs normalising is
 * refused, so what a scope says is what every server reads.
 */
export function storagePathProblem(path: string): string | undefined {
  if (path.length > MAX_STORAGE_PATH_LENGTH) return `longer than ${MAX_STORAGE_PATH_LENGTH} characters`;
  if (path.charCodeAt(0) !== 0x2f) return 'not an absolute path';
  if (path === '/') return undefined;
  const segments = path.split('/');
  for (let i = 1; i < segments.length; i += 1) {
    const segment = segments[i]!;
    if (segment === '') return i === segments.length - 1 ? 'a trailing slash' : 'an empty segment (//)';
    if (segment === '.' || segment === '..') return 'a . or .. segment';
    if (!SEGMENT.test(segment)) {
      return segment.includes('%') ? 'percent-encoding' : 'a control character, space, quote, backslash or non-ASCII character';
    }
  }
  return undefined;
}

/** Whether `path` is a storage path in normal form (see {@link storagePathProblem}). */
export function isNormalStoragePath(path: string): boolean {
  return storagePathProblem(path) === undefined;
}

/** A storage scope split into its capability and its path. */
export interface StorageScope {
  capability: StorageCapability;
  path: string;
}

/**
 * The capability and path of a WLCG storage scope (`storage.read:/store/cms`);
 * undefined when `scope` is not one, or when its path is not in normal form
 * ({@link storagePathProblem}): such a scope grants nothing.
 */
export function parseStorageScope(scope: string): StorageScope | undefined {
  const m = STORAGE_SCOPE.exec(scope);
  if (!m || !isNormalStoragePath(m[2]!)) return undefined;
  return { capability: m[1] as StorageCapability, path: m[2]! };
}

/** Whether `scope` has the shape of a storage scope with a path (`storage.read:/store`), normal form or not. */
export function isPathScope(scope: string): boolean {
  return STORAGE_SCOPE.test(scope);
}

/**
 * Why `scope` is not usable, for storage scopes whose path is not in normal
 * form (`storage.read:/store/cms/%2e%2e/atlas`); undefined for any other scope.
 */
export function storageScopeProblem(scope: string): string | undefined {
  const m = STORAGE_SCOPE.exec(scope);
  return m ? storagePathProblem(m[2]!) : undefined;
}

/** Whether `scope` is a bare storage capability (`storage.read`), as a policy rule's required scope. */
export function isBareStorageCapability(scope: string): boolean {
  return BARE_STORAGE.test(scope);
}

/** Whether a held storage capability authorizes `required` (WLCG profile 1.2 §2.2.1: `storage.stage` also authorizes poll, never read; every other capability only itself). */
export function capabilityAuthorizes(held: string, required: string): boolean {
  return held === required || (required === 'storage.poll' && held === 'storage.stage');
}

/** True when normal-form `path` is `base` or lies under it. */
export function pathWithin(path: string, base: string): boolean {
  return base === '/' || path === base || path.startsWith(`${base}/`);
}

/**
 * Whether `scope` is covered by one of `allowed`: equal, or a storage scope
 * of the same capability at or under an allowed path (`storage.read:/store`
 * covers `storage.read:/store/cms`, never `storage.read:/`). A storage scope
 * whose path is not in normal form is never covered and covers nothing.
 */
export function scopeCovered(scope: string, allowed: Iterable<string>): boolean {
  const wanted = STORAGE_SCOPE.test(scope) ? parseStorageScope(scope) ?? null : undefined;
  if (wanted === null) return false;
  for (const candidate of allowed) {
    if (candidate === scope) return true;
    if (!wanted) continue;
    const base = parseStorageScope(candidate);
    if (base && base.capability === wanted.capability && pathWithin(wanted.path, base.path)) return true;
  }
  return false;
}

const STORAGE_SCOPE_PATH = /^(storage\.[a-z]+):(\/.*)$/;

/**
 * A storage scope as a storage rooted at `basePath` reads it (WLCG profile
 * §2.2.3 and §4.1.1: capabilities are relative to the VO's area at the site;
 * XRootD's and dCache's `base_path`): `storage.read:/store/cms` with base
 * `/store` is `storage.read:/cms`. Other scopes, and paths outside the base,
 * are returned as they are.
 */
export function scopeRelativeToBase(scope: string, basePath: string): string {
  const m = STORAGE_SCOPE_PATH.exec(scope);
  if (!m || basePath === '/') return scope;
  const path = m[2]!;
  if (path === basePath) return `${m[1]}:/`;
  return path.startsWith(`${basePath}/`) ? `${m[1]}:${path.slice(basePath.length)}` : scope;
}

/** The inverse of {@link scopeRelativeToBase}: a storage scope of a token for that storage, in fedgate's (absolute) terms. */
export function scopeUnderBase(scope: string, basePath: string): string {
  const m = STORAGE_SCOPE_PATH.exec(scope);
  if (!m || basePath === '/') return scope;
  return `${m[1]}:${m[2] === '/' ? basePath : `${basePath}${m[2]}`}`;
}

/** Is this a WLCG capability or group scope (one that makes a request a WLCG token request)? */
export function isWlcgScope(scope: string): boolean {
  return STORAGE_SCOPE.test(scope) || COMPUTE_SCOPE.test(scope) || WLCG_GROUPS_SCOPE.test(scope);
}

/** Is this a WLCG group selection scope (`wlcg.groups`, `wlcg.groups:/cms`)? */
export function isGroupSelectionScope(scope: string): boolean {
  return WLCG_GROUPS_SCOPE.test(scope);
}

/** Requested WLCG groups: `all` for bare `wlcg.groups`, plus explicit paths in request order. */
export function requestedWlcgGroups(scopes: Iterable<string>): { all: boolean; explicit: string[] } {
  let all = false;
  const explicit: string[] = [];
  for (const scope of scopes) {
    const m = WLCG_GROUPS_SCOPE.exec(scope);
    if (!m) continue;
    if (m[1]) explicit.push(m[1]);
    else all = true;
  }
  return { all, explicit };
}
