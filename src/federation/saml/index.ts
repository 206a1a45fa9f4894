/**
 * The SAML bridge: fedgate as a SAML 2.0 service provider in front of the
 * identity providers of research and education federations.
 *
 * Identity providers come from metadata (sources refreshed on their own
 * schedule, aggregates verified before use: registry.ts, metadata.ts);
 * users pick one on the discovery page; AuthnRequests and responses go
 * through node-saml (service-provider.ts), with the checks it leaves out
 * added (response.ts); attributes map to an identity and groups
 * (attributes.ts), and the identity to an account (account-resolver.ts).
 * The routes (routes.ts) finish a login through the FederationHooks.
 *
 * Everything a flow needs between requests lives in the store, so any
 * replica can finish a login another started.
 */
import type Koa from 'koa';
import type { Accounts } from '../../accounts/accounts.ts';
import type { Groups } from '../../accounts/groups.ts';
import { ConfigError } from '../../config/index.ts';
import type { Config } from '../../config/schema.ts';
import { PageError } from '../../util/errors.ts';
import { respondWithError } from '../../http/error-response.ts';
import type { Audit } from '../../observability/audit.ts';
import type { Logger } from '../../observability/logger.ts';
import type { Store } from '../../store/store.ts';
import type { FederationHooks, InteractionCheck } from '../types.ts';
import { AccountResolver } from './account-resolver.ts';
import { AttributeMapper } from './attributes.ts';
import { StoreCacheProvider } from './cache-provider.ts';
import type { IdpRecord } from './metadata.ts';
import { IdpRegistry } from './registry.ts';
import { ResponseValidator } from './response.ts';
import { discoveryHref, samlRoutes, type DiscoveryPurpose } from './routes.ts';
import { ServiceProvider } from './service-provider.ts';
import { loadOrCreateSpKeys } from './sp-keys.ts';
import { ValidationPool, type ValidationStats } from './validation-pool.ts';

export type { DiscoveryPurpose } from './routes.ts';

/** What the bridge needs from the assembly. */
export interface SamlBridgeDeps {
  config: Config;
  store: Store;
  logger: Logger;
  audit: Audit;
  accounts: Accounts;
  groups: Groups;
  hooks: FederationHooks & InteractionCheck;
}

/** An identity provider as a login page lists it. */
export interface IdpSummary {
  entityID: string;
  /** mdui:DisplayName (English preferred), else OrganizationDisplayName, else the entityID. */
  displayName: string;
  /** mdui:Logo URL (https: or data:), the smallest one. Pages with fedgate's CSP can only show data: logos. */
  logo?: string;
}

/** The SAML bridge as the assembly uses it. */
export interface SamlBridge {
  /** Whether SAML login is offered (config `saml.enabled`). */
  readonly enabled: boolean;
  /** Serves every path under `/saml/` (an error page for unknown ones). */
  routes: Koa.Middleware;
  /** Identity providers offered in discovery, by display name (empty while disabled). */
  providers(): IdpSummary[];
  /** Identity providers matching `q` (words in their names or entityID), best first, at most `limit`. */
  search(q: string, limit?: number): IdpSummary[];
  /** Where to send the browser to choose an identity provider for a login (`{ interaction: uid }`) or a link (`{ link: true }`). */
  discoveryUrl(purpose: DiscoveryPurpose): string;
  /**
   * Loads the metadata sources (first load) and schedules their refreshes. A
   * source that fails is an alert in the logs, not a failure.
   *
   * @throws ConfigError when SAML is enabled and no source could be loaded.
   */
  start(): Promise<void>;
  /** What the response validation threads have done (for metrics and tests). */
  validationStats(): ValidationStats;
  /** Stops the metadata refreshes and the validation threads. */
  close(): Promise<void>;
}

function summary(idp: IdpRecord): IdpSummary {
  return idp.logo ? { entityID: idp.entityID, displayName: idp.displayName, logo: idp.logo } : { entityID: idp.entityID, displayName: idp.displayName };
}

/**
 * Builds the SAML bridge. With SAML enabled this reads (or creates, in the
 * keys directory) the SP key and certificate; metadata is loaded by start().
 * With SAML disabled every `/saml/` path answers 404 and nothing is loaded.
 *
 * @throws ConfigError when the SP key or certificate cannot be read or do not match.
 */
export async function createSamlBridge(deps: SamlBridgeDeps): Promise<SamlBridge> {
  const { config, store, logger, audit, accounts, groups, hooks } = deps;
  const saml = config.saml;
  if (!saml.enabled) {
    return {
      enabled: false,
      routes: async (ctx) => {
        respondWithError(ctx, new PageError(404, 'not_found', 'Sign-in with an institution is not enabled on this service.'), { format: 'page' });
      },
      providers: () => [],
      search: () => [],
      validationStats: () => ({ tasks: 0, signatureChecks: 0, deadlineExceeded: 0, rejectedBusy: 0 }),
      discoveryUrl: discoveryHref,
      start: async () => {},
      close: async () => {},
    };
  }

  const issuer = config.issuer.replace(/\/$/, '');
  const entityId = saml.entityId ?? `${issuer}/saml/metadata`;
  let keys;
  try {
    keys = await loadOrCreateSpKeys({ keysDir: config.keysDir, keyFile: saml.spKeyFile, certFile: saml.spCertFile, commonName: new URL(issuer).hostname });
  } catch (err) {
    throw new ConfigError('saml', [`saml.spKeyFile/spCertFile: ${(err as Error).message}`]);
  }
  const cacheProvider = new StoreCacheProvider(store, saml.requestTtlSeconds);
  const sp = new ServiceProvider({
    entityId,
    acsUrl: `${issuer}/saml/acs`,
    keys,
    clockSkewSeconds: saml.clockSkewSeconds,
    requestTtlSeconds: saml.requestTtlSeconds,
    requireSignedAssertions: saml.requireSignedAssertions,
    cacheProvider,
  });
  const registry = new IdpRegistry({ sources: saml.metadata, allow: saml.entityIds.allow, deny: saml.entityIds.deny, allowSha1: saml.allowSha1Signatures, logger });
  const pool = new ValidationPool(saml.validation);
  const validator = new ResponseValidator({
    store, sp, cacheProvider, pool, idp: (id) => registry.get(id),
    clockSkewSeconds: saml.clockSkewSeconds, requireSignedAssertions: saml.requireSignedAssertions, allowSha1: saml.allowSha1Signatures,
  });
  const mapper = new AttributeMapper(saml.attributes, saml.entitlementRules);
  const resolver = new AccountResolver(accounts, groups, store, saml);
  const routes = samlRoutes({
    config: saml, secureCookies: new URL(issuer).protocol === 'https:',
    store, logger, audit, accounts, hooks, registry, sp, validator, mapper, resolver,
  });

  return {
    enabled: true,
    routes,
    providers: () => registry.providers().map(summary),
    search: (q, limit = 20) => registry.search(q, limit).map(summary),
    validationStats: () => pool.stats(),
    discoveryUrl: discoveryHref,
    async start() {
      const [statuses] = await Promise.all([registry.start(), pool.warm()]);
      if (!statuses.some((s) => s.ok)) {
        registry.close();
        await pool.close();
        throw new ConfigError('saml.metadata', statuses.map((s) => `${s.name}: could not be loaded (${s.reason ?? 'unknown'})`));
      }
    },
    async close() {
      registry.close();
      await pool.close();
    },
  };
}
