import { randomBytes } from 'node:crypto';
import Router from '@koa/router';
import type { Context, Middleware } from 'koa';
import type Provider from 'oidc-provider';
import type { AdapterPayload } from 'oidc-provider';
import { z } from 'zod';
import type { ClientConfig } from '../config/schema.ts';
import type { Audit } from '../observability/audit.ts';
import { artifactKey } from '../grants/grants.ts';
import { StoreAdapter } from '../oidc/adapter.ts';
import {
  CLIENT_DISABLED, CLIENT_INDEX, clientIdOfMember, clientIndexAfter, initialAccessTokenOf, initialAccessTokenPage,
} from '../oidc/client-records.ts';

import type { Store } from '../store/store.ts';
import { indexPage } from '../store/index-page.ts';
import { compareUtf8 } from '../store/values.ts';
import { caller, fail, parseBody } from './http.ts';
import { encodeCursor, pageRequest } from './pages.ts';
import { ACCOUNT_CLIENT_ID, ADMIN_SCOPE, CONSOLE_CLIENT_ID } from '../config/names.ts';

export interface ClientRoutesDeps {
  store: Store;
  audit: Audit;
  provider: () => Provider;
  /** The configured (YAML) clients: listed, read-only here. */
  configured: readonly ClientConfig[];
  json: Middleware;
}

/** The grant type names clients are created with, as the configuration names them, and their wire values. */
const GRANT_TYPES: Record<string, string> = {
  authorization_code: 'authorization_code',
  refresh_token: 'refresh_token',
  device_code: 'urn:ietf:params:oauth:grant-type:device_code',
  'urn:ietf:params:oauth:grant-type:device_code': 'urn:ietf:params:oauth:grant-type:device_code',
  client_credentials: 'client_credentials',
  token_exchange: 'urn:ietf:params:oauth:grant-type:token-exchange',
  'urn:ietf:params:oauth:grant-type:token-exchange': 'urn:ietf:params:oauth:grant-type:token-exchange',
};
/** Secret methods whose secret the admin API can rotate. */
const SECRET_METHODS = new Set(['client_secret_basic', 'client_secret_post', 'client_secret_jwt']);
/** oidc-provider's route name for a registration: the metadata validator then applies registration's rules. */
const AS_REGISTRATION = { oidc: { route: 'registration' } };
const MAX_CAS_ATTEMPTS = 20;
/** fedgate's own clients (the account page, the console): never created, listed or changed here. */
const BUILT_IN = new Set([ACCOUNT_CLIENT_ID, CONSOLE_CLIENT_ID]);

const newClientSchema = z.object({
  client_id: z.string().min(1).max(200).regex(/^[\x21-\x7e]+$/, 'must be printable ASCII without spaces').optional(),
  client_name: z.string().min(1).max(200),
  public: z.boolean(),
  redirect_uris: z.array(z.string().max(2000)).max(50).default([]),
  grant_types: z.array(z.enum(Object.keys(GRANT_TYPES) as [string, ...string[]])).min(1).max(10).default(['authorization_code']),
  scope: z.string().max(4000).optional(),
}).strict();

/** A client as the admin API shows it (never its secret). */
export interface ClientView {
  client_id: string;
  client_name: string;
  /** From the configuration file: read-only here. */
  configured: boolean;
  /** `data_source`: a data source's introspection client, changed through its data source. */
  managed_by?: string;
  public: boolean;
  token_endpoint_auth_method: string;
  redirect_uris: string[];
  grant_types: string[];
  scope: string;
  disabled: boolean;
  client_id_issued_at?: number;
}

/** oidc-provider's Client constructor as it is (its types leave out the context argument). */
type ClientConstructor = new (metadata: Record<string, unknown>, ctx: unknown) => { metadata(): Record<string, unknown> };

/** Clients are stored without expiry, as oidc-provider's registration does. */
const NO_EXPIRY = undefined as unknown as number;

/** A fresh client secret: 256 bits, base64url (as data source introspection clients get). */
function newSecret(): string {
  return randomBytes(32).toString('base64url');
}

/**
 * `/admin/api/clients` and `/admin/api/initial-access-tokens`.
 *
 * Configured clients (the YAML `clients`) are listed and readable but
 * read-only here: the configuration is their truth and every replica reads
 * it at start, so a change made here would not reach replicas started later
 * (409 `read_only`). Data source introspection clients are changed through
 * their data source (409 `managed_by_data_source`). Clients created here
 * are stored as dynamically registered ones are (`oidc:Client:<id>`, secret
 * as oidc-provider keeps it), validated by the same rules as a registration.
 */
export function clientRoutes(deps: ClientRoutesDeps): Router {
  const { store, audit, json } = deps;
  const router = new Router();
  const configured = [...deps.configured].sort((a, b) => compareUtf8(a.clientId, b.clientId));
  const configuredById = new Map(configured.map((c) => [c.clientId, c]));
  const clients = new StoreAdapter('Client', store);

  const record = (ctx: Context, type: string, target: string, detail: Record<string, unknown>) =>
    audit.record({ type, actor: caller(ctx).actor, outcome: 'success', ip: ctx.ip, client: target, target, detail });

  const configuredView = (c: ClientConfig): ClientView => ({
    client_id: c.clientId,
    client_name: c.name ?? c.clientId,
    configured: true,
    public: !c.clientSecret && (c.tokenEndpointAuthMethod ?? 'none') === 'none',
    token_endpoint_auth_method: c.tokenEndpointAuthMethod ?? (c.clientSecret ? 'client_secret_basic' : 'none'),
    redirect_uris: c.redirectUris,
    grant_types: c.grantTypes,
    scope: (c.scopes ?? []).join(' '),
    disabled: false,
  });
  const storedView = (p: AdapterPayload): ClientView => {
    const raw = p as Record<string, unknown>;
    const method = String(p.token_endpoint_auth_method ?? 'client_secret_basic');
    return {
      client_id: String(p.client_id),
      client_name: String(p.client_name ?? p.client_id),
      configured: false,
      ...(introspectionClient(p) ? { managed_by: 'data_source' } : {}),
      public: method === 'none',
      token_endpoint_auth_method: method,
      redirect_uris: (p.redirect_uris as string[] | undefined) ?? [],
      grant_types: (p.grant_types as string[] | undefined) ?? [],
      scope: [p.scope, raw.resource_scope].filter((s) => typeof s === 'string' && s).join(' '),
      disabled: raw[CLIENT_DISABLED] === true,
      ...(typeof raw.client_id_issued_at === 'number' ? { client_id_issued_at: raw.client_id_issued_at } : {}),
    };
  };
  /** A data source's introspection client (src/datasources/introspection-client.ts): no grant, no response type. */
  const introspectionClient = (p: AdapterPayload) => String(p.client_id).startsWith('introspect-') && !(p.grant_types as unknown[] | undefined)?.length;
  const stored = (id: string) => store.get<AdapterPayload>(artifactKey('Client', id));

  /**
   * Changes a stored client in one compare-and-set (a concurrent disable and
   * rotation both land); undefined when it is gone.
   */
  const update = async (id: string, change: (p: Record<string, unknown>) => void): Promise<{ before: AdapterPayload; after: AdapterPayload } | undefined> => {
    for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt += 1) {
      const before = await stored(id);
      if (!before) return undefined;
      const after = structuredClone(before) as Record<string, unknown>;
      change(after);
      if (await store.compareAndSet(artifactKey('Client', id), before, after)) return { before, after: after as AdapterPayload };
    }
    throw new Error(`client ${id} kept changing; the update was not written`);
  };

  /** Answers 404 or 409 unless `id` is a stored client the admin API may change; returns its payload. */
  const changeable = async (ctx: Context, id: string): Promise<AdapterPayload | undefined> => {
    if (configuredById.has(id)) {
      fail(ctx, 409, 'read_only', `client ${id} is configured (the configuration file's clients); change it there`);
      return undefined;
    }
    const payload = await stored(id);
    if (!payload) {
      fail(ctx, 404, 'not_found', `client ${id} does not exist`);
      return undefined;
    }
    if (introspectionClient(payload)) {
      fail(ctx, 409, 'managed_by_data_source', `client ${id} is a data source's introspection client; rotate or remove it through /admin/api/resource-servers`);
      return undefined;
    }
    return payload;
  };

  router.get('/clients', async (ctx) => {
    const page = pageRequest(ctx);
    if (!page) return;
    const q = page.q?.toLowerCase();
    const matches = (c: ClientConfig) => !q || c.clientId.toLowerCase().includes(q) || (c.name ?? '').toLowerCase().includes(q);
    // Stored clients from the index (searched there), merged in id order with the configured ones.
    // One more than the page, so that a stored client right after it is known to exist.
    const scan = await indexPage(store, CLIENT_INDEX, { after: page.after === undefined ? undefined : clientIndexAfter(page.after), contains: q, limit: page.limit + 1 });
    const found = scan.members.map(clientIdOfMember);
    const position = scan.next === undefined ? undefined : clientIdOfMember(scan.next);
    const fromConfig = configured.filter((c) => (page.after === undefined || compareUtf8(c.clientId, page.after) > 0)
      && (position === undefined || compareUtf8(c.clientId, position) <= 0) && matches(c));
    const ids = [...new Set([...fromConfig.map((c) => c.clientId), ...found])].sort(compareUtf8);
    const shown = ids.slice(0, page.limit);
    const next = ids.length > page.limit ? shown.at(-1) : position;
    const payloads = await Promise.all(shown.map((id) => (configuredById.has(id) ? undefined : stored(id))));
    const clients = shown.flatMap((id, i) => {
      const c = configuredById.get(id);
      if (c) return [configuredView(c)];
      return payloads[i] ? [storedView(payloads[i])] : [];
    });
    const total = q ? undefined : configured.length + await store.indexSize(CLIENT_INDEX);
    ctx.body = { clients, next: encodeCursor(next), ...(total === undefined ? {} : { total }) };
  });

  router.post('/clients', json, async (ctx) => {
    const body = parseBody(ctx, newClientSchema);
    if (!body) return;
    const provider = deps.provider();
    const clientId = body.client_id ?? `client-${randomBytes(12).toString('base64url')}`;
    if (body.scope?.split(' ').includes(ADMIN_SCOPE)) return fail(ctx, 400, 'invalid_client_metadata', `scope ${ADMIN_SCOPE} is only for configured clients`);
    if (configuredById.has(clientId) || BUILT_IN.has(clientId) || await stored(clientId)) return fail(ctx, 409, 'client_exists', `client ${clientId} already exists`);
    const grantTypes = [...new Set(body.grant_types.map((g) => GRANT_TYPES[g]!))];
    const secret = body.public ? undefined : newSecret();
    const metadata: Record<string, unknown> = {
      client_id: clientId,
      client_id_issued_at: Math.floor(Date.now() / 1000),
      client_name: body.client_name,
      redirect_uris: body.redirect_uris,
      grant_types: grantTypes,
      response_types: grantTypes.includes('authorization_code') ? ['code'] : [],
      token_endpoint_auth_method: body.public ? 'none' : 'client_secret_basic',
      ...(secret ? { client_secret: secret, client_secret_expires_at: 0 } : {}),
      ...(body.scope ? { scope: body.scope } : {}),
    };
    let client: { metadata(): Record<string, unknown> };
    try {
      // oidc-provider's own checks of client metadata, with the registration rules of fedgate's validator.
      client = new (provider.Client as unknown as ClientConstructor)(metadata, AS_REGISTRATION);
    } catch (err) {
      const e = err as { error?: string; error_description?: string; message?: string };
      if (e.error) return fail(ctx, 400, e.error, e.error_description ?? e.message ?? 'invalid client metadata');
      throw err;
    }
    // Written as oidc-provider's registration writes a client (its adapter, the client's own metadata).
    await clients.upsert(clientId, client.metadata() as AdapterPayload, NO_EXPIRY);
    const view = storedView((await stored(clientId))!);
    await record(ctx, 'client.created', clientId, { before: null, after: view });
    ctx.status = 201;
    ctx.body = { ...view, ...(secret ? { client_secret: secret } : {}) };
  });

  router.get('/clients/:id', async (ctx) => {
    const id = ctx.params.id!;
    const c = configuredById.get(id);
    if (c) {
      ctx.body = configuredView(c);
      return;
    }
    const payload = await stored(id);
    if (!payload) return fail(ctx, 404, 'not_found', `client ${id} does not exist`);
    ctx.body = storedView(payload);
  });

  router.patch('/clients/:id', json, async (ctx) => {
    const body = parseBody(ctx, z.object({ disabled: z.boolean() }).strict());
    if (!body) return;
    const id = ctx.params.id!;
    if (!(await changeable(ctx, id))) return;
    const changed = await update(id, (p) => {
      if (body.disabled) p[CLIENT_DISABLED] = true;
      else delete p[CLIENT_DISABLED];
    });
    if (!changed) return fail(ctx, 404, 'not_found', `client ${id} does not exist`);
    const before = storedView(changed.before);
    await record(ctx, body.disabled ? 'client.disabled' : 'client.enabled', id, { before: { disabled: before.disabled }, after: { disabled: body.disabled } });
    ctx.body = storedView(changed.after);
  });

  router.post('/clients/:id/secret', async (ctx) => {
    const id = ctx.params.id!;
    const payload = await changeable(ctx, id);
    if (!payload) return;
    if (!SECRET_METHODS.has(String(payload.token_endpoint_auth_method ?? 'client_secret_basic'))) {
      return fail(ctx, 409, 'no_secret', `client ${id} authenticates without a shared secret (${String(payload.token_endpoint_auth_method)})`);
    }
    const secret = newSecret();
    const changed = await update(id, (p) => { p.client_secret = secret; });
    if (!changed) return fail(ctx, 404, 'not_found', `client ${id} does not exist`);
    await record(ctx, 'client.secret_rotated', id, {});
    ctx.body = { ...storedView(changed.after), client_secret: secret };
  });

  router.delete('/clients/:id', async (ctx) => {
    const id = ctx.params.id!;
    const payload = await changeable(ctx, id);
    if (!payload) return;
    await clients.destroy(id);
    await record(ctx, 'client.deleted', id, { before: storedView(payload), after: null });
    ctx.status = 204;
  });

  router.get('/initial-access-tokens', async (ctx) => {
    const page = pageRequest(ctx);
    if (!page) return;
    const { tokens, next } = await initialAccessTokenPage(store, page.after, page.limit);
    ctx.body = { initial_access_tokens: tokens, next: encodeCursor(next) };
  });

  router.delete('/initial-access-tokens/:id', async (ctx) => {
    const handle = ctx.params.id!;
    const token = await initialAccessTokenOf(store, handle);
    if (!token) return fail(ctx, 404, 'not_found', 'no such initial access token (used, expired or revoked)');
    await new StoreAdapter('InitialAccessToken', store).destroy(token);
    await audit.record({ type: 'admin.change', actor: caller(ctx).actor, outcome: 'success', ip: ctx.ip, target: 'initial-access-token', detail: { action: 'revoke', id: handle } });
    ctx.status = 204;
  });

  return router;
}
