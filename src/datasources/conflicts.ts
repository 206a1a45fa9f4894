/** Whether a data source spec may live next to every other one: names, audiences and hosts are unique, fedgate's own are off limits. */
import type { Groups } from '../accounts/groups.ts';
import type { PolicyService } from '../authz/policy-service.ts';
import type { DataSourceSpec } from '../config/datasource-schema.ts';
import type { Config } from '../config/schema.ts';
import type { ServiceRegistry } from '../gateway/service-registry.ts';
import type { AppliedDataSources } from './applied.ts';
import { DataSourceError, type FieldProblem } from './errors.ts';
import { policyProblems } from './spec.ts';
import type { ConfiguredDataSources } from './views.ts';
import { ADMIN_API_PATH, ADMIN_SCOPE, WLCG_ANY_AUDIENCE } from '../config/names.ts';

export interface ConflictDeps {
  config: Config;
  services: ServiceRegistry;
  policy: PolicyService;
  groups: Pick<Groups, 'exists'>;
  configured: ConfiguredDataSources;
  applied: AppliedDataSources;
}

/** Name, audience and host conflicts with every other data source and configured service (`self`: the id of the record being changed). */
function conflicts(deps: ConflictDeps, spec: DataSourceSpec, self: string | undefined): FieldProblem[] {
  const { config, services, configured, applied } = deps;
  const problems: FieldProblem[] = [];
  const others = [...applied.records()].filter((r) => r.id !== self);
  if (configured.views.has(spec.name) || services.isConfigured(spec.name) || others.some((r) => r.spec.name === spec.name)) {
    problems.push({ field: 'name', message: `a data source named ${spec.name} already exists` });
  }
  if (configured.audiences.has(spec.audience) || others.some((r) => r.spec.audience === spec.audience)) {
    problems.push({ field: 'audience', message: `${spec.audience} is already the audience of another data source` });
  }
  if (spec.audience === config.issuer || spec.audience.startsWith(`${config.issuer}/api/`)
    || spec.audience === `${config.issuer}${ADMIN_API_PATH}` || spec.audience.startsWith(`${config.issuer}${ADMIN_API_PATH}/`)) {
    problems.push({ field: 'audience', message: 'the issuer, its admin API and its gateway routes cannot be a data source audience' });
  }
  spec.scopes?.forEach((scope, i) => {
    if (scope === ADMIN_SCOPE) problems.push({ field: `scopes.${i}`, message: `${ADMIN_SCOPE} is the scope of the built-in admin API only` });
  });
  if (spec.audience === WLCG_ANY_AUDIENCE) {
    problems.push({ field: 'audience', message: 'the WLCG "any" audience is not a data source (WLCG profile §2.1.3)' });
  }
  spec.hosts.forEach((host, i) => {
    const owner = services.byHost(host);
    if (owner && owner.name !== (self ? applied.get(self)?.spec.name : undefined)) problems.push({ field: `hosts.${i}`, message: `${host} is already a host of ${owner.name}` });
  });
  return problems;
}

/**
 * Refuses a spec that conflicts with another data source or whose policy
 * lines name unknown domains or groups.
 *
 * @throws DataSourceError `invalid_request` with every problem found
 */
export async function assertNoConflicts(deps: ConflictDeps, spec: DataSourceSpec, self: string | undefined): Promise<void> {
  const domains = deps.policy.domains();
  const problems = [...conflicts(deps, spec, self), ...await policyProblems(spec, domains, (path) => deps.groups.exists(path))];
  if (problems.length) throw new DataSourceError('invalid_request', problems);
}
