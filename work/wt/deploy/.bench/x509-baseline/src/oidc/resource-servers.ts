import { WLCG_ANY_AUDIENCE, type ResourceServerConfig } from '../config/schema.ts';

/** WLCG capability scopes that carry a path (WLCG profile §2.2.1). */
const PATH_SCOPE = /^(storage\.(?:read|create|modify|stage)):(\/.*)$/;
/** WLCG group selection scopes (WLCG profile §3.1): `wlcg.groups` and `wlcg.groups:/cms`. */
const WLCG_GROUPS_SCOPE = /^wlcg\.groups(?::(\/.+))?$/;

/**
 * Normalises a WLCG path: collapses repeated slashes and removes a trailing
 * slash, refusing `.` and `..` segments (a scope must not escape its base).
 */
export function normaliseScopePath(path: string): string | undefined {
  const segments = path.split('/').filter(Boolean);
  if (segments.some((s) => s === '.' || s === '..')) return undefined;
  return `/${segments.join('/')}`;
}

/** True when `path` is `base` or lies under it. */
export function pathWithin(path: string, base: string): boolean {
  return base === '/' || path === base || path.startsWith(`${base}/`);
}

/**
 * Whether `scope` is covered by one of `allowed`: equal, or a WLCG path scope
 * of the same capability under an allowed path (`storage.read:/store` covers
 * `storage.read:/store/cms`, never `storage.read:/`).
 */
export function scopeCovered(scope: string, allowed: Iterable<string>): boolean {
  const wanted = PATH_SCOPE.exec(scope);
  const wantedPath = wanted ? normaliseScopePath(wanted[2]!) : undefined;
  for (const candidate of allowed) {
    if (candidate === scope) return wanted ? wantedPath !== undefined : true;
    if (!wanted || wantedPath === undefined) continue;
    const base = PATH_SCOPE.exec(candidate);
    if (base && base[1] === wanted[1]) {
      const basePath = normaliseScopePath(base[2]!);
      if (basePath !== undefined && pathWithin(wantedPath, basePath)) return true;
    }
  }
  return false;
}

/** The resource server fedgate issues WLCG tokens for when a WLCG request names none. */
const WLCG_ANY: ResourceServerConfig = {
  audience: WLCG_ANY_AUDIENCE,
  name: 'Any WLCG service',
  kind: 'other',
  scopes: ['storage.read:/', 'storage.create:/', 'storage.modify:/', 'storage.stage:/', 'compute.read', 'compute.modify', 'compute.create', 'compute.cancel'],
  profile: 'wlcg',
  accessTokenFormat: 'jwt',
  signingAlg: 'ES256',
};

/** Is this a WLCG capability or group scope (one that makes a request a WLCG token request)? */
export function isWlcgScope(scope: string): boolean {
  return PATH_SCOPE.test(scope) || /^compute\.(read|modify|create|cancel)$/.test(scope) || WLCG_GROUPS_SCOPE.test(scope);
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

/**
 * The registry of resource servers (audiences) fedgate issues access tokens
 * for: the configured ones, and the data sources onboarded at run time
 * (src/datasources), which replace and remove entries while fedgate runs.
 * Every change raises `version`, which answers cached per request shape
 * (oidc-provider's getResourceServerInfo memo) include.
 */
export class ResourceServers {
  #byAudience = new Map<string, ResourceServerConfig>();
  /** Other resource indicators that name a server (a data source's gateway URL, RFC 9728 `resource`) → its audience. */
  #aliases = new Map<string, string>();
  #version = 0;

  /** Changes whenever the set of resource servers or any of them changes (answers cached per request shape use it). */
  get version(): number {
    return this.#version;
  }

  constructor(servers: readonly ResourceServerConfig[]) {
    for (const rs of servers) this.#byAudience.set(rs.audience, rs);
  }

  /**
   * The resource server a resource indicator (RFC 8707) names: by its
   * audience, or by an alias; the token's `aud` is always the audience.
   */
  get(audience: string): ResourceServerConfig | undefined {
    const direct = this.#byAudience.get(audience);
    if (direct) return direct;
    const aliased = this.#aliases.get(audience);
    if (aliased !== undefined) return this.#byAudience.get(aliased);
    return audience === WLCG_ANY_AUDIENCE ? WLCG_ANY : undefined;
  }

  /** Whether `audience` is the audience of a resource server (aliases are not audiences: no token carries them). */
  hasAudience(audience: string): boolean {
    return this.#byAudience.has(audience) || audience === WLCG_ANY_AUDIENCE;
  }

  list(): ResourceServerConfig[] {
    return [...this.#byAudience.values()];
  }

  /** Adds or replaces the resource server with `rs.audience`. */
  set(rs: ResourceServerConfig): void {
    this.#byAudience.set(rs.audience, rs);
    this.#version += 1;
  }

  /** Removes a resource server and the aliases naming it; true when there was one. */
  delete(audience: string): boolean {
    if (!this.#byAudience.delete(audience)) return false;
    for (const [alias, target] of this.#aliases) if (target === audience) this.#aliases.delete(alias);
    this.#version += 1;
    return true;
  }

  /** Makes `resource` another name of `audience` (or, with undefined, forgets it). */
  alias(resource: string, audience: string | undefined): void {
    if (audience === undefined ? !this.#aliases.delete(resource) : this.#aliases.get(resource) === audience) return;
    if (audience !== undefined) this.#aliases.set(resource, audience);
    this.#version += 1;
  }

  /**
   * Of the `candidates` a request carries, those this resource server accepts.
   * WLCG profile servers also accept the group selection scopes.
   */
  acceptedScopes(rs: ResourceServerConfig, candidates: Iterable<string>): string[] {
    const accepted = new Set<string>();
    for (const scope of candidates) {
      if (scopeCovered(scope, rs.scopes) || (rs.profile === 'wlcg' && WLCG_GROUPS_SCOPE.test(scope))) {
        // Kept verbatim: oidc-provider matches granted scopes by exact string.
        accepted.add(scope);
      }
    }
    return [...accepted];
  }
}
