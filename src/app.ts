import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import Router from '@koa/router';
import Koa, { type Context, type Next } from 'koa';
import compose from 'koa-compose';
import type Provider from 'oidc-provider';
import { accountRoutes } from './account/routes.ts';
import { consoleRoutes } from './console/routes.ts';
import { Accounts } from './accounts/accounts.ts';
import { Groups } from './accounts/groups.ts';
import { membershipRequests, registrationRequests } from './accounts/requests.ts';
import { adminRoutes } from './admin/routes.ts';
import { PolicyService, PolicyValidationError } from './authz/policy-service.ts';
import { ConfigError } from './config/index.ts';
import type { Config } from './config/schema.ts';
import { federationHooks } from './federation/hooks.ts';
import { createSamlBridge } from './federation/saml/index.ts';
import { createX509Bridge } from './federation/x509/index.ts';
import { createMetadataEndpoint, DataSources, PROTECTED_RESOURCE_WELL_KNOWN } from './datasources/index.ts';
import { createGateway, ServiceRegistry } from './gateway/index.ts';
import { clientAddressResolver } from './http/client-address.ts';
import { routeLabel } from './http/route-label.ts';
import { drainServer } from './http/drain.ts';
import { FedgateError, respondWithError } from './http/errors.ts';
import { sendPage } from './http/page.ts';
import { sendUnavailable } from './http/unavailable.ts';
import { interactionRoutes } from './interaction/routes.ts';
import { jwksForProvider, loadOrCreateCookieKeys, loadOrCreateKeys, maintainKeys, nextKeyChange, publicJwks, watchKeys, type KeySet } from './keys/index.ts';
import { longLifetimes, signedTokenHorizon } from './config/lifetimes.ts';
import { Audit } from './observability/audit.ts';
import { startHeartbeat } from './observability/replicas.ts';
import { createLogger, type Logger } from './observability/logger.ts';
import { createMetrics } from './observability/metrics.ts';
import { revokeAccountGrants } from './grants/grants.ts';
import { createProvider } from './oidc/provider.ts';
import { tokenExchange } from './exchange/index.ts';
import { adminAudience, ResourceServers } from './oidc/resource-servers.ts';
import { absentUnlessUnavailable, createStore, isStoreUnavailable } from './store/index.ts';
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
  /**
   * Drains and stops: /readyz answers 503 at once, no new connections are
   * accepted, idle keep-alive connections are closed, responses in flight
   * carry `Connection: close`; resolves once the last one is done (or cut at
   * `shutdown.timeoutSeconds`) and the store is released.
   */
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

/** What Koa's cookies module throws when a Secure cookie would go out on a request it sees as plain HTTP. */
const INSECURE_COOKIE = 'Cannot send secure cookie over unencrypted connection';

/**
 * Errors of the client's connection rather than of fedgate: Node's HTTP
 * parser refusing what followed a request on a keep-alive connection
 * (`HPE_*`), and connections the client reset or closed mid-answer. Koa
 * reports them on the app's error event when the response cannot finish.
 */
function isClientConnectionError(err: Error): boolean {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && (code.startsWith('HPE_') || CLIENT_CONNECTION_CODES.has(code));
}
const CLIENT_CONNECTION_CODES = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ERR_STREAM_PREMATURE_CLOSE']);

/**
 * The identity provider an authorization request names: `idp`, else
 * AARC-G061's `idp_hint` when it names exactly one (a list of several leaves
 * the choice to the discovery page).
 */
function identityProviderHint(params: Record<string, unknown>): string | undefined {
  if (typeof params.idp === 'string' && params.idp) return params.idp;
  if (typeof params.idp_hint !== 'string' || !params.idp_hint) return undefined;
  const hints = params.idp_hint.split(',').map((h) => h.trim()).filter(Boolean);
  return hints.length === 1 ? hints[0] : undefined;
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

/** Seeds the managers of groups created from configuration in this start (the store holds the truth afterwards). */
async function seedManagers(config: Config, groups: Groups, accounts: Accounts, created: readonly string[]): Promise<void> {
  for (const group of config.groups) {
    if (!group.managers?.length || !created.includes(group.path)) continue;
    for (const username of group.managers) {
      const account = await accounts.findByUsername(username);
      if (account) await groups.addManager(group.path, account.id);
    }
  }
}

/** Assembles fedgate from a validated configuration. Nothing listens until listen(). */
export async function createFedgate(config: Config, options: CreateOptions = {}): Promise<Fedgate> {
  const logger = options.logger ?? createLogger(config.logLevel);
  const store = options.store ?? createStore({
    ...(config.redisUrl ? { redisUrl: config.redisUrl } : {}),
    deadlineMs: config.store.deadlineMs,
    onError: (err) => logger.error({ err: { message: err.message } }, 'store connection error'),
  });
  if (store.kind === 'memory') {
    logger.warn('REDIS_URL is not set: using the EMBEDDED IN-MEMORY STORE. Tokens, sessions and accounts are lost on restart and not shared between replicas. Set REDIS_URL for anything but a demo.');
  }
  const metrics = createMetrics();
  const audit = new Audit(store, logger, config.audit.maxEvents, {
    bufferBytes: config.audit.bufferBytes,
    onDropped: (count, reason) => metrics.auditEventsDropped.inc({ reason }, count),
  });
  const accounts = new Accounts(store);
  accounts.onDisabled = async (account) => {
    const revoked = await revokeAccountGrants(store, account.id);
    logger.info({ account: account.id, grants: revoked }, 'account disabled: grants revoked');
  };
  const resourceServers = new ResourceServers(config.resourceServers, config.issuer);
  // Configured services plus the data sources onboarded at run time; the gateway looks them up per request.
  const services = new ServiceRegistry(config);
  const groups = new Groups(store, accounts);
  const seededGroups = await groups.seed(config.groups);
  if (seededGroups.length) logger.info({ groups: seededGroups }, 'groups seeded from configuration');
  await Promise.all([accounts.ensureMemberIndex(), groups.ensureIndex()]);
  await seedAccounts(config, accounts, logger);
  await seedManagers(config, groups, accounts, seededGroups);
  const requests = membershipRequests(store);
  const registrations = registrationRequests(store);
  const policy = new PolicyService({
    config, store, logger, accounts, groups,
    audienceExists: (audience) => resourceServers.hasAudience(audience),
    // The policy files may already name the domains of the configuration's data source seeds.
    serviceDomains: () => [...services.all().map((s) => s.domain), ...config.dataSources.map((ds) => ds.domain ?? ds.name)],
  });

  for (const long of longLifetimes(config)) {
    logger.warn({ setting: long.path, seconds: long.seconds, maximum: long.maximum, exception: long.exception }, 'token lifetime above the AARC-G081 maximum, by documented exception');
  }
  const keySet = await loadOrCreateKeys(config.keysDir);
  const cookieKeys = await loadOrCreateCookieKeys(config.keysDir);
  // The identity bridges finish logins through the provider, which they reach lazily (it is rebuilt on key rotation).
  const hooks = federationHooks({
    store, accounts, provider: () => provider,
    selfRegistration: config.registration.accounts.enabled, secureCookies: new URL(config.issuer).protocol === 'https:',
  });
  const x509 = await createX509Bridge({ config, logger, audit, accounts, hooks });
  const saml = await createSamlBridge({ config, store, logger, audit, accounts, groups, hooks });
  const clientCertificates = config.x509.enabled ? {
    pem: (ctx: Context) => x509.clientCertificatePem(ctx),
    authorized: (ctx: Context) => x509.certificateAuthorized(ctx),
    subjectMatches: (ctx: Context, property: string, expected: string) => x509.certificateSubjectMatches(ctx, property, expected),
  } : undefined;
  const exchange = tokenExchange({ config, store, accounts, policy, resourceServers, audit, logger });
  const build = (set: KeySet) => createProvider({
    config, store, logger, metrics, audit, accounts, groups, policy, resourceServers, jwks: jwksForProvider(set), cookieKeys,
    ...(clientCertificates ? { clientCertificates } : {}),
    tokenExchange: exchange,
  });
  let currentKeys = keySet;
  let provider = build(keySet);
  let providerMiddleware = compose(provider.middleware as Parameters<typeof compose>[0]);
  let verificationKeys = publicJwks(keySet);
  // A scheduled rotation changes which key signs at a set time, with no change on disk: rebuild then.
  let keyChangeTimer: NodeJS.Timeout | undefined;
  const armKeyChange = (set: KeySet) => {
    clearTimeout(keyChangeTimer);
    const now = Date.now() / 1000;
    const next = nextKeyChange(set, Math.floor(now));
    if (next === undefined) return;
    // setTimeout holds at most ~24.8 days; a longer wait re-arms on the way.
    const delay = Math.min(Math.max(0, (next - now) * 1000) + 50, 2 ** 31 - 1);
    keyChangeTimer = setTimeout(() => reloadKeys(currentKeys), delay);
    keyChangeTimer.unref();
  };
  const reloadKeys = (set: KeySet) => {
    currentKeys = set;
    provider = build(set);
    verificationKeys = publicJwks(set);
    providerMiddleware = compose(provider.middleware as Parameters<typeof compose>[0]);
    armKeyChange(set);
    const signing = jwksForProvider(set).keys;
    logger.info({ signing: ['ES256', 'RS256'].map((alg) => signing.find((k) => k.alg === alg)?.kid), published: set.keys.length }, 'signing keys loaded');
  };
  armKeyChange(keySet);
  const stopWatching = options.watchKeys === false ? () => {} : watchKeys(config.keysDir, reloadKeys, {
    onError: (err) => logger.error({ err: { message: err.message } }, 'signing keys file could not be read; keeping the current keys'),
  });
  // Each replica checks the rotation schedule hourly; the keys lock and the file decide, so only one rotates.
  const maintain = async () => {
    try {
      const result = await maintainKeys(config.keysDir, {
        rotationIntervalSeconds: config.keys.rotationIntervalSeconds,
        prepublishSeconds: config.keys.prepublishSeconds,
        maxTokenLifetimeSeconds: signedTokenHorizon(config, resourceServers.list().map((rs) => rs.accessTokenTtl ?? 0)),
      });
      if (result) logger.info({ ...result, activatesAt: new Date(result.activatesAt * 1000).toISOString() }, result.added.length ? 'signing key rotation scheduled' : 'expired signing keys pruned');
    } catch (err) {
      logger.error({ err: { message: (err as Error).message } }, 'scheduled signing key maintenance failed');
    }
  };
  const scheduleRotation = options.watchKeys !== false && config.keys.rotationIntervalSeconds > 0;
  const maintainTimer = scheduleRotation ? setInterval(() => void maintain(), 3600_000) : undefined;
  maintainTimer?.unref();
  if (scheduleRotation) void maintain();

  const dataSources = new DataSources({ config, store, logger, audit, resourceServers, services, policy, groups, provider: () => provider });
  const configuredClients = new Set(config.clients.map((c) => c.clientId));
  policy.clientExists = async (clientId) => configuredClients.has(clientId) || !!(await provider.Client.find(clientId).catch(absentUnlessUnavailable));
  const stopKeyTimers = () => {
    stopWatching();
    clearTimeout(keyChangeTimer);
    clearInterval(maintainTimer);
  };
  try {
    await policy.start();
    await dataSources.start();
    await saml.start();
  } catch (err) {
    stopKeyTimers();
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
  // Who manages a group decides who may get an admin API token: cached scope answers are renewed.
  groups.onManagersChanged = () => policy.membershipsChanged();
  const gateway = createGateway({
    config, store, logger, metrics, audit, accounts, resourceServers,
    pdp: policy,
    policyVersion: () => policy.version,
    jwks: () => verificationKeys,
    provider: () => provider,
    services,
  });
  const protectedResourceMetadata = createMetadataEndpoint({ config, dataSources });

  // oidc-provider's middleware runs on this app's contexts, so it signs cookies with this app's keys.
  const app = new Koa({ proxy: config.trustProxy, keys: cookieKeys });
  // The one client address (login throttling, audit, oidc-provider's events): right-most untrusted X-Forwarded-For hop.
  const clientAddress = clientAddressResolver(config);
  app.silent = true;
  app.on('error', (err: Error, ctx?: Context) => {
    if ((err as { expose?: boolean }).expose) return;
    if (isClientConnectionError(err)) {
      // The client's side of the connection failed (bytes that are no HTTP after a request on a keep-alive
      // connection, a reset): nothing went wrong here.
      logger.debug({ err: { message: err.message, code: (err as { code?: string }).code }, requestId: ctx?.state?.requestId }, 'client connection error');
      return;
    }
    logger.error({ err: { message: err.message, name: err.name, stack: err.stack }, requestId: ctx?.state?.requestId }, 'unhandled application error');
  });

  /** Anything that escapes a handler: a store outage is a 503, the rest goes to the one error writer (a generic server_error for what is not exposed). */
  const answerError = (ctx: Context, err: unknown) => {
    if (isStoreUnavailable(err)) return sendUnavailable(ctx, config.store.retryAfterSeconds);
    if (err instanceof Error && err.message === INSECURE_COOKIE) {
      // An https issuer's cookies are Secure, and Koa will not set one on what it sees as plain HTTP: the request
      // came over HTTP, or through a proxy that does not say it was HTTPS (X-Forwarded-Proto with trustProxy).
      logger.warn({ requestId: ctx.state.requestId, path: ctx.path, trustProxy: config.trustProxy }, 'a page of the https issuer was asked for over plain HTTP: the proxy in front must send X-Forwarded-Proto: https, with trustProxy set');
      const description = `This page must be opened over HTTPS (${config.issuer}). Behind a proxy, the proxy must tell fedgate so (X-Forwarded-Proto: https, with trustProxy set).`;
      return respondWithError(ctx, new FedgateError('invalid_request', description, { status: 400 }), { format: 'json-or-page' });
    }
    respondWithError(ctx, err, { format: 'json-or-page' });
  };

  /** Set by close(): the replica is stopping and takes no new work. */
  let draining = false;

  // The outermost layer, one per request: request id, the error boundary,
  // latency and status (one async frame instead of two on the hot path).
  app.use(async (ctx: Context, next: Next) => {
    const start = performance.now();
    const requestId = randomUUID();
    ctx.state.requestId = requestId;
    // Koa would take the left-most X-Forwarded-For entry, which the client writes.
    if (config.trustProxy) ctx.request.ip = clientAddress(ctx.req);
    try {
      await next();
    } catch (err) {
      answerError(ctx, err);
    }
    // Draining for a stop: the client opens its next connection elsewhere (no race with closing an idle one).
    if (draining && !ctx.headerSent) ctx.set('Connection', 'close');
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
    if (draining) {
      ctx.status = 503;
      ctx.body = { status: 'draining', store: store.kind };
      return;
    }
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
      const idp = identityProviderHint(params);
      const redirect = saml.enabled && idp ? `${saml.discoveryUrl({ interaction: uid })}&idp=${encodeURIComponent(idp)}` : undefined;
      return { alternatives, redirect };
    },
  });
  const account = accountRoutes({
    config, accounts, audit, hooks, provider: () => provider, store, groups, requests, registrations,
    linkOptions: () => [
      ...(saml.enabled ? [{ href: saml.discoveryUrl({ link: true }), label: 'An institution account (eduGAIN / SAML)' }] : []),
      ...(config.x509.enabled ? [{ href: x509.linkUrl(), label: 'A certificate (X.509)' }] : []),
    ],
  });
  // Each replica says it is alive (the admin overview lists them).
  const heartbeat = startHeartbeat(store, (err) => logger.debug({ err: { message: err.message } }, 'replica heartbeat not written'));
  const adminApiAudience = adminAudience(config.issuer);
  const admin = adminRoutes({
    config, store, accounts, groups, policy, audit, provider: () => provider, dataSources, requests, registrations,
    keys: () => currentKeys,
    authenticate: (ctx) => gateway.authenticate(ctx, adminApiAudience),
  });
  // fedgate's own routes and oidc-provider's never overlap, so requests are
  // dispatched by path prefix: the token endpoint's hot path runs no router.
  // Router middleware types ask for router context fields the router itself adds.
  const asMiddleware = (mw: unknown) => mw as Koa.Middleware;
  const opsRoutes = asMiddleware(compose([ops.routes(), ops.allowedMethods()] as Parameters<typeof compose>[0]));
  const interactionRoutesMw = asMiddleware(interaction.routes());
  const adminRoutesMw = asMiddleware(admin.routes());
  const consoleRoutesMw = asMiddleware(consoleRoutes({ config, store, logger }).routes());
  const accountRoutesMw = asMiddleware(account.routes());
  const OPS_PATHS = new Set(['/', '/healthz', '/readyz', '/metrics']);
  // oidc-provider's routes that may answer with a page of its own (authorization and its resume, device verification, logout).
  const PROVIDER_PAGE_PATHS = ['/auth', '/device', '/session/end'];
  app.use(async (ctx, next) => {
    if (OPS_PATHS.has(ctx.path)) return opsRoutes(ctx, next);
    if (ctx.path.startsWith('/interaction/')) return interactionRoutesMw(ctx, next);
    if (ctx.path === '/account' || ctx.path.startsWith('/account/')) return accountRoutesMw(ctx, next);
    if (ctx.path.startsWith('/saml/')) return saml.routes(ctx, next);
    if (ctx.path.startsWith('/x509/')) return x509.routes(ctx, next);
    if (ctx.path === '/admin/api' || ctx.path.startsWith('/admin/api/')) return adminRoutesMw(ctx, next);
    if (ctx.path === '/admin' || ctx.path.startsWith('/admin/')) return consoleRoutesMw(ctx, next);
    if (ctx.path.startsWith('/api/')) return gateway.proxy(ctx, next);
    if (ctx.path === '/authz' || ctx.path.startsWith('/authz/')) return gateway.authz(ctx, next);
    if (ctx.path === PROTECTED_RESOURCE_WELL_KNOWN || ctx.path.startsWith(`${PROTECTED_RESOURCE_WELL_KNOWN}/`)) return protectedResourceMetadata(ctx, next);
    // oidc-provider renders a few pages itself (the auto-submitting forms of form_post, the device flow and logout):
    // they get fedgate's page headers too. Its script hash joins script-src (oidc-provider adds it to a CSP already set).
    const pageRoute = PROVIDER_PAGE_PATHS.some((p) => ctx.path === p || ctx.path.startsWith(`${p}/`));
    if (pageRoute) ctx.set('Content-Security-Policy', `default-src 'none'; script-src 'nonce-${randomBytes(16).toString('base64')}'; frame-ancestors 'none'; base-uri 'none'`);
    await providerMiddleware(ctx, next);
    if (pageRoute && !ctx.response.get('X-Frame-Options')) {
      ctx.set('X-Frame-Options', 'DENY');
      ctx.set('X-Content-Type-Options', 'nosniff');
    }
    // oidc-provider emits no success events for these routes; audit them from the response.
    const oidcCtx = (ctx as unknown as { oidc?: { route?: string; client?: { clientId: string } } }).oidc;
    const clientId = oidcCtx?.client?.clientId;
    // An initial access token allows one registration (as Keycloak's default count of 1): src/oidc/initial-access-token.ts.
    if (oidcCtx?.route === 'registration' && ctx.status === 201) {
      const registered = (ctx.body as { client_id?: string } | undefined)?.client_id;
      await audit.record({ type: 'client.registered', actor: 'initial-access-token', outcome: 'success', ip: ctx.ip, client: registered, target: registered });
    } else if (oidcCtx?.route === 'client_update' && ctx.status === 200) {
      await audit.record({ type: 'client.updated', actor: `client:${clientId}`, outcome: 'success', ip: ctx.ip, client: clientId, target: clientId });
    } else if (oidcCtx?.route === 'client_delete' && ctx.status === 204) {
      await audit.record({ type: 'client.deleted', actor: `client:${clientId}`, outcome: 'success', ip: ctx.ip, client: clientId, target: clientId });
    } else if (oidcCtx?.route === 'revocation' && ctx.status === 200) {
      await audit.record({ type: 'token.revoked', actor: `client:${clientId}`, outcome: 'success', ip: ctx.ip, client: clientId });
    } else if (oidcCtx?.route === 'jwks' && ctx.status === 200) {
      // WLCG profile §4.2 and §4.3.1: the issuer advertises how long its keys may be cached (the public key
      // cache refresh); a cache may keep using them while fedgate is unreachable for the cache expiration (RFC 5861).
      ctx.set('Cache-Control', `public, max-age=${config.keys.jwksMaxAgeSeconds}, stale-if-error=${config.keys.prepublishSeconds}`);
    }
  });

  let server: Server | undefined;
  let mtlsServer: Server | undefined;
  return {
    config, app, store, logger, metrics, audit, accounts, groups, policy, resourceServers, dataSources,
    provider: () => provider,
    mtlsServer: () => mtlsServer,
    reloadKeys,
    listen(port = config.port, host = config.host) {
      return new Promise((resolve, reject) => {
        server = createServer({ maxHeaderSize: 16 * 1024, requestTimeout: 30_000, headersTimeout: 10_000 }, app.callback());
        server.keepAliveTimeout = 65_000;
        server.once('error', reject);
        server.listen(port, host, () => {
          server!.off('error', reject);
          const address = server!.address() as AddressInfo;
          logger.info({ host: address.address, port: address.port, issuer: config.issuer, store: store.kind }, 'fedgate listening');
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
      stopKeyTimers();
      await heartbeat.stop();
      draining = true;
      if (server) {
        const start = performance.now();
        logger.info('draining: /readyz answers 503, no new connections, every response closes its connection');
        // The mTLS listener (x509.close) drains at the same time.
        const [cut] = await Promise.all([
          drainServer(server, { idleCloseMs: config.shutdown.idleCloseMs, timeoutMs: config.shutdown.timeoutSeconds * 1000 }),
          x509.close(),
        ]);
        if (cut) logger.warn({ connections: cut }, 'shutdown deadline reached: connections cut');
        logger.info({ ms: Math.round(performance.now() - start) }, 'drained');
      } else {
        await x509.close();
      }
      await gateway.close();
      await saml.close();
      await dataSources.close();
      await policy.close();
      await audit.close();
      await store.close();
    },
  };
}
