/**
 * Assembly step 3: the oidc-provider instance, rebuilt whenever the signing
 * keys change (a rotation written to disk, or a scheduled key becoming the
 * signing one), and the hourly key maintenance of each replica.
 */
import type Koa from 'koa';
import compose from 'koa-compose';
import type Provider from 'oidc-provider';
import { signedTokenHorizon } from '../config/lifetimes.ts';
import type { Config } from '../config/schema.ts';
import { jwksForProvider, maintainKeys, nextKeyChange, publicJwks, SIGNING_ALGORITHMS, watchKeys, type KeySet } from '../keys/index.ts';
import type { Logger } from '../observability/logger.ts';
import type { ResourceServers } from '../resource-servers/resource-servers.ts';

export interface ProviderHostOptions {
  config: Config;
  logger: Logger;
  resourceServers: ResourceServers;
  /** Builds a provider signing with `set`. */
  build(set: KeySet): Provider;
  /** Poll the keys directory for rotations and maintain the rotation schedule (default true). */
  watchKeys?: boolean | undefined;
}

/** The current provider, its middleware and the public keys tokens are verified with. */
export class ProviderHost {
  provider: Provider;
  /** The current provider's middleware, for the app. */
  middleware: Koa.Middleware;
  /** The public keys of the current set (the gateway verifies fedgate's tokens with them). */
  verificationKeys: ReturnType<typeof publicJwks>;
  readonly #options: ProviderHostOptions;
  #keys: KeySet;
  #keyChangeTimer: NodeJS.Timeout | undefined;
  #maintainTimer: NodeJS.Timeout | undefined;
  #stopWatching: () => void = () => {};

  constructor(keySet: KeySet, options: ProviderHostOptions) {
    this.#options = options;
    this.#keys = keySet;
    this.provider = options.build(keySet);
    this.middleware = middlewareOf(this.provider);
    this.verificationKeys = publicJwks(keySet);
    this.#armKeyChange(keySet);
    if (options.watchKeys === false) return;
    const { config, logger } = options;
    this.#stopWatching = watchKeys(config.keysDir, (set) => this.reloadKeys(set), {
      onError: (err) => logger.error({ err: { message: err.message } }, 'signing keys file could not be read; keeping the current keys'),
    });
    if (config.keys.rotationIntervalSeconds > 0) {
      // Each replica checks the rotation schedule hourly; the keys lock and the file decide, so only one rotates.
      this.#maintainTimer = setInterval(() => void this.#maintain(), 3600_000);
      this.#maintainTimer.unref();
      void this.#maintain();
    }
  }

  /** The current key set. */
  get keys(): KeySet {
    return this.#keys;
  }

  /** Rebuilds the provider with a new key set. */
  reloadKeys(set: KeySet): void {
    this.#keys = set;
    this.provider = this.#options.build(set);
    this.verificationKeys = publicJwks(set);
    this.middleware = middlewareOf(this.provider);
    this.#armKeyChange(set);
    const signing = jwksForProvider(set).keys;
    this.#options.logger.info({ signing: SIGNING_ALGORITHMS.map((alg) => signing.find((k) => k.alg === alg)?.kid), published: set.keys.length }, 'signing keys loaded');
  }

  /** Stops watching the keys and every timer. */
  stop(): void {
    this.#stopWatching();
    clearTimeout(this.#keyChangeTimer);
    clearInterval(this.#maintainTimer);
  }

  /** A scheduled rotation changes which key signs at a set time, with no change on disk: rebuild then. */
  #armKeyChange(set: KeySet): void {
    clearTimeout(this.#keyChangeTimer);
    const now = Date.now() / 1000;
    const next = nextKeyChange(set, Math.floor(now));
    if (next === undefined) return;
    // setTimeout holds at most ~24.8 days; a longer wait re-arms on the way.
    const delay = Math.min(Math.max(0, (next - now) * 1000) + 50, 2 ** 31 - 1);
    this.#keyChangeTimer = setTimeout(() => this.reloadKeys(this.#keys), delay);
    this.#keyChangeTimer.unref();
  }

  async #maintain(): Promise<void> {
    const { config, logger, resourceServers } = this.#options;
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
  }
}

function middlewareOf(provider: Provider): Koa.Middleware {
  return compose(provider.middleware as Parameters<typeof compose>[0]) as unknown as Koa.Middleware;
}
