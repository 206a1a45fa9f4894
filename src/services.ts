import type { Accounts } from './accounts/accounts.ts';
import type { Groups } from './accounts/groups.ts';
import type { PolicyService } from './authz/policy-service.ts';
import type { Config } from './config/schema.ts';
import type { Audit } from './observability/audit.ts';
import type { Logger } from './observability/logger.ts';
import type { Metrics } from './observability/metrics.ts';
import type { ResourceServers } from './resource-servers/resource-servers.ts';
import type { Store } from './store/store.ts';

/** The shared parts every feature of fedgate is handed at assembly (src/app.ts). */
export interface Services {
  config: Config;
  store: Store;
  logger: Logger;
  metrics: Metrics;
  audit: Audit;
  accounts: Accounts;
  groups: Groups;
  /** The policy decision and administration point (authz/). */
  policy: PolicyService;
  resourceServers: ResourceServers;
}
