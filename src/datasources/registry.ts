/**
 * The data sources of a deployment: the records in the store (created
 * through the admin API, the command line, or seeded from the
 * configuration's `dataSources`), and, read-only, the resource servers and
 * gateway services of the configuration file. Each replica keeps the
 * records in memory and applies them to the resource server registry (token
 * issuance) and the service registry (gateway); changes reach every replica
 * through the store's pub/sub within milliseconds, with a version check every
 * `policies.pollSeconds` as the safety net.
 *
 * This class only coordinates; each concern has its module: records.ts
 * (storage and the change lock), applied.ts (this replica's applied
 * records), sync.ts (change feed), changes.ts (the steps of a change),
 * conflicts.ts, policy-writes.ts, introspection-client.ts (client writes),
 * change-audit.ts, seed.ts and views.ts.
 */
import type Provider from 'oidc-provider';
import type { Groups } from '../accounts/groups.ts';
import type { PolicyService } from '../authz/policy-service.ts';
import type { Config } from '../config/schema.ts';
import type { ServiceRegistry } from '../gateway/service-registry.ts';
import type { Audit } from '../observability/audit.ts';
import type { Logger } from '../observability/logger.ts';
import type { ResourceServers } from '../resource-servers/resource-servers.ts';
import type { Store } from '../store/store.ts';
import { AppliedDataSources } from './applied.ts';
import { auditChange, auditFailure, auditSecretRotation } from './change-audit.ts';
import { createDataSource, removeDataSource, updateDataSource, updatedInput, type ChangeParts, type ChangeResult } from './changes.ts';
import { DataSourceError } from './errors.ts';
import { rotateIntrospectionSecret, type IntrospectionCredentials } from './introspection-client.ts';
import { DataSourceRecords, type ChangeContext, type StoredDataSource } from './records.ts';
import { checkSeeds, writeSeeds } from './seed.ts';
import { parseDataSource } from './spec.ts';
import { DataSourceSync } from './sync.ts';
import { configuredDataSources, storedView, type ConfiguredDataSources, type DataSourceView } from './views.ts';

export interface DataSourcesDeps {
  config: Config;
  store: Store;
  logger: Logger;
  audit: Audit;
  resourceServers: ResourceServers;
  services: ServiceRegistry;
  policy: PolicyService;
  groups: Pick<Groups, 'exists'>;
  /** The current oidc-provider instance (introspection clients are its clients). */
  provider(): Provider;
}

/** The data sources: store-backed records plus the configured ones, applied to token issuance and the gateway. */
export class DataSources {
  readonly #deps: DataSourcesDeps;
  readonly #logger: Logger;
  readonly #configured: ConfiguredDataSources;
  readonly #applied: AppliedDataSources;
  readonly #sync: DataSourceSync;
  readonly #parts: ChangeParts;

  constructor(deps: DataSourcesDeps) {
    this.#deps = deps;
    this.#logger = deps.logger.child({ component: 'datasources' });
    this.#configured = configuredDataSources(deps.config, deps.resourceServers);
    const records = new DataSourceRecords(deps.store);
    this.#applied = new AppliedDataSources({ ...deps, logger: this.#logger, configured: this.#configured });
    this.#sync = new DataSourceSync(deps.store, records, this.#applied, this.#logger);
    this.#parts = { ...deps, configured: this.#configured, records, applied: this.#applied, sync: this.#sync };
  }

  /** Raised whenever this replica applies a change. */
  get version(): number {
    return this.#applied.version;
  }

  /**
   * Checks the configuration's `dataSources` against the rest of it, writes
   * the seeds not written before, loads the records and follows changes.
   *
   * @throws ConfigError when a seed conflicts with a configured resource server or service, or is invalid.
   */
  async start(): Promise<void> {
    checkSeeds(this.#deps.config, (name) => this.#applied.isConfigured(name), this.#configured.audiences);
    await this.#sync.listen();
    await this.reload();
    await writeSeeds(this.#parts, this.#deps.audit, this.#logger);
    this.#sync.poll(this.#deps.config.policies.pollSeconds * 1000);
  }

  async close(): Promise<void> {
    await this.#sync.close();
  }

  /** Loads every stored record again and applies the differences. */
  reload(): Promise<void> {
    return this.#sync.reload();
  }

  // Reading.

  /** Every data source: configured ones first, then the store's in creation order. */
  list(): DataSourceView[] {
    const stored = [...this.#applied.records()].sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.spec.name.localeCompare(b.spec.name));
    return [...this.#configured.views.values(), ...stored.map((r) => this.#view(r))];
  }

  /** The data source named `name`. */
  get(name: string): DataSourceView | undefined {
    const configured = this.#configured.views.get(name);
    if (configured) return configured;
    const record = this.#applied.byName(name);
    return record ? this.#view(record) : undefined;
  }

  /** The data source whose audience, or gateway resource identifier, is `resource`. */
  byResource(resource: string): DataSourceView | undefined {
    return this.list().find((v) => v.spec.audience === resource || v.effective.gatewayUrl === resource);
  }

  // Changes: each runs under the change lock on freshly loaded records, and is audited whether it succeeds or is refused.

  /**
   * Creates a data source from `input` (validated), with its policy lines and
   * introspection client. All or nothing: a refusal leaves no trace.
   *
   * @throws DataSourceError
   */
  async create(input: unknown, context: ChangeContext): Promise<ChangeResult> {
    return this.#audited(context, 'create', (input as { name?: unknown } | null)?.name, async () => {
      const spec = parseDataSource(input);
      const result = await this.#locked(() => createDataSource(this.#parts, spec, context));
      await auditChange(this.#deps.audit, context, 'create', result.view.spec.name, null, result.view, result);
      return result;
    });
  }

  /**
   * Replaces (`merge: false`, PUT) or patches (`merge: true`, PATCH, RFC 7396)
   * the data source named `name`. Renames keep the record; its policy lines
   * move to the new domain, scope grants follow a new audience.
   *
   * @throws DataSourceError
   */
  async update(name: string, input: unknown, context: ChangeContext, options: { merge: boolean }): Promise<ChangeResult> {
    return this.#audited(context, 'update', name, async () => {
      let before: DataSourceView | undefined;
      const result = await this.#locked(() => {
        const current = this.#mustFindStored(name);
        before = this.#view(current);
        return updateDataSource(this.#parts, current, parseDataSource(updatedInput(current.spec, name, input, options.merge)));
      });
      await auditChange(this.#deps.audit, context, 'update', name, before!, result.view, result);
      return result;
    });
  }

  /**
   * Removes the data source named `name`: its resource server (no new
   * tokens), its gateway service (route and `/authz` closed, earlier tokens
   * refused), the policy lines it added and its introspection client.
   *
   * @throws DataSourceError
   */
  async remove(name: string, context: ChangeContext): Promise<DataSourceView> {
    return this.#audited(context, 'delete', name, async () => {
      const { view, removed } = await this.#locked(() => removeDataSource(this.#parts, this.#mustFindStored(name)));
      await auditChange(this.#deps.audit, context, 'delete', name, view, null, { added: [], removed });
      return view;
    });
  }

  /** A new secret for the data source's introspection client (the old one stops working at once). */
  async rotateIntrospectionSecret(name: string, context: ChangeContext): Promise<IntrospectionCredentials> {
    return this.#audited(context, 'rotate_introspection_secret', name, async () => {
      const credentials = await this.#locked(async () => {
        const current = this.#mustFindStored(name);
        if (!current.introspectionClientId) throw new DataSourceError('invalid_request', [{ field: 'introspection', message: 'this data source has no introspection client (set introspection: true)' }]);
        return rotateIntrospectionSecret(this.#deps.provider(), this.#deps.store, current.introspectionClientId, current.spec.displayName ?? current.spec.name);
      });
      await auditSecretRotation(this.#deps.audit, context, name, credentials.client_id);
      return credentials;
    });
  }

  // Internals.

  /** Runs `change`; a refusal is audited before it is thrown. */
  async #audited<T>(context: ChangeContext, action: string, name: unknown, change: () => Promise<T>): Promise<T> {
    try {
      return await change();
    } catch (err) {
      await auditFailure(this.#deps.audit, context, action, name, err);
      throw err;
    }
  }

  /** Runs `work` under the change lock, after loading the records other replicas may have changed. */
  #locked<T>(work: () => Promise<T>): Promise<T> {
    return this.#parts.records.locked(async () => {
      await this.reload();
      return work();
    });
  }

  #mustFindStored(name: string): StoredDataSource {
    if (this.#configured.views.has(name)) {
      throw new DataSourceError('read_only', `${name} is defined in the configuration file (resourceServers / gateway.services); change it there`);
    }
    const record = this.#applied.byName(name);
    if (!record) throw new DataSourceError('not_found', `no data source ${name}`);
    return record;
  }

  #view(record: StoredDataSource): DataSourceView {
    return storedView(this.#deps.config.issuer, record);
  }
}
