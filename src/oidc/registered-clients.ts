/**
 * What oidc-gen (oidc-agent) registers by default, made acceptable.
 *
 * **Native clients registered as `web`.** oidc-gen registers the private-use
 * scheme redirect `edu.kit.data.oidc-agent:/redirect` (RFC 8252 §7.1) beside
 * loopback ones, with `application_type: web`, which refuses it (OpenID
 * Connect Registration §2). No web application can receive a redirect on a
 * private-use scheme: a registration whose redirect URIs are all private-use
 * (reverse domain name) schemes or loopback addresses, at least one of them
 * private-use, is recorded as the native client it is.
 *
 * **Capability scopes** in a dynamically registered client's `scope` (RFC 7591
 * §2): oidc-gen registers `storage.read:/...` and the like beside the OIDC
 * scopes. oidc-provider accepts only its static scopes there, so fedgate
 * takes the others out of `scope` into its own client metadata
 * `resource_scope` (through oidc-provider's `extraClientMetadata`), checks
 * at registration that a resource server accepts each of them (as issuance
 * does: equal, or a storage path under an accepted one), and afterwards
 * lets the client obtain no other resource scopes (as a configured client's
 * `scopes` list does). `fedgate.admin`, the admin API's scope, is refused.
 */
import { errors } from 'oidc-provider';
import type { KoaContextWithOIDC } from 'oidc-provider';
import { isGroupSelectionScope, scopeCovered } from '../scopes/wlcg.ts';
import type { ResourceServers } from '../resource-servers/resource-servers.ts';
import { ADMIN_SCOPE, WLCG_ANY_AUDIENCE } from '../config/names.ts';

/** fedgate's client metadata holding a registered client's resource scopes (space-separated). */
export const RESOURCE_SCOPE = 'resource_scope';

/** Requests that register or change a client: only they are checked against today's resource servers. */
const REGISTERING_ROUTES = new Set(['registration', 'client_update']);

const LOOPBACK_HOSTS = new Set(['127.0.0.1', '[::1]', 'localhost']);

/** Whether these redirect URIs are those of a native app: private-use schemes and loopback, at least one of the former. */
export function nativeRedirects(uris: unknown): boolean {
  if (!Array.isArray(uris) || !uris.length) return false;
  let privateUse = false;
  for (const uri of uris) {
    const url = typeof uri === 'string' ? URL.parse(uri) : null;
    if (!url) return false;
    if (url.protocol === 'http:' && LOOPBACK_HOSTS.has(url.hostname)) continue;
    // RFC 8252 §7.1: a private-use scheme is a reverse domain name (it contains a dot).
    if (url.protocol === 'https:' || url.protocol === 'http:' || !url.protocol.includes('.')) return false;
    privateUse = true;
  }
  return privateUse;
}

/**
 * oidc-provider's `extraClientMetadata.validator` (it runs before the
 * standard checks, for every client built: registration, update, and each
 * load from the store). On registration and update, makes a client with
 * only native redirects a native one. Always moves non-static scopes from `scope` to `resource_scope`; on
 * registration and update, refuses one no resource server accepts.
 */
export function registrationMetadataValidator(staticScopes: readonly string[], resourceServers: ResourceServers) {
  const statics = new Set(staticScopes);
  return (ctx: KoaContextWithOIDC | undefined, key: string, value: unknown, metadata: Record<string, unknown>): void => {
    if (key !== RESOURCE_SCOPE) return;
    const registering = !!ctx?.oidc && REGISTERING_ROUTES.has(ctx.oidc.route);
    if (registering && nativeRedirects(metadata.redirect_uris)) metadata.application_type = 'native';
    if (value !== undefined && typeof value !== 'string') throw new errors.InvalidClientMetadata(`${RESOURCE_SCOPE} must be a string`);
    const requested = typeof metadata.scope === 'string' ? metadata.scope.split(' ').filter(Boolean) : [];
    let capabilities = [...new Set([...requested.filter((s) => !statics.has(s)), ...(value ?? '').split(' ').filter(Boolean)])];
    if (capabilities.includes(ADMIN_SCOPE)) {
      // A dynamically registered client never administers fedgate (nor obtains the admin API's scope for a user).
      if (registering) throw new errors.InvalidClientMetadata(`scope ${ADMIN_SCOPE} cannot be registered`);
      capabilities = capabilities.filter((s) => s !== ADMIN_SCOPE);
    }
    if (!capabilities.length) {
      delete metadata[RESOURCE_SCOPE];
      return;
    }
    if (registering) {
      const servers = resourceServers.list();
      const anyServer = resourceServers.get(WLCG_ANY_AUDIENCE);
      for (const scope of capabilities) {
        const accepted = [...servers, ...(anyServer ? [anyServer] : [])].some((rs) => resourceServers.acceptedScopes(rs, [scope]).length > 0);
        if (!accepted) throw new errors.InvalidClientMetadata(`scope ${scope} is not accepted by any resource server`);
      }
    }
    const oidcScopes = requested.filter((s) => statics.has(s));
    // Leaving `scope` empty would let the client ask every static scope: keep at least openid.
    metadata.scope = (oidcScopes.length ? oidcScopes : ['openid']).join(' ');
    metadata[RESOURCE_SCOPE] = capabilities.join(' ');
  };
}

/** The resource scopes a client registered, if it registered any (configured clients have their own `scopes`). */
export function registeredResourceScopes(client: object): string[] | undefined {
  const value = (client as Record<string, unknown>)[RESOURCE_SCOPE];
  return typeof value === 'string' && value ? value.split(' ') : undefined;
}

/** Of `scopes`, those a client that registered `registered` may obtain (group selection is not a capability). */
export function withinRegisteredScopes(scopes: string[], registered: readonly string[]): string[] {
  return scopes.filter((s) => isGroupSelectionScope(s) || scopeCovered(s, registered));
}

/** The routes that answer with a client's registration (RFC 7591 §3.2.1, RFC 7592 §2). */
const REGISTRATION_RESPONSES = new Set(['registration', 'client', 'client_update']);

/**
 * `provider.use()` middleware: a registration answer shows the client its
 * `scope` as it registered it (capability scopes included), so that
 * oidc-gen asks for them and an update (RFC 7592 §2.2) sends them back.
 */
export function registrationResponseScope(registrationPath: string): (ctx: KoaContextWithOIDC, next: () => Promise<void>) => Promise<void> {
  const under = `${registrationPath}/`;
  // Every request to oidc-provider passes here: only the registration endpoint's go through an async frame.
  return (ctx, next) => (ctx.path === registrationPath || ctx.path.startsWith(under) ? showRegisteredScope(ctx, next) : next());
}

async function showRegisteredScope(ctx: KoaContextWithOIDC, next: () => Promise<void>): Promise<void> {
  await next();
  const body = ctx.body as Record<string, unknown> | undefined;
  if (!ctx.oidc || !REGISTRATION_RESPONSES.has(ctx.oidc.route) || !body || typeof body[RESOURCE_SCOPE] !== 'string') return;
  const { [RESOURCE_SCOPE]: resourceScope, ...rest } = body;
  ctx.body = { ...rest, scope: [...new Set([...String(body.scope ?? '').split(' '), ...String(resourceScope).split(' ')].filter(Boolean))].join(' ') };
}
