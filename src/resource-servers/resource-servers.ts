import type { ResourceServerConfig } from '../config/schema.ts';
import {
  isGroupSelectionScope, scopeCovered, scopeRelativeToBase, scopeUnderBase, WLCG_COMPUTE_SCOPES, WLCG_STORAGE_CAPABILITIES,
} from '../scopes/wlcg.ts';
import { ADMIN_API_PATH, ADMIN_SCOPE, WLCG_ANY_AUDIENCE } from '../config/names.ts';

/** The resource server fedgate issues WLCG tokens for when a WLCG request names none. */
const WLCG_ANY: ResourceServerConfig = {
  audience: WLCG_ANY_AUDIENCE,
  name: 'Any WLCG service',
  kind: 'other',
  // Every WLCG capability (the grammar's own lists), storage ones on the whole namespace.
  scopes: [...WLCG_STORAGE_CAPABILITIES.map((capability) => `${capability}:/`), ...WLCG_COMPUTE_SCOPES],
  profile: 'wlcg',
  accessTokenFormat: 'jwt',
  signingAlg: 'ES256',
};

/** The audience (and RFC 8707 resource indicator) of the admin API: `<issuer>/admin/api`. A contract name. */
export function adminAudience(issuer: string): string {
  return `${issuer}${ADMIN_API_PATH}`;
}

/**
 * The admin API as a resource server, built in and always present. Its
 * tokens are opaque, so that every request looks them up in the store and a
 * revocation or logout takes effect at once; they carry only
 * {@link ADMIN_SCOPE}.
 */
export function adminResourceServer(issuer: string): ResourceServerConfig {
  return {
    audience: adminAudience(issuer),
    name: 'fedgate admin API',
    kind: 'other',
    scopes: [ADMIN_SCOPE],
    profile: 'groups',
    accessTokenFormat: 'opaque',
    signingAlg: 'ES256',
  };
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

  /** The admin API's audience, when the registry was built with an issuer. */
  readonly adminAudience: string | undefined;

  /**
   * @param servers the configured resource servers.
   * @param issuer fedgate's issuer: adds the built-in admin API resource server ({@link adminResourceServer}).
   */
  constructor(servers: readonly ResourceServerConfig[], issuer?: string) {
    for (const rs of servers) this.#byAudience.set(rs.audience, rs);
    this.adminAudience = issuer === undefined ? undefined : adminAudience(issuer);
    if (issuer !== undefined) this.#byAudience.set(this.adminAudience!, adminResourceServer(issuer));
  }

  /** Whether `rs` is the built-in admin API resource server. */
  isAdmin(rs: ResourceServerConfig): boolean {
    return rs.audience === this.adminAudience;
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

  /** Adds or replaces the resource server with `rs.audience` (never the built-in admin API's). */
  set(rs: ResourceServerConfig): void {
    if (rs.audience === this.adminAudience) throw new TypeError('the admin API resource server is built in');
    this.#byAudience.set(rs.audience, rs);
    this.#version += 1;
  }

  /**
   * The storage base path tokens for `audience` are relative to (its
   * `storageBasePath`), or undefined when its paths are fedgate's own.
   */
  storageBaseOf(audience: string | undefined): string | undefined {
    const base = audience === undefined ? undefined : this.#byAudience.get(audience)?.storageBasePath;
    return base && base !== '/' ? base : undefined;
  }

  /**
   * A fedgate JWT's scopes in fedgate's (absolute) terms, for the decisions
   * of the gateway and token exchange: a token for one audience with a
   * storage base path carries paths relative to it ({@link scopeRelativeToBase}).
   */
  policyScopes(audience: unknown, scopes: string[]): string[] {
    const single = Array.isArray(audience) && audience.length === 1 ? audience[0] : audience;
    const base = typeof single === 'string' ? this.storageBaseOf(single) : undefined;
    return base ? scopes.map((scope) => scopeUnderBase(scope, base)) : scopes;
  }

  /**
   * A token's `scope` as its audience reads it, the inverse of
   * {@link policyScopes}: storage paths relative to the audience's storage
   * base path ({@link scopeRelativeToBase}). What its JWT carries and what
   * introspection shows.
   */
  audienceScope(audience: unknown, scope: string): string {
    const single = Array.isArray(audience) && audience.length === 1 ? audience[0] : audience;
    const base = typeof single === 'string' ? this.storageBaseOf(single) : undefined;
    return base ? scope.split(' ').map((s) => scopeRelativeToBase(s, base)).join(' ') : scope;
  }

  /** Removes a resource server and the aliases naming it; true when there was one. */
  delete(audience: string): boolean {
    if (audience === this.adminAudience || !this.#byAudience.delete(audience)) return false;
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
      if (scopeCovered(scope, rs.scopes) || (rs.profile === 'wlcg' && isGroupSelectionScope(scope))) {
        // Kept verbatim: oidc-provider matches granted scopes by exact string.
        accepted.add(scope);
      }
    }
    return [...accepted];
  }
}
