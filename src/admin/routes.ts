import { bodyParser } from '@koa/bodyparser';
import Router from '@koa/router';
import type { Context, Next } from 'koa';
import type Provider from 'oidc-provider';
import { z } from 'zod';
import { effectiveGroups, type Account, type Accounts } from '../accounts/accounts.ts';
import type { Groups } from '../accounts/groups.ts';
import type { PolicyService } from '../authz/policy-service.ts';
import type { Config } from '../config/schema.ts';
import type { Audit } from '../observability/audit.ts';
import { AccessDenied, GatewayError, InvalidToken, sendError, type Authenticated } from '../gateway/index.ts';
import type { Store } from '../store/store.ts';
import { initialAccessTokenHandle } from '../oidc/client-records.ts';
import { auditRoutes } from './audit.ts';
import { clientRoutes } from './clients.ts';
import { accountGrantRoutes } from './account-grants.ts';
import { overviewRoutes } from './overview.ts';
import type { KeySet } from '../keys/index.ts';
import { groupRoutes } from './groups.ts';
import { encodeCursor, pageRequest } from './pages.ts';
import { managerRoute, memberRoutes } from './members.ts';
import { managesGroup } from '../accounts/groups.ts';
import type { MembershipRequests, RegistrationRequests } from '../accounts/requests.ts';
import { caller, fail, type AdminCaller } from './http.ts';
import { policyRoutes } from './policies.ts';
import { resourceServerRoutes } from './resource-servers.ts';
import type { DataSources } from '../datasources/index.ts';
import { ADMIN_GROUP, ADMIN_SCOPE, CONSOLE_CLIENT_ID } from '../config/names.ts';
import { createInitialAccessToken } from '../oidc/initial-access-token.ts';

export interface AdminDeps {
  config: Config;
  store: Store;
  /** The signing keys in use (the overview shows them). */
  keys?: () => KeySet;
  accounts: Accounts;
  groups: Groups;
  policy: PolicyService;
  audit: Audit;
  provider: () => Provider;
  /**
   * The token check every resource of fedgate shares (the gateway's), for
   * the admin API's audience `<issuer>/admin/api`.
   */
  authenticate(ctx: Context): Promise<Authenticated>;
  /** Data sources (`/resource-servers`). */
  dataSources?: DataSources;
  /** Membership requests and self-registrations (`/requests`, `/registrations`). */
  requests: MembershipRequests;
  registrations: RegistrationRequests;
}

/** Members of this group (or its subgroups) administer fedgate. */

/** Issues an initial access token for dynamic client registration (RFC 7591 §3), good for one registration. */
export { createInitialAccessToken };

const accountView = (a: Account) => ({
  id: a.id,
  username: a.username,
  name: a.name,
  email: a.email,
  groups: a.groups,
  effective_groups: effectiveGroups(a.groups),
  disabled: a.disabled,
  identities: a.identities.map(({ type, issuer, subject, linkedAt }) => ({ type, issuer, subject, linked_at: linkedAt })),
  aup: a.aup ? { version: a.aup.version, acceptedAt: new Date(a.aup.acceptedAt * 1000).toISOString() } : null,
});

/**
 * The admin REST API (`/admin/api`), a resource server of its own: callers
 * present an access token for the audience `<issuer>/admin/api` with the
 * `fedgate.admin` scope (Bearer, or DPoP with its proof, or bound to their
 * certificate), issued to a member of /admins or, by client credentials, to
 * a configured administrative client.
 */
export function adminRoutes(deps: AdminDeps): Router {
  const { accounts, audit, config } = deps;
  const router = new Router({ prefix: '/admin/api' });
  // extendTypes is merged into the default list index by index (lodash.merge), so application/json is named again.
  const json = bodyParser({ enableTypes: ['json'], extendTypes: { json: ['application/json', 'application/merge-patch+json'] }, jsonLimit: '5mb', encoding: 'utf-8', parsedMethods: ['POST', 'PUT', 'PATCH', 'DELETE'] });

  const configuredClients = new Set(config.clients.map((c) => c.clientId));
  const adminClients = new Set(config.clients.filter((c) => c.scopes?.includes(ADMIN_SCOPE)).map((c) => c.clientId));
  /**
   * Who an authenticated token speaks for, if it is an admin token: never
   * an exchanged token or one of a dynamically registered client; the
   * `fedgate.admin` scope; a user in /admins as of now (membership is
   * re-read whenever it changes) or a manager of a group as of now (only
   * the routes of {@link managerRoute}), or an administrative client.
   */
  const admit = async ({ identity, scheme }: Authenticated): Promise<AdminCaller> => {
    const refuse = (err: GatewayError) => {
      err.scheme = scheme;
      return err;
    };
    if (identity.exchanged) throw refuse(new InvalidToken('an exchanged access token is never an admin token'));
    // The console's built-in client signs users in for themselves (the scope policy gave them the scope).
    if (!configuredClients.has(identity.clientId) && !(identity.clientId === CONSOLE_CLIENT_ID && identity.accountId)) {
      throw refuse(new InvalidToken('the access token was not issued to a configured client'));
    }
    if (!identity.scopes.includes(ADMIN_SCOPE)) throw refuse(new AccessDenied(`the ${ADMIN_SCOPE} scope is required`, [ADMIN_SCOPE]));
    if (identity.accountId) {
      const actor = { actor: identity.accountId, label: identity.username ?? identity.accountId };
      if (identity.effectiveGroups.includes(ADMIN_GROUP)) return { ...actor, admin: true, manages: [] };
      const manages = await deps.groups.managedBy(identity.accountId);
      if (!manages.length) throw refuse(new AccessDenied(`membership of ${ADMIN_GROUP} is required`));
      return { ...actor, admin: false, manages };
    }
    if (!adminClients.has(identity.clientId)) throw refuse(new AccessDenied(`the ${ADMIN_SCOPE} scope of an administrative client is required`));
    return { actor: `client:${identity.clientId}`, label: `client:${identity.clientId}`, admin: true, manages: [] };
  };
  /** A group manager calls only the member routes of the groups they manage; null when allowed. */
  const managerRefusal = (ctx: Context, me: AdminCaller): GatewayError | null => {
    if (me.admin) return null;
    const route = managerRoute(ctx.method, ctx.path.slice(router.opts.prefix!.length));
    if (route === 'own') return null;
    if (route && managesGroup(me.manages, route.group)) return null;
    // An administrator's route: the token's fedgate.admin is a manager's, not enough here (RFC 6750 insufficient_scope).
    return route ? new AccessDenied(`you manage neither ${route.group} nor a group above it`) : new AccessDenied(`membership of ${ADMIN_GROUP} is required`, [ADMIN_SCOPE]);
  };

  router.use(async (ctx: Context, next: Next) => {
    ctx.set('Cache-Control', 'no-store');
    try {
      const authenticated = await deps.authenticate(ctx);
      ctx.state.admin = await admit(authenticated);
      const refusal = managerRefusal(ctx, ctx.state.admin as AdminCaller);
      if (refusal) {
        refusal.scheme = authenticated.scheme;
        throw refusal;
      }
    } catch (err) {
      if (err instanceof GatewayError) return sendError(ctx, err);
      throw err;
    }
    try {
      await next();
    } catch (err) {
      const status = (err as { status?: number }).status;
      if (status === 413) return fail(ctx, 413, 'invalid_request', 'the request body is too large');
      if (status && status >= 400 && status < 500) return fail(ctx, status, 'invalid_request', 'the request body could not be read');
      throw err;
    }
  });

  router.post('/initial-access-tokens', json, async (ctx) => {
    const parsed = z.object({ ttl: z.number().int().min(60).max(30 * 24 * 3600).optional() }).strict()
      .safeParse(ctx.request.body ?? {});
    if (!parsed.success) return fail(ctx, 400, 'invalid_request', parsed.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; '));
    if (!config.registration.enabled) return fail(ctx, 400, 'invalid_request', 'dynamic client registration is disabled');
    const { token, expiresAt } = await createInitialAccessToken(deps.provider(), parsed.data.ttl ?? config.registration.initialAccessTokenTtl);
    const id = initialAccessTokenHandle(token);
    await audit.record({ type: 'admin.change', actor: caller(ctx).actor, outcome: 'success', ip: ctx.ip, target: 'initial-access-token', detail: { action: 'create', id, expires_at: expiresAt } });
    ctx.status = 201;
    ctx.body = { initial_access_token: token, id, expires_at: expiresAt, registration_endpoint: `${config.issuer}/reg` };
  });

  router.get('/accounts', async (ctx) => {
    const page = pageRequest(ctx);
    if (!page) return;
    if (page.paged) {
      // One page, searched in the store (username, name, email): never every account read.
      const [{ accounts: found, next }, total] = await Promise.all([
        accounts.page({ q: page.q, after: page.after, limit: page.limit }),
        page.q ? undefined : accounts.count(),
      ]);
      ctx.body = { accounts: found.map(accountView), next: encodeCursor(next), ...(total === undefined ? {} : { total }) };
      return;
    }
    ctx.body = { accounts: (await accounts.list()).map(accountView) };
  });

  router.get('/accounts/:username', async (ctx) => {
    const account = await accounts.findByUsername(ctx.params.username!);
    if (!account) return fail(ctx, 404, 'not_found', 'no such account');
    ctx.body = accountView(account);
  });

  router.patch('/accounts/:username', json, async (ctx) => {
    const parsed = z.object({ disabled: z.boolean() }).strict().safeParse(ctx.request.body ?? {});
    if (!parsed.success) return fail(ctx, 400, 'invalid_request', parsed.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; '));
    const before = await accounts.findByUsername(ctx.params.username!);
    if (!before) return fail(ctx, 404, 'not_found', 'no such account');
    const after = await accounts.setDisabled(before.id, parsed.data.disabled);
    await audit.record({
      type: parsed.data.disabled ? 'account.disabled' : 'account.enabled', actor: caller(ctx).actor, outcome: 'success', ip: ctx.ip,
      target: before.id, detail: { before: { disabled: before.disabled }, after: { disabled: after.disabled } },
    });
    ctx.body = accountView(after);
  });

  const csv = bodyParser({ enableTypes: ['text'], extendTypes: { text: ['text/csv'] }, textLimit: '20mb', encoding: 'utf-8' });
  const groupRouter = groupRoutes({ accounts, groups: deps.groups, policy: deps.policy, audit, json });
  const policyRouter = policyRoutes({ accounts, policy: deps.policy, audit, json, csv });
  const memberRouter = memberRoutes({ accounts, groups: deps.groups, audit, requests: deps.requests, registrations: deps.registrations, json });
  router.use(memberRouter.routes(), memberRouter.allowedMethods());
  router.use(groupRouter.routes(), groupRouter.allowedMethods());
  router.use(policyRouter.routes(), policyRouter.allowedMethods());
  if (deps.dataSources) {
    const resourceServerRouter = resourceServerRoutes({ issuer: config.issuer, dataSources: deps.dataSources, json });
    router.use(resourceServerRouter.routes(), resourceServerRouter.allowedMethods());
  }

  const overviewRouter = overviewRoutes({
    config, store: deps.store, accounts, groups: deps.groups, audit, keys: deps.keys,
    dataSourceCount: deps.dataSources ? () => deps.dataSources!.list().length : undefined,
  });
  router.use(overviewRouter.routes(), overviewRouter.allowedMethods());
  const grantRouter = accountGrantRoutes({ store: deps.store, accounts, audit });
  router.use(grantRouter.routes(), grantRouter.allowedMethods());
  const clientRouter = clientRoutes({ store: deps.store, audit, provider: deps.provider, configured: config.clients, json });
  router.use(clientRouter.routes(), clientRouter.allowedMethods());
  const auditRouter = auditRoutes({ accounts, audit });
  router.use(auditRouter.routes(), auditRouter.allowedMethods());

  return router;
}
