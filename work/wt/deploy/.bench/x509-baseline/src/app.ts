import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import Router from '@koa/router';
import Koa, { type Context, type Next } from 'koa';
import compose from 'koa-compose';
import type Provider from 'oidc-provider';
import { accountRoutes } from './account/routes.ts';
import { Accounts } from './accounts/accounts.ts';
import { Groups } from './accounts/groups.ts';
import { adminRoutes } from './admin/routes.ts';
import { PolicyService, PolicyValidationError } from './authz/policy-service.ts';
import { ConfigError } from './config/index.ts';
import type { Config } from './config/schema.ts';
import { federationHooks } from './federation/hooks.ts';
import { createSamlBridge } from './federation/saml/index.ts';
import { createX509Bridge } from './federation/x509/index.ts';
import { createMetadataEndpoint, DataSources, PROTECTED_RESOURCE_WELL_KNOWN } from './datasources/index.ts';
import { createGateway, ServiceRegistry } from './gateway/index.ts';
import { sendPage } from './http/page.ts';
import { interactionRoutes } from './interaction/routes.ts';
import { jwksForProvider, loadOrCreateCookieKeys, loadOrCreateKeys, publicJwks, watchKeys, type KeySet } from './keys/index.ts';
import { Audit } from './observability/audit.ts';
import { createLogger, type Logger } from './observability/logger.ts';
import { createMetrics } from './observability/metrics.ts';
import { revokeAccountGrants } from './oidc/adapter.ts';
import { createProvider } from './oidc/provider.ts';
import { ResourceServers } from './oidc/resource-servers.ts';
import { createStore } from './store/index.ts';
import type { Store } from './store/store.ts';
import type { Services } from './services.ts';
import * as pages from './views/pages.ts';

/** A running (or ready to run) fedgate instance. */
export interface Fedgate extends Services {
  app: Koa;
  /** The current oidc-provider instance (replaced when signing keys rotate). */
  provider(): Provider;
  /** Rebuilds the provider with a new key set (what a rotation on disk triggers). */
  reloadKeys(set: KeySet): void;
  /** Data sources (resource servers, gateway services, their policies), changed at run time. */
  dataSources: DataSources;
  /** The TLS listener for client certificates, when `x509.mtlsPort` is set and listen() ran. */
  mtlsServer(): Server | undefined;
  /** Starts the HTTP listener (and the mTLS one when configured); port 0 picks a free one. */
  listen(port?: number, host?: string): Promise<Server>;
  /** Stops accepting requests, finishes in-flight ones, releases the store. */
  close(): Promise<void>;
}

export interface CreateOptions {
  /** Use this store instead of the one REDIS_URL selects (tests). */
  store?: Store;
  /** Use this logger (tests capture lines). */
  logger?: Logger;
  /** Poll the keys directory for rotations (default true). */
  watchKeys?: boolean;
}

/** Route label for metrics: a fixed set, never the raw path (no label explosion). */
function routeLabel(ctx: Context): string {
  const oidcRoute = (ctx as unknown as { oidc?: { route?: string } }).oidc?.route;
  if (oidcRoute) return oidcRoute;
  const matched = (ctx as unknown as { _matchedRoute?: string })._matchedRoute;
  return matched ?? 'unmatched';
}

/** Seeds accounts from configuration: created when absent, never overwritten. */
async function seedAccounts(config: Config, accounts: Accounts, logger: Logger): Promise<void> {
  for (const user of config.users) {
    const { created } = await accounts.seed({
      username: user.username,
      name: user.name,
      email: user.email,
      groups: user.groups,
      disabled: user.disabled,
      password: user.password,
      passwordHash: user.passwordHash,
    });
    if (created) logger.info({ username: user.username }, 'account seeded from configuration');
  }
}

/** Assembles fedgate from a validated configuration. Nothing listens until listen(). */
export async function createFedgate(config: Config, options: CreateOptions = {}): Promise<Fedgate> {
  const logger = options.logger ?? createLogger(config.logLevel);
  const store = options.store ?? createStore({
    ...(config.redisUrl ? { redisUrl: config.redisUrl } : {}),
    onError: (err) => logger.error({ err: { message: err.message } }, 'store connection error'),
  });
  if (store.kind === 'memory') {
    logger.warn('REDIS_URL is not set: using the EMBEDDED IN-MEMORY STORE. Tokens, sessions and accounts are lost on restart and not shared between replicas. Set REDIS_URL for anything but a demo.');
  }
  const metrics = createMetrics();
  const audit = new Audit(store, logger, config.audit.maxEvents);
  const accounts = new Accounts(store);
  accounts.onDisabled = async (account) => {
    const revoked = await revokeAccountGrants(store, account.id);
    logger.info({ account: account.id, grants: revoked }, 'account disabled: grants revoked');
  };
  const resourceServers = new ResourceServers(config.resourceServers);
  // Configured services plus the data sources onboarded at run time; the gateway looks them up per request.
  const services = new ServiceRegistry(config);
  const groups = new Groups(store, accounts);
  const seededGroups = await groups.seed(config.groups);
  if (seededGroups.length) logger.info({ groups: seededGroups }, 'groups seeded from configuration');
  await accounts.ensureMemberIndex();
  await seedAccounts(config, accounts, logger);
  const policy = new PolicyService({
    config, store, logger, accounts, groups,
    audienceExists: (audience) => resourceServers.hasAudience(audience),
    // The policy files may already name the domains of the configuration's data source seeds.
    serviceDomains: () => [...services.all().map((s) => s.domain), ...config.dataSources.map((ds) => ds.domain ?? ds.name)],
  });

  const keySet = await loadOrCreateKeys(config.keysDir);
  const cookieKeys = await loadOrCreateCookieKeys(config.keysDir);
  // The identity bridges finish logins through the provider, which they reach lazily (it is rebuilt on key rotation).
  const hooks = federationHooks({ store, accounts, provider: () => provider });
  const x509 = await createX509Bridge({ config, logger, audit, accounts, hooks });
  const saml = await createSamlBridge({ config, store, logger, audit, accounts, groups, hooks });
  const clientCertificates = config.x509.enabled ? {
    pem: (ctx: Context) => x509.clientCertificatePem(ctx),
    authorized: (ctx: Context) => x509.certificateAuthorized(ctx),
    subjectMatches: (ctx: Context, property: string, expected: string) => x509.certificateSubjectMatches(ctx, property, expected),
  } : undefined;
  const build = (set: KeySet) => createProvider({
    config, store, logger, metrics, audit, accounts, groups, policy, resourceServers, jwks: jwksForProvider(set), cookieKeys,
    ...(clientCertificates ? { clientCertificates } : {}),
  });
  let provider = build(keySet);
  let providerMiddleware = compose(provider.middleware as Parameters<typeof compose>[0]);
  let verificationKeys = publicJwks(keySet);
  const reloadKeys = (set: KeySet) => {
    provider = build(set);
    verificationKeys = publicJwks(set);
    providerMiddleware = compose(provider.middleware as Parameters<typeof compose>[0]);
    logger.info({ kids: set.keys.filter((k) => !k.retiredAt).map((k) => k.jwk.kid) }, 'signing keys reloaded');
  };
  const stopWatching = options.watchKeys === false ? () => {} : watchKeys(config.keysDir, reloadKeys, {
    onError: (err) => logger.error({ err: { message: err.message } }, 'signing keys file could not be read; keeping the current keys'),
  });

  const dataSources = new DataSources({ config, store, logger, audit, resourceServers, services, policy, groups, provider: () => provider });
  const configuredClients = new Set(config.clients.map((c) => c.clientId));
  policy.clientExists = async (clientId) => configuredClients.has(clientId) || !!(await provider.Client.find(clientId).catch(() => undefined));
  try {
    await policy.start();
    await dataSources.start();
    await saml.start();
  } catch (err) {
    stopWatching();
    await dataSources.close();
    await saml.close();
    await x509.close();
    await policy.close();
    await store.close();
    if (err instanceof PolicyValidationError) throw new ConfigError(`policies in ${config.policies.dir}`, err.problems);
    throw err;
  }
  // Memberships, account states and the group hierarchy feed decisions: every replica hears of their changes.
  accounts.onChanged = () => policy.membershipsChanged();
  groups.onChanged = () => policy.groupsChanged();
  const gateway = createGateway({
    config, store, logger, metrics, audit, accounts,
    pdp: policy,
    policyVersion: () => policy.version,
    jwks: () => verificationKeys,
    provider: () => provider,
    services,
  });
  const protectedResourceMetadata = createMetadataEndpoint({ config, dataSources });

  // oidc-provider's middleware runs on this app's contexts, so it signs cookies with this app's keys.
  const app = new Koa({ proxy: config.trustProxy, keys: cookieKeys });
  app.silent = true;
  app.on('error', (err: Error, ctx?: Context) => {
    if ((err as { expose?: boolean }).expose) return;
    logger.error({ err: { message: err.message, name: err.name, stack: err.stack }, requestId: ctx?.state?.requestId }, 'unhandled application error');
  });

  /** Anything that escapes a handler becomes a generic server_error: no stack, no detail. */
  const answerError = (ctx: Context, err: unknown) => {
    const status = (err as { status?: number }).status;
    const exposed = (err as { expose?: boolean }).expose && status && status >= 400 && status < 500;
    ctx.status = exposed ? status : 500;
    const error = exposed ? 'invalid_request' : 'server_error';
    const description = exposed ? (err as Error).message : 'The server could not complete the request.';
    if (!exposed) ctx.app.emit('error', err, ctx);
    if (ctx.accepts('json', 'html') === 'html') {
      sendPage(ctx, (nonce) => pages.errorPage({ nonce, error, description, requestId: ctx.state.requestId }), ctx.status);
    } else {
      ctx.body = { error, error_description: description };
    }
  };

  // The outermost layer, one per request: request id, the error boundary,
  // latency and status (one async frame instead of two on the hot path).
  app.use(async (ctx: Context, next: Next) => {
    const start = performance.now();
    const requestId = randomUUID();
    ctx.state.requestId = requestId;
    try {
      await next();
    } catch (err) {
      answerError(ctx, err);
    }
    const ms = performance.now() - start;
    const route = routeLabel(ctx);
    const status = ctx.status;
    // The id goes out where someone may need to quote it: on failures (and in their log line and error page).
    // Sending it on every success measurably slowed the token endpoint (docs/performance.md).
    if (status >= 400 && !ctx.headerSent) ctx.set('X-Request-Id', requestId);
    metrics.observeRequest(route, ctx.method, status, ms / 1000);
    // The log entry is only built when it will be written (this runs on every request).
    if (status >= 500 || logger.isLevelEnabled('debug')) {
      const entry = { requestId, method: ctx.method, route, path: ctx.path, status, ms: Math.round(ms * 10) / 10 };
      if (status >= 500) logger.warn(entry, 'request failed');
      else logger.debug(entry, 'request');
    }
  });

  const ops = new Router();
  ops.get('/', (ctx) => sendPage(ctx, (nonce) => pages.messagePage({
    nonce,
    title: 'fedgate',
    message: `This is the fedgate identity service at ${config.issuer}. Applications find everything they need at ${config.issuer}/.well-known/openid-configuration.`,
  })));
  ops.get('/healthz', (ctx) => {
    ctx.set('Cache-Control', 'no-store');
    ctx.body = { status: 'ok' };
  });
  ops.get('/readyz', async (ctx) => {
    ctx.set('Cache-Control', 'no-store');
    try {
      await store.ping();
      ctx.body = { status: 'ready', store: store.kind };
    } catch {
      ctx.status = 503;
      ctx.body = { status: 'unavailable', store: store.kind };
    }
  });
  ops.get('/metrics', async (ctx) => {
    ctx.type = metrics.registry.contentType;
    ctx.body = await metrics.registry.metrics();
  });

  const interaction = interactionRoutes({
    config, store, accounts, audit, metrics, provider: () => provider,
    loginOptions: (uid, params) => {
      const alternatives: Array<{ href: string; label: string }> = [];
      if (saml.enabled) alternatives.push({ href: saml.discoveryUrl({ interaction: uid }), label: 'Your institution (eduGAIN / SAML)' });
      if (config.x509.enabled) alternatives.push({ href: x509.loginUrl(uid), label: 'Your certificate (X.509)' });
      // An `idp` hint in the authorization request skips the choice (the discovery page checks it is known).
      const idp = typeof params.idp === 'string' && params.idp ? params.idp : undefined;
      const redirect = saml.enabled && idp ? `${saml.discoveryUrl({ interaction: uid })}&idp=${encodeURIComponent(idp)}` : undefined;
      return { alternatives, redirect };
    },
  });
  const account = accountRoutes({
    config, accounts, audit, hooks, provider: () => provider,
    linkOptions: () => [
      ...(saml.enabled ? [{ href: saml.discoveryUrl({ link: true }), label: 'An institution account (eduGAIN / SAML)' }] : []),
      ...(config.x509.enabled ? [{ href: x509.linkUrl(), label: 'A certificate (X.509)' }] : []),
    ],
  });
  const admin = adminRoutes({ config, accounts, groups, policy, audit, provider: () => provider, dataSources });
  // fedgate's own routes and oidc-provider's never overlap, so requests are
  // dispatched by path prefix: the token endpoint's hot path runs no router.
  // Router middleware types ask for router context fields the router itself adds.
  const asMiddleware = (mw: unknown) => mw as Koa.Middleware;
  const opsRoutes = asMiddleware(compose([ops.routes(), ops.allowedMethods()] as Parameters<typeof compose>[0]));
  const interactionRoutesMw = asMiddleware(interaction.routes());
  const adminRoutesMw = asMiddleware(admin.routes());
  const accountRoutesMw = asMiddleware(account.routes());
  const OPS_PATHS = new Set(['/', '/healthz', '/readyz', '/metrics']);
  app.use(async (ctx, next) => {
    if (OPS_PATHS.has(ctx.path)) return opsRoutes(ctx, next);
    if (ctx.path.startsWith('/interaction/')) return interactionRoutesMw(ctx, next);
    if (ctx.path === '/account' || ctx.path.startsWith('/account/')) return accountRoutesMw(ctx, next);
    if (ctx.path.startsWith('/saml/')) return saml.routes(ctx, next);
    if (ctx.path.startsWith('/x509/')) return x509.routes(ctx, next);
    if (ctx.path === '/admin/api' || ctx.path.startsWith('/admin/api/')) return adminRoutesMw(ctx, next);
    if (ctx.path.startsWith('/api/')) return gateway.proxy(ctx, next);
    if (ctx.path === '/authz' || ctx.path.startsWith('/authz/')) return gateway.authz(ctx, next);
    if (ctx.path === PROTECTED_RESOURCE_WELL_KNOWN || ctx.path.startsWith(`${PROTECTED_RESOURCE_WELL_KNOWN}/`)) return protectedResourceMetadata(ctx, next);
    await providerMiddleware(ctx, next);
    // oidc-provider emits no success events for these routes; audit them from the response.
    const oidcCtx = (ctx as unknown as { oidc?: { route?: string; client?: { clientId: string }; entities: { InitialAccessToken?: { destroy(): Promise<void> } } } }).oidc;
    const clientId = oidcCtx?.client?.clientId;
    if (oidcCtx?.route === 'registration' && ctx.status === 201) {
      // An initial access token allows one registration (as Keycloak's default count of 1).
      await oidcCtx.entities.InitialAccessToken?.destroy();
      const registered = (ctx.body as { client_id?: string } | undefined)?.client_id;
      await audit.record({ type: 'client.registered', actor: 'initial-access-token', outcome: 'success', ip: ctx.ip, client: registered, target: registered });
    } else if (oidcCtx?.route === 'client_update' && ctx.status === 200) {
      await audit.record({ type: 'client.updated', actor: `client:${clientId}`, outcome: 'success', ip: ctx.ip, client: clientId, target: clientId });
    } else if (oidcCtx?.route === 'client_delete' && ctx.status === 204) {
      await audit.record({ type: 'client.deleted', actor: `client:${clientId}`, outcome: 'success', ip: ctx.ip, client: clientId, target: clientId });
    } else if (oidcCtx?.route === 'revocation' && ctx.status === 200) {
      await audit.record({ type: 'token.revoked', actor: `client:${clientId}`, outcome: 'success', ip: ctx.ip, client: clientId });
    }
  });

  let server: Server | undefined;
  let mtlsServer: Server | undefined;
  return {
    config, app, store, logger, metrics, audit, accounts, groups, policy, resourceServers, dataSources,
    provider: () => provider,
    mtlsServer: () => mtlsServer,
    reloadKeys,
    listen(port = config.port, host?: string) {
      return new Promise((resolve, reject) => {
        server = createServer({ maxHeaderSize: 16 * 1024, requestTimeout: 30_000, headersTimeout: 10_000 }, app.callback());
        server.keepAliveTimeout = 65_000;
        server.once('error', reject);
        server.listen(port, host, () => {
          server!.off('error', reject);
          const address = server!.address() as AddressInfo;
          logger.info({ port: address.port, issuer: config.issuer, store: store.kind }, 'fedgate listening');
          if (!config.x509.enabled || config.x509.mtlsPort === undefined) return resolve(server!);
          // fedgate's own TLS listener asking for client certificates (certificate login, RFC 8705 clients).
          x509.listen(app.callback(), config.x509.mtlsPort, host).then((tls) => {
            mtlsServer = tls;
            logger.info({ port: (tls.address() as AddressInfo).port }, 'fedgate mTLS listener');
            resolve(server!);
          }, reject);
        });
      });
    },
    async close() {
      stopWatching();
      if (server) {
        const closing = new Promise<void>((resolve) => server!.close(() => resolve()));
        server.closeIdleConnections();
        // In-flight requests get a grace period; then remaining connections are cut.
        const timer = setTimeout(() => server?.closeAllConnections(), 10_000);
        timer.unref();
        await closing;
        clearTimeout(timer);
      }
      await gateway.close();
      await saml.close();
      await x509.close();
      await dataSources.close();
      await policy.close();
      await audit.flush();
      await store.close();
    },
  };
}
