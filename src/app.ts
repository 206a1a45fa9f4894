import type { Server } from 'node:http';
import Koa from 'koa';
import type Provider from 'oidc-provider';
import { accountRoutes } from './account/routes.ts';
import { consoleRoutes } from './console/routes.ts';
import { adminRoutes } from './admin/routes.ts';
import { logAppErrors, requestBoundary, type Draining } from './app/boundary.ts';
import { createBridges } from './app/bridges.ts';
import { createCore, openStore, type Core } from './app/core.ts';
import { listeners, startParts } from './app/lifecycle.ts';
import { ProviderHost } from './app/provider-host.ts';
import { asMiddleware, dispatch, opsRoutes } from './app/routes.ts';
import type { Config } from './config/schema.ts';
import { createMetadataEndpoint, DataSources } from './datasources/index.ts';
import { tokenExchange } from './exchange/index.ts';
import { createGateway } from './gateway/index.ts';
import { interactionRoutes } from './interaction/routes.ts';
import { jwksForProvider, loadOrCreateCookieKeys, loadOrCreateKeys, type KeySet } from './keys/index.ts';
import type { Logger } from './observability/logger.ts';
import { startHeartbeat } from './observability/replicas.ts';
import { createProvider } from './oidc/provider.ts';
import { adminAudience } from './resource-servers/resource-servers.ts';
import { absentUnlessUnavailable } from './store/index.ts';
import type { Store } from './store/store.ts';
import type { Services } from './services.ts';

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

/**
 * Assembles fedgate from a validated configuration, in named steps (each in
 * src/app/): the shared parts, the identity bridges, the provider and
 * its keys, the parts that load state, the gateway, the request boundary and
 * the routes. Nothing listens until listen().
 */
export async function createFedgate(config: Config, options: CreateOptions = {}): Promise<Fedgate> {
  const { logger, store } = openStore(config, options);
  const core = await createCore(config, logger, store);
  const keySet = await loadOrCreateKeys(config.keysDir);
  const cookieKeys = await loadOrCreateCookieKeys(config.keysDir);
  const provider = () => host.provider;
  const bridges = await createBridges(core, provider);
  const { clientCertificates } = bridges;
  const exchange = tokenExchange(servicesOf(core));
  const host: ProviderHost = new ProviderHost(keySet, {
    config, logger, resourceServers: core.resourceServers, watchKeys: options.watchKeys,
    build: (set) => createProvider({
      ...servicesOf(core), jwks: jwksForProvider(set), cookieKeys, ...(clientCertificates ? { clientCertificates } : {}), tokenExchange: exchange,
    }),
  });
  const dataSources = new DataSources({ ...core, provider });
  const configuredClients = new Set(config.clients.map((c) => c.clientId));
  core.policy.clientExists = async (clientId) => configuredClients.has(clientId) || !!(await host.provider.Client.find(clientId).catch(absentUnlessUnavailable));
  await startParts(core, bridges, host, dataSources);
  // Memberships, account states and the group hierarchy feed decisions: every replica hears of their changes.
  core.accounts.onChanged = () => core.policy.membershipsChanged();
  core.groups.onChanged = () => core.policy.groupsChanged();
  // Who manages a group decides who may get an admin API token: cached scope answers are renewed.
  core.groups.onManagersChanged = () => core.policy.membershipsChanged();
  const gateway = createGateway({
    ...servicesOf(core),
    pdp: core.policy,
    policyVersion: () => core.policy.version,
    jwks: () => host.verificationKeys,
    provider,
    services: core.services,
  });

  // oidc-provider's middleware runs on this app's contexts, so it signs cookies with this app's keys.
  const app = new Koa({ proxy: config.trustProxy, keys: cookieKeys });
  const state: Draining = { draining: false };
  logAppErrors(app, logger);
  // Each replica says it is alive (the admin overview lists them).
  const heartbeat = startHeartbeat(store, (err) => logger.debug({ err: { message: err.message } }, 'replica heartbeat not written'));
  const adminApiAudience = adminAudience(config.issuer);
  app.use(requestBoundary(config, logger, core.metrics, state, dispatch(config, core.audit, {
    ops: opsRoutes(config, store, core.metrics, state),
    interaction: asMiddleware(interactionRoutes({ ...servicesOf(core), provider, loginOptions: bridges.loginOptions }).routes()),
    account: asMiddleware(accountRoutes({
      ...servicesOf(core), hooks: bridges.hooks, provider, linkOptions: bridges.linkOptions, requests: core.requests, registrations: core.registrations,
    }).routes()),
    saml: bridges.saml.routes,
    x509: bridges.x509.routes,
    admin: asMiddleware(adminRoutes({
      ...servicesOf(core), provider, dataSources, requests: core.requests, registrations: core.registrations,
      keys: () => host.keys,
      authenticate: (ctx) => gateway.authenticate(ctx, adminApiAudience),
    }).routes()),
    console: asMiddleware(consoleRoutes({ config, store, logger }).routes()),
    gatewayProxy: gateway.proxy,
    gatewayAuthz: gateway.authz,
    protectedResourceMetadata: createMetadataEndpoint({ config, dataSources }),
    provider: () => host.middleware,
  })));

  return {
    ...servicesOf(core), app, dataSources,
    provider,
    reloadKeys: (set) => host.reloadKeys(set),
    ...listeners(core, app, bridges, host, state, { gateway, dataSources, heartbeat }),
  };
}

/** The `Services` bundle of the core (without the gateway's service registry). */
function servicesOf(core: Core): Services {
  const { config, store, logger, metrics, audit, accounts, groups, policy, resourceServers } = core;
  return { config, store, logger, metrics, audit, accounts, groups, policy, resourceServers };
}
