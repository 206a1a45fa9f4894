import type { Account } from '../accounts/accounts.ts';
import { effectiveGroups } from '../accounts/accounts.ts';
import type { Config, TokenProfile } from '../config/schema.ts';
import { requestedWlcgGroups } from '../scopes/wlcg.ts';

/** Which claims each OIDC scope releases (ID token and userinfo). */
export const SCOPE_CLAIMS = {
  openid: ['sub'],
  profile: ['name', 'preferred_username', 'updated_at'],
  email: ['email', 'email_verified'],
  groups: ['groups'],
  'wlcg.groups': ['wlcg.groups'],
  eduperson_entitlement: ['eduperson_entitlement'],
  // AARC-G080 (AARC profile for OIDC claims): the community identifier (AARC-G026) and identity assurance (AARC-G021).
  voperson_id: ['voperson_id'],
  eduperson_assurance: ['eduperson_assurance'],
  aarc: ['voperson_id', 'eduperson_entitlement', 'eduperson_assurance'],
} as const;

/**
 * RFC 8141 §2: what an NSS may hold as it is (pchar without `:`, which
 * separates AARC-G069 group levels, and `/`); anything else in a group name is
 * percent-encoded (AARC-G069 §4, "Encoding").
 */
const URN_NSS_SAFE = /[A-Za-z0-9\-._~!$&'()*+,;=@]/;

function encodeUrnSegment(segment: string): string {
  let out = '';
  for (const char of segment) {
    out += URN_NSS_SAFE.test(char) ? char : [...Buffer.from(char, 'utf8')].map((b) => `%${b.toString(16).toUpperCase().padStart(2, '0')}`).join('');
  }
  return out;
}

/**
 * AARC-G069 entitlement for a group membership:
 * `<namespace>:group:<group>[:<subgroup>...]#<group-authority>`, each level
 * encoded per RFC 8141; no `role=` part, so the role is `member` (AARC-G069
 * §4). Every effective group gets one value, parents included.
 */
export function aarcEntitlement(group: string, aarc: Config['aarc']): string {
  const parts = group.split('/').filter(Boolean).map(encodeUrnSegment);
  return `${aarc.entitlementNamespace}:group:${parts.join(':')}#${aarc.groupAuthority}`;
}

/**
 * AARC-G026 community identifier (`voperson_id`): the account's permanent,
 * never reassigned id, scoped by the group authority (`<id>@<authority>`).
 */
export function vopersonId(account: Pick<Account, 'id'>, aarc: Config['aarc']): string {
  return `${account.id}@${aarc.groupAuthority}`;
}

/**
 * WLCG profile §3.1: explicitly requested groups come first, in request order,
 * and only if the account is a member; bare `wlcg.groups` adds all others.
 */
export function wlcgGroups(groups: readonly string[], scopes: Iterable<string>): string[] | undefined {
  const { all, explicit } = requestedWlcgGroups(scopes);
  if (!all && explicit.length === 0) return undefined;
  const member = new Set(groups);
  const out = explicit.filter((g) => member.has(g));
  if (all) for (const g of groups) if (!out.includes(g)) out.push(g);
  return out;
}

/** Every claim an account can release; oidc-provider filters them by scope and claims request. */
export function accountClaims(account: Account, config: Config, scopes: Iterable<string>): Record<string, unknown> {
  const groups = effectiveGroups(account.groups);
  return {
    sub: account.id,
    name: account.name,
    preferred_username: account.username,
    updated_at: account.updatedAt,
    email: account.email,
    email_verified: account.email ? false : undefined,
    groups,
    'wlcg.groups': wlcgGroups(groups, scopes) ?? groups,
    eduperson_entitlement: groups.map((g) => aarcEntitlement(g, config.aarc)),
    voperson_id: vopersonId(account, config.aarc),
    eduperson_assurance: account.assurance?.length ? account.assurance : undefined,
  };
}

/**
 * The profile-specific claims of an access token (RFC 9068 JWT or opaque,
 * where they show at introspection). `account` is undefined for client
 * credentials tokens.
 */
export function profileTokenClaims(
  profile: TokenProfile,
  account: Account | undefined,
  scopes: Iterable<string>,
  config: Config,
): Record<string, unknown> {
  const groups = account ? effectiveGroups(account.groups) : [];
  switch (profile) {
    case 'wlcg': {
      const claims: Record<string, unknown> = { 'wlcg.ver': '1.0' };
      const selected = account ? wlcgGroups(groups, scopes) : undefined;
      if (selected) claims['wlcg.groups'] = selected;
      // WLCG profile §2.3: identity assurance whenever a user authentication flow is behind the token.
      if (account?.assurance?.length) claims.eduperson_assurance = account.assurance;
      return claims;
    }
    case 'aarc':
      // AARC-G080: entitlements (AARC-G069), the community identifier (AARC-G026) and assurance (AARC-G021).
      return account ? {
        eduperson_entitlement: groups.map((g) => aarcEntitlement(g, config.aarc)),
        voperson_id: vopersonId(account, config.aarc),
        ...(account.assurance?.length ? { eduperson_assurance: account.assurance } : {}),
      } : {};
    case 'groups':
      return account ? { groups } : {};
  }
}
