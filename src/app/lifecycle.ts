/**
 * Assembly steps 4 and 7: starting the parts that load shared state (all or
 * nothing: a failed start releases what was opened), and the listeners with
 * their draining stop.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type Koa from 'koa';
import { PolicyValidationError } from '../authz/policy-service.ts';
import { ConfigError } from '../config/index.ts';
import type { DataSources } from '../datasources/index.ts';
import { drainServer } from '../http/drain.ts';
import type { Draining } from './boundary.ts';
import type { Bridges } from './bridges.ts';
import type { Core } from './core.ts';
import type { ProviderHost } from './provider-host.ts';

/** A part with state to load at start and release at stop. */
interface Closable {
  close(): Promise<void>;
}

/**
 * Loads the policy, the data sources and the SAML metadata. On a failure,
 * stops the key timers and closes everything opened so far.
 *
 * @throws ConfigError when the policy files are invalid, or what a part's start threw.
 */
export async function startParts(core: Core, bridges: Bridges, host: ProviderHost, dataSources: DataSources): Promise<void> {
  const { config, policy, store } = core;
  try {
    await policy.start();
    await dataSources.start();
    await bridges.saml.start();
  } catch (err) {
    host.stop();
    await dataSources.close();
    await bridges.saml.close();
    await bridges.x509.close();
    await policy.close();
    await store.close();
    if (err instanceof PolicyValidationError) throw new ConfigError(`policies in ${config.policies.dir}`, err.problems);
    throw err;
  }
}

export interface Listeners {
  /** The TLS listener for client certificates, when `x509.mtlsPort` is set and listen() ran. */
  mtlsServer(): Server | undefined;
  listen(port?: number, host?: string): Promise<Server>;
  close(): Promise<void>;
}

/** The HTTP listener (and the mTLS one when configured), and the draining stop of the whole instance. */
export function listeners(core: Core, app: Koa, bridges: Bridges, host: ProviderHost, state: Draining, parts: { gateway: Closable; dataSources: Closable; heartbeat: { stop(): Promise<void> } }): Listeners {
  const { config, logger, store } = core;
  const { x509 } = bridges;
  let server: Server | undefined;
  let mtlsServer: Server | undefined;
  return {
    mtlsServer: () => mtlsServer,
    listen(port = config.port, hostname = config.host) {
      return new Promise((resolve, reject) => {
        server = createServer({ maxHeaderSize: 16 * 1024, requestTimeout: 30_000, headersTimeout: 10_000 }, app.callback());
        server.keepAliveTimeout = 65_000;
        server.once('error', reject);
        server.listen(port, hostname, () => {
          server!.off('error', reject);
          const address = server!.address() as AddressInfo;
          logger.info({ host: address.address, port: address.port, issuer: config.issuer, store: store.kind }, 'fedgate listening');
          if (!config.x509.enabled || config.x509.mtlsPort === undefined) return resolve(server!);
          // fedgate's own TLS listener asking for client certificates (certificate login, RFC 8705 clients).
          x509.listen(app.callback(), config.x509.mtlsPort, hostname).then((tls) => {
            mtlsServer = tls;
            logger.info({ port: (tls.address() as AddressInfo).port }, 'fedgate mTLS listener');
            resolve(server!);
          }, reject);
        });
      });
    },
    async close() {
      host.stop();
      await parts.heartbeat.stop();
      state.draining = true;
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
      await parts.gateway.close();
      await bridges.saml.close();
      await parts.dataSources.close();
      await core.policy.close();
      await core.audit.close();
      await store.close();
    },
  };
}
