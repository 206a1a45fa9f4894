/**
 * The stored data sources this replica has applied: kept in memory and
 * turned into a resource server (token issuance) and a gateway service each.
 * A stored record never overrides a configured resource server or service.
 */
import type { Config } from '../config/schema.ts';
import type { ServiceRegistry } from '../gateway/service-registry.ts';
import type { Logger } from '../observability/logger.ts';
import type { ResourceServers } from '../resource-servers/resource-servers.ts';
import { gatewayResource } from '../gateway/protected-resource.ts';
import type { StoredDataSource } from './records.ts';
import { resourceServerOf, serviceOf } from './spec.ts';
import type { ConfiguredDataSources } from './views.ts';

export interface AppliedDeps {
  config: Config;
  logger: Logger;
  resourceServers: ResourceServers;
  services: ServiceRegistry;
  configured: ConfiguredDataSources;
}

/** Store records applied on this replica, by id. */
export class AppliedDataSources {
  readonly #deps: AppliedDeps;
  readonly #records = new Map<string, StoredDataSource>();
  #version = 0;

  constructor(deps: AppliedDeps) {
    this.#deps = deps;
  }

  /** Raised whenever a record is applied or withdrawn. */
  get version(): number {
    return this.#version;
  }

  records(): IterableIterator<StoredDataSource> {
    return this.#records.values();
  }

  get(id: string): StoredDataSource | undefined {
    return this.#records.get(id);
  }

  byName(name: string): StoredDataSource | undefined {
    for (const record of this.#records.values()) if (record.spec.name === name) return record;
    return undefined;
  }

  /** Whether `name` or `audience` belongs to the configuration file. */
  isConfigured(name: string, audience?: string): boolean {
    const { configured, services } = this.#deps;
    return configured.views.has(name) || services.isConfigured(name) || (audience !== undefined && configured.audiences.has(audience));
  }

  /** Applies a record to token issuance and the gateway, replacing its previous state. */
  apply(record: StoredDataSource): void {
    const previous = this.#records.get(record.id);
    if (previous && JSON.stringify(previous) === JSON.stringify(record)) return;
    const { resourceServers, services, config } = this.#deps;
    const { spec } = record;
    if (this.isConfigured(spec.name, spec.audience)) {
      this.#deps.logger.error({ name: spec.name, audience: spec.audience }, 'a stored data source has the name or audience of a configured one; the configured one wins and the stored one is ignored');
      if (previous) this.#unapply(previous);
      this.#records.set(record.id, record);
      return;
    }
    if (previous) {
      if (previous.spec.audience !== spec.audience) resourceServers.delete(previous.spec.audience);
      if (previous.spec.name !== spec.name) {
        services.delete(previous.spec.name);
        resourceServers.alias(gatewayResource(config.issuer, previous.spec.name), undefined);
      }
    }
    const rs = resourceServerOf(spec);
    resourceServers.set(rs);
    services.set(serviceOf(spec), rs);
    resourceServers.alias(gatewayResource(config.issuer, spec.name), spec.upstream ? spec.audience : undefined);
    this.#records.set(record.id, record);
    this.#version += 1;
  }

  /** Withdraws a record from token issuance and the gateway and forgets it. */
  withdraw(record: StoredDataSource): void {
    this.#unapply(record);
    this.#records.delete(record.id);
  }

  /** Withdraws the record with id `id`, if applied. */
  withdrawId(id: string): void {
    const previous = this.#records.get(id);
    if (previous) this.withdraw(previous);
  }

  /** Makes the applied records exactly `next` (a full reload). */
  replaceAll(next: Map<string, StoredDataSource>): void {
    for (const [id, record] of this.#records) {
      if (!next.has(id)) this.withdraw(record);
    }
    for (const record of next.values()) this.apply(record);
  }

  #unapply(record: StoredDataSource): void {
    const { resourceServers, services, config, configured } = this.#deps;
    if (configured.audiences.has(record.spec.audience) || services.isConfigured(record.spec.name)) return;
    resourceServers.delete(record.spec.audience);
    services.delete(record.spec.name);
    resourceServers.alias(gatewayResource(config.issuer, record.spec.name), undefined);
    this.#version += 1;
  }
}
