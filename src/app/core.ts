/**
 * Assembly step 1: the shared parts every feature is handed (the `Services`
 * bundle): store, logs, metrics, audit, accounts and groups (seeded from the
 * configuration), resource servers, gateway services and the policy.
 */
import { Accounts } from '../accounts/accounts.ts';
import { Groups } from '../accounts/groups.ts';
import { membershipRequests, registrationRequests, type MembershipRequests, type RegistrationRequests } from '../accounts/requests.ts';
import { PolicyService } from '../authz/policy-service.ts';
import { longLifetimes } from '../config/lifetimes.ts';
import type { Config } from '../config/schema.ts';
import { ServiceRegistry } from '../gateway/service-registry.ts';
import { Audit } from '../observability/audit.ts';
import { createLogger, type Logger } from '../observability/logger.ts';
import { createMetrics } from '../observability/metrics.ts';
import { revokeAccountGrants } from '../grants/grants.ts';
import { ResourceServers } from '../resource-servers/resource-servers.ts';
import type { Services } from '../services.ts';
import { createStore } from '../store/index.ts';
import type { Store } from '../store/store.ts';

/** The shared parts, and the gateway's service registry. */
export interface Core extends Services {
  /** Configured services plus the data sources onboarded at run time; the gateway looks them up per request. */
  services: ServiceRegistry;
  /** Requests to join a group (decided by the group's managers and administrators). */
  requests: MembershipRequests;
  /** Account requests (self-registration). */
  registrations: RegistrationRequests;
}

/** The logger and store the options give, or the configured ones. */
export function openStore(config: Config, options: { store?: Store; logger?: Logger }): { logger: Logger; store: Store } {
  const logger = options.logger ?? createLogger(config.logLevel);
  const store = options.store ?? createStore({
    ...(config.redisUrl ? { redisUrl: config.redisUrl } : {}),
    deadlineMs: config.store.deadlineMs,
    onError: (err) => logger.error({ err: { message: err.message } }, 'store connection error'),
  });
  if (store.kind === 'memory') {
    logger.warn('REDIS_URL is not set: using the EMBEDDED IN-MEMORY STORE. Tokens, sessions and accounts are lost on restart and not shared between replicas. Set REDIS_URL for anything but a demo.');
  }
  return { logger, store };
}

/** Builds the shared parts on `store`, and seeds the configuration's groups and accounts. */
export async function createCore(config: Config, logger: Logger, store: Store): Promise<Core> {
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
  const services = new ServiceRegistry(config);
  const groups = new Groups(store, accounts);
  await seedDirectory(config, accounts, groups, logger);
  const requests = membershipRequests(store);
  const registrations = registrationRequests(store);
  const policy = new PolicyService({
    config, store, logger, accounts, groups,
    audienceExists: (audience) => resourceServers.hasAudience(audience),
    // The policy files may already name the domains of the configuration's data source seeds.
    serviceDomains: () => [...services.all().map((s) => s.domain), ...config.dataSources.map((ds) => ds.domain ?? ds.name)],
  });
  warnLongLifetimes(config, logger);
  return { config, store, logger, metrics, audit, accounts, groups, policy, resourceServers, services, requests, registrations };
}

/** Seeds groups, accounts and group managers from configuration (created when absent, never overwritten) and builds their indexes. */
async function seedDirectory(config: Config, accounts: Accounts, groups: Groups, logger: Logger): Promise<void> {
  const seededGroups = await groups.seed(config.groups);
  if (seededGroups.length) logger.info({ groups: seededGroups }, 'groups seeded from configuration');
  await Promise.all([accounts.ensureMemberIndex(), groups.ensureIndex()]);
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
  await seedManagers(config, groups, accounts, seededGroups);
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

function warnLongLifetimes(config: Config, logger: Logger): void {
  for (const long of longLifetimes(config)) {
    logger.warn({ setting: long.path, seconds: long.seconds, maximum: long.maximum, exception: long.exception }, 'token lifetime above the AARC-G081 maximum, by documented exception');
  }
}
