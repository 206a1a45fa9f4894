/**
 * The fixed names several parts of fedgate share: contract names (clients,
 * scopes, paths, groups a deployment relies on) kept in one place, below
 * every part that uses them (test/architecture/layers.ts).
 */

/** The scope of admin tokens, accepted only by the built-in admin API resource server. A contract name. */
export const ADMIN_SCOPE = 'fedgate.admin';

/**
 * The built-in client of the admin console (/admin): a public client (PKCE
 * S256) whose only redirect is `<issuer>/admin/callback`. A contract name.
 */
export const CONSOLE_CLIENT_ID = 'fedgate-console';
/** The admin API's path; `<issuer>/admin/api` is its audience. A contract name. */
export const ADMIN_API_PATH = '/admin/api';

/** The WLCG audience used when a WLCG-profile token is asked for no audience (WLCG profile §2.1.3). */
export const WLCG_ANY_AUDIENCE = 'https://wlcg.cern.ch/jwt/v1/any';

/**
 * WLCG profile §2.2.4 (host-based authorization): a client whose id is
 * `host:<fully.qualified.domain>` may obtain `host.auth` with client
 * credentials; its tokens' `sub` is that id, which resource providers
 * authorize on.
 */
export const HOST_AUTH_SCOPE = 'host.auth';
const HOST_CLIENT_ID = /^host:(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+$/;

/** Whether `clientId` names a host (`host:<fqdn>`, lower case, at least two labels). */
export function isHostClientId(clientId: string): boolean {
  return HOST_CLIENT_ID.test(clientId);
}

/** The group whose members administer fedgate (admin API, `/authz` explanations). A contract name. */
export const ADMIN_GROUP = '/admins';

/**
 * The built-in client of fedgate's own account page (/account): a public
 * client whose only redirect is the page's callback. It signs the user in to
 * fedgate itself, so it asks no consent.
 */
export const ACCOUNT_CLIENT_ID = 'fedgate-account';

/** The consent prompt's reason while the signed-in user has not accepted the current Acceptable Use Policy. */
export const AUP_REASON = 'aup_not_accepted';
