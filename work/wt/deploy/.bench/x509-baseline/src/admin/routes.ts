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
import { ADMIN_SCOPE } from '../oidc/provider.ts';
import { groupRoutes } from './groups.ts';
import { caller, fail, type AdminCaller } from './http.ts';
import { policyRoutes } from './policies.ts';
import { resourceServerRoutes } from './resource-servers.ts';
import type { DataSources } from '../datasources/index.ts';

export interface AdminDeps {
  config: Config;
  accounts: Accounts;
  groups: Groups;
  policy: PolicyService;
  audit: Audit;
  provider: () => Provider;
  /** Data sources (`/resource-servers`). */
  dataSources?: DataSources;
}

/** Members of this group (or its subgroups) administer fedgate. */
export const ADMIN_GROUP = '/admins';
export { ADMIN_SCOPE };

/** Issues an initial access token for dynamic client registration (RFC 7591 §3). */
export async function createInitialAccessToken(provider: Provider, ttlSeconds: number): Promise<{ token: string; expiresAt: number }> {
  const iat = new provider.InitialAccessToken({ expiresIn: ttlSeconds });
  const token = await iat.save();
  return { token, expiresAt: Math.floor(Date.now() / 1000) + ttlSeconds };
}

const accountView = (a: Account) => ({
  id: a.id,
  username: a.username,
  name: a.name,
  email: a.email,
  groups: a.groups,
  effective_groups: effectiveGroups(a.groups),
  disabled: a.disabled,
  identities: a.identities.map(({ type, issuer, subject }) => ({ type, issuer, subject })),
});

/**
 * The admin REST API (`/admin/api`): callers present a bearer access token
 * fedgate issued to a member of /admins, or a client credentials token with
 * the fedgate.admin scope of a configured administrative client.
 */
export function adminRoutes(deps: AdminDeps): Router {
  const { accounts, audit, config } = deps;
  const router = new Router({ prefix: '/admin/api' });
  // extendTypes is merged into the default list index by index (lodash.merge), so application/json is named again.
  const json = bodyParser({ enableTypes: ['json'], extendTypes: { json: ['application/json', 'application/merge-patch+json'] }, jsonLimit: '5mb', encoding: 'utf-8', parsedMethods: ['POST', 'PUT', 'PATCH', 'DELETE'] });

  const adminClients = new Set(config.clients.filter((c) => c.scopes?.includes(ADMIN_SCOPE)).map((c) => c.clientId));
  /** The caller behind a bearer token, or a reason to refuse it. */
  const authenticate = async (value: string): Promise<AdminCaller | { status: 401 | 403; reason: string }> => {
    const invalid = { status: 401 as const, reason: 'the access token is invalid, expired or revoked' };
    const provider = deps.provider();
    const token = await provider.AccessToken.find(value).catch(() => undefined);
    if (token?.accountId) {
      const account = await accounts.findById(token.accountId);
      if (!account || account.disabled) return invalid;
      if (!effectiveGroups(account.groups).includes(ADMIN_GROUP)) return { status: 403, reason: `membership of ${ADMIN_GROUP} is required` };
      return { actor: account.id, label: account.username };
    }
    const clientToken = token ? undefined : await provider.ClientCredentials.find(value).catch(() => undefined);
    if (!clientToken) return invalid;
    const scopes = String(clientToken.scope ?? '').split(' ');
    if (!scopes.includes(ADMIN_SCOPE) || !adminClients.has(clientToken.clientId ?? '')) return { status: 403, reason: `the ${ADMIN_SCOPE} scope of an administrative client is required` };
    return { actor: `client:${clientToken.clientId}`, label: `client:${clientToken.clientId}` };
  };

  router.use(async (ctx: Context, next: Next) => {
    ctx.set('Cache-Control', 'no-store');
    const header = ctx.get('authorization');
    const match = /^Bearer ([A-Za-z0-9._~+/-]+=*)$/i.exec(header);
    if (!match) return fail(ctx, 401, 'invalid_request', 'a bearer access token is required');
    const who = await authenticate(match[1]!);
    if ('status' in who) return fail(ctx, who.status, who.status === 401 ? 'invalid_token' : 'insufficient_scope', who.reason);
    ctx.state.admin = who;
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
    await audit.record({ type: 'admin.change', actor: caller(ctx).actor, outcome: 'success', ip: ctx.ip, target: 'initial-access-token', detail: { action: 'create', expires_at: expiresAt } });
    ctx.status = 201;
    ctx.body = { initial_access_token: token, expires_at: expiresAt, registration_endpoint: `${config.issuer}/reg` };
  });

  router.get('/accounts', async (ctx) => {
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
  router.use(groupRouter.routes(), groupRouter.allowedMethods());
  router.use(policyRouter.routes(), policyRouter.allowedMethods());
  if (deps.dataSources) {
    const resourceServerRouter = resourceServerRoutes({ issuer: config.issuer, dataSources: deps.dataSources, json });
    router.use(resourceServerRouter.routes(), resourceServerRouter.allowedMethods());
  }

  router.get('/audit', async (ctx) => {
    const limit = Math.min(Math.max(Number.parseInt(String(ctx.query.limit ?? '100'), 10) || 100, 1), 1000);
    ctx.body = { events: await audit.recent(limit) };
  });

  return router;
}
