import type { Account } from '../accounts/accounts.ts';
import { effectiveGroups } from '../accounts/accounts.ts';
import type { Config, TokenProfile } from '../config/schema.ts';
import { requestedWlcgGroups } from './resource-servers.ts';

/** Which claims each OIDC scope releases (ID token and userinfo). */
export const SCOPE_CLAIMS = {
  openid: ['sub'],
  profile: ['name', 'preferred_username', 'updated_at'],
  email: ['email', 'email_verified'],
  groups: ['groups'],
  'wlcg.groups': ['wlcg.groups'],
  eduperson_entitlement: ['eduperson_entitlement'],
} as const;

/**
 * AARC-G002 entitlement for a group:
 * `<namespace>:group:<group>[:<subgroup>...]#<authority>`.
 */
export function aarcEntitlement(group: string, aarc: Config['aarc']): string {
  const parts = group.split('/').filter(Boolean).map(encodeURIComponent);
  return `${aarc.entitlementNamespace}:group:${parts.join(':')}#${aarc.groupAuthority}`;
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
      return claims;
    }
    case 'aarc':
      return account ? { eduperson_entitlement: groups.map((g) => aarcEntitlement(g, config.aarc)) } : {};
    case 'groups':
      return account ? { groups } : {};
  }
}
