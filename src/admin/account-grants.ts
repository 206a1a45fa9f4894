import Router from '@koa/router';
import type { Accounts } from '../accounts/accounts.ts';
import { accountGrantsKey, artifactKey, EXCHANGED_GRANT_PREFIX, revokeGrant } from '../grants/grants.ts';
import type { Audit } from '../observability/audit.ts';
import type { Store } from '../store/store.ts';
import { caller, fail } from './http.ts';

export interface AccountGrantRoutesDeps {
  store: Store;
  accounts: Accounts;
  audit: Audit;
}

/** A grant as oidc-provider stores it (the parts shown). */
interface GrantPayload {
  accountId?: string;
  clientId?: string;
  iat?: number;
  exp?: number;
  openid?: { scope?: string };
  resources?: Record<string, string>;
}

/** A live grant as the admin API shows it. */
export interface GrantView {
  id: string;
  client_id: string;
  /** OIDC scopes (`openid profile offline_access`…). */
  scope: string;
  /** Scopes per audience (resource indicator). */
  resources: Record<string, string>;
  created_at: number | null;
  expires_at: number | null;
}

/** The most grants one account's list shows (an account holds one grant per client it signed in to, give or take). */
const MAX_GRANTS = 1000;
/** Grant ids are oidc-provider's (nanoid, base64url). */
const GRANT_ID = /^[A-Za-z0-9_-]{1,128}$/;

/**
 * `/admin/api/accounts/:username/grants`: the live grants of an account
 * (what it allowed which client, read from the account's grant index), and
 * the revocation of one: the grant with every token issued from it and the
 * grants token exchange derived from them (`revokeGrant`, as oidc-provider's
 * revocation and a disable revoke them).
 */
export function accountGrantRoutes(deps: AccountGrantRoutesDeps): Router {
  const { store, accounts, audit } = deps;
  const router = new Router();

  router.get('/accounts/:username/grants', async (ctx) => {
    const account = await accounts.findByUsername(ctx.params.username!);
    if (!account) return fail(ctx, 404, 'not_found', 'no such account');
    const ids = (await store.setMembers(accountGrantsKey(account.id))).slice(0, MAX_GRANTS);
    const payloads = await Promise.all(ids.map((id) => store.get<GrantPayload>(artifactKey('Grant', id))));
    const now = Date.now() / 1000;
    const grants: GrantView[] = [];
    ids.forEach((id, i) => {
      const grant = payloads[i];
      // Expired or revoked meanwhile: the index entry outlives it until the set's own expiry.
      if (!grant || grant.accountId !== account.id || (grant.exp !== undefined && grant.exp <= now)) return;
      grants.push({
        id,
        client_id: grant.clientId ?? '',
        scope: grant.openid?.scope ?? '',
        resources: { ...grant.resources },
        created_at: grant.iat ?? null,
        expires_at: grant.exp ?? null,
      });
    });
    grants.sort((a, b) => (b.created_at ?? 0) - (a.created_at ?? 0) || (a.id < b.id ? -1 : 1));
    ctx.body = { username: account.username, grants };
  });

  router.delete('/accounts/:username/grants/:grantId', async (ctx) => {
    const grantId = ctx.params.grantId!;
    const account = await accounts.findByUsername(ctx.params.username!);
    if (!account) return fail(ctx, 404, 'not_found', 'no such account');
    const grant = GRANT_ID.test(grantId) && !grantId.startsWith(EXCHANGED_GRANT_PREFIX)
      ? await store.get<GrantPayload>(artifactKey('Grant', grantId))
      : undefined;
    if (!grant || grant.accountId !== account.id) return fail(ctx, 404, 'not_found', `${account.username} holds no grant ${grantId}`);
    await revokeGrant(store, grantId);
    await audit.record({
      type: 'grant.revoked', actor: caller(ctx).actor, outcome: 'success', ip: ctx.ip, client: grant.clientId, target: account.id,
      detail: { grant: grantId, username: account.username, scope: grant.openid?.scope, resources: grant.resources },
    });
    ctx.status = 204;
  });

  return router;
}
