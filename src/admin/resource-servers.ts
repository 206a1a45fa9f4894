/**
 * `/admin/api/resource-servers`: data sources (resource server, gateway
 * service, default policies, introspection client) created, read, updated
 * and removed in one step, live on every replica (src/datasources).
 *
 * - `GET /resource-servers`: every data source (configured ones read-only);
 * - `POST /resource-servers`: create; 201 with the onboarding bundle (the
 *   introspection secret is in this answer only);
 * - `GET /resource-servers/:name`: one, with its bundle (no secret);
 * - `PUT /resource-servers/:name`: replace (a different `name` renames);
 * - `PATCH /resource-servers/:name`: JSON merge patch (RFC 7396);
 * - `DELETE /resource-servers/:name`: remove;
 * - `POST /resource-servers/:name/introspection-secret`: a new secret.
 */
import Router from '@koa/router';
import type { Context, Middleware } from 'koa';
import { ruleToJson } from '../authz/rules-json.ts';
import { caller, fail } from './http.ts';
import { respondWithError } from '../http/error-response.ts';
import { DataSourceError, onboardingBundle, type ChangeContext, type DataSources, type DataSourceView } from '../datasources/index.ts';

export interface ResourceServerRoutesDeps {
  issuer: string;
  dataSources: DataSources;
  json: Middleware;
}

/** Read-only parts of a data source as the API shows it, dropped from a PUT body (GET, edit, PUT works). */
const VIEW_ONLY_FIELDS = ['effective', 'source', 'readOnly', 'introspectionClientId', 'managedRules', 'createdVia', 'createdAt', 'updatedAt', 'onboarding'];

/** A data source as JSON: the record's fields, then what fedgate derives and keeps about it. */
export function dataSourceJson(view: DataSourceView): Record<string, unknown> {
  return {
    ...view.spec,
    effective: view.effective,
    source: view.source,
    readOnly: view.readOnly,
    ...(view.introspectionClientId ? { introspectionClientId: view.introspectionClientId } : {}),
    managedRules: view.lines.map(ruleToJson),
    ...(view.createdVia ? { createdVia: view.createdVia } : {}),
    ...(view.createdAt ? { createdAt: view.createdAt, updatedAt: view.updatedAt } : {}),
  };
}

function withoutViewFields(body: unknown): unknown {
  if (!body || typeof body !== 'object' || Array.isArray(body)) return body;
  return Object.fromEntries(Object.entries(body).filter(([key]) => !VIEW_ONLY_FIELDS.includes(key)));
}

/** Answers a refusal: status by code, the fields at fault in `problems`. */
function refuse(ctx: Context, err: DataSourceError): void {
  respondWithError(ctx, err, { format: 'json' });
}

export function resourceServerRoutes(deps: ResourceServerRoutesDeps): Router {
  const { issuer, dataSources, json } = deps;
  const router = new Router();
  const context = (ctx: Context): ChangeContext => ({ actor: caller(ctx).actor, ip: ctx.ip, via: 'api' });
  const handle = async (ctx: Context, work: () => Promise<void>) => {
    try {
      await work();
    } catch (err) {
      if (err instanceof DataSourceError) return refuse(ctx, err);
      throw err;
    }
  };
  // JSON bodies only: anything else would reach validation as an empty record. A PATCH may say what it is (RFC 7396 §4).
  const needsJson = (ctx: Context): boolean => {
    if (ctx.is('application/json') || (ctx.method === 'PATCH' && ctx.is('application/merge-patch+json'))) return true;
    fail(ctx, 415, 'invalid_request', ctx.method === 'PATCH'
      ? 'send the patch as application/merge-patch+json or application/json'
      : 'send the data source as application/json');
    return false;
  };

  router.get('/resource-servers', (ctx) => {
    ctx.body = { resource_servers: dataSources.list().map(dataSourceJson) };
  });

  router.post('/resource-servers', json, async (ctx) => {
    if (!needsJson(ctx)) return;
    await handle(ctx, async () => {
      const result = await dataSources.create(ctx.request.body, context(ctx));
      ctx.status = 201;
      ctx.set('Location', `/admin/api/resource-servers/${result.view.spec.name}`);
      ctx.body = { resource_server: dataSourceJson(result.view), onboarding: onboardingBundle(issuer, result.view, result.credentials) };
    });
  });

  router.get('/resource-servers/:name', (ctx) => {
    const view = dataSources.get(ctx.params.name!);
    if (!view) return fail(ctx, 404, 'not_found', `no data source ${ctx.params.name}`);
    ctx.body = { ...dataSourceJson(view), onboarding: onboardingBundle(issuer, view) };
  });

  const update = (merge: boolean): Middleware => async (ctx) => {
    if (!needsJson(ctx)) return;
    await handle(ctx, async () => {
      const result = await dataSources.update(ctx.params.name!, merge ? ctx.request.body : withoutViewFields(ctx.request.body), context(ctx), { merge });
      ctx.body = {
        resource_server: dataSourceJson(result.view),
        added: result.added.map(ruleToJson),
        removed: result.removed.map(ruleToJson),
        // A newly enabled introspection client: its secret, once.
        ...(result.credentials ? { onboarding: onboardingBundle(issuer, result.view, result.credentials) } : {}),
      };
    });
  };
  router.put('/resource-servers/:name', json, update(false));
  router.patch('/resource-servers/:name', json, update(true));

  router.delete('/resource-servers/:name', async (ctx) => {
    await handle(ctx, async () => {
      await dataSources.remove(ctx.params.name!, context(ctx));
      ctx.status = 204;
    });
  });

  router.post('/resource-servers/:name/introspection-secret', async (ctx) => {
    await handle(ctx, async () => {
      const credentials = await dataSources.rotateIntrospectionSecret(ctx.params.name!, context(ctx));
      ctx.body = { ...credentials, token_endpoint_auth_method: 'client_secret_basic', introspection_endpoint: `${issuer}/token/introspection` };
    });
  });

  return router;
}
