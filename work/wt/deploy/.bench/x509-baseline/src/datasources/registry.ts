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
 * Store keys (each operation touches one key, so Redis Cluster needs no
 * cross-slot commands):
 * - `datasource:ids`: set of record ids;
 * - `datasource:<id>`: the record (its validated spec, the policy lines it
 *   added, its introspection client id, timestamps);
 * - `datasource:version`, channel `datasource:changes`: propagation;
 * - `datasource:lock`: serialises changes across replicas;
 * - `datasource:seeded`: names of configuration seeds already written once.
 */
import { randomUUID } from 'node:crypto';
import type Provider from 'oidc-provider';
import type { Groups } from '../accounts/groups.ts';
import { PolicyBusyError, PolicyValidationError, type PolicyService } from '../authz/policy-service.ts';
import { lineKey } from '../authz/rules.ts';
import type { PolicyLine } from '../authz/types.ts';
import { ConfigError } from '../config/index.ts';
import type { DataSourceSpec } from '../config/datasource-schema.ts';
import { WLCG_ANY_AUDIENCE, type Config, type ResourceServerConfig, type ServiceConfig } from '../config/schema.ts';
import type { ServiceRegistry } from '../gateway/service-registry.ts';
import type { Audit } from '../observability/audit.ts';
import type { Logger } from '../observability/logger.ts';
import type { ResourceServers } from '../oidc/resource-servers.ts';
import type { Store } from '../store/store.ts';
import { ChangeFeed, type DataSourceChange } from './change-feed.ts';
import { DataSourceError, type FieldProblem } from './errors.ts';
import { createIntrospectionClient, deleteIntrospectionClient, rotateIntrospectionSecret, type IntrospectionCredentials } from './introspection-client.ts';
import { audienceMetadataUrl, gatewayResource, protectedResourceMetadataUrl } from './protected-resource.ts';
import {
  accessTokenFormatOf, domainOf, effectiveScopes, operationsOf, parseDataSource, policyLinesOf, policyProblems, resourceServerOf, serviceOf,
} from './spec.ts';

const IDS_KEY = 'datasource:ids';
const recordKey = (id: string) => `datasource:${id}`;
const LOCK_KEY = 'datasource:lock';
const SEEDED_KEY = 'datasource:seeded';
const LOCK_TTL_SECONDS = 30;
const LOCK_WAIT_MS = 10_000;

/** A data source as stored. */
export interface StoredDataSource {
  /** Stable id: a rename keeps the record. */
  id: string;
  spec: DataSourceSpec;
  /** The policy lines this data source added (update and delete change exactly these). */
  lines: PolicyLine[];
  introspectionClientId?: string;
  /** How it was created. */
  createdVia: ChangeContext['via'];
  createdAt: string;
  updatedAt: string;
}

/** Who makes a change, for the audit trail. */
export interface ChangeContext {
  /** An account id, `client:<id>`, `cli` or `config`. */
  actor: string;
  ip?: string | undefined;
  via: 'api' | 'cli' | 'config';
}

/** What the registry derives from a record: what fedgate does with it. */
export interface EffectiveDataSource {
  scopes: string[];
  domain: string;
  accessTokenFormat: 'jwt' | 'opaque';
  operations: Record<string, string[]>;
  /** `/api/<name>`: the gateway route, when it has an upstream. */
  gatewayUrl: string | null;
  /** The decision endpoint for reverse proxies in front of it. */
  authzUrl: string;
  /** RFC 9728 documents: by the gateway's resource identifier (with an upstream) and by audience. */
  protectedResourceMetadata: string[];
}

/** A data source as the admin API and the command line show it. */
export interface DataSourceView {
  /** The record (configured entries: as derived from the configuration file). */
  spec: DataSourceSpec;
  effective: EffectiveDataSource;
  /** `store`: created through the API, the CLI or a `dataSources` seed; `config`: `resourceServers` / `gateway.services` of the file (read-only). */
  source: 'store' | 'config';
  readOnly: boolean;
  introspectionClientId?: string | undefined;
  /** The policy lines it manages. */
  lines: PolicyLine[];
  createdVia?: ChangeContext['via'];
  createdAt?: string;
  updatedAt?: string;
}

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

/** What a change answers: the data source, and introspection credentials when a secret was just made (shown once). */
export interface ChangeResult {
  view: DataSourceView;
  credentials?: IntrospectionCredentials | undefined;
  /** Policy lines added and removed by the change. */
  added: PolicyLine[];
  removed: PolicyLine[];
}

/** A `[a-z0-9-]` name for a configured resource server that no gateway service names (its audience's host and path). */
function slugOf(audience: string): string {
  const url = URL.parse(audience);
  const raw = url && url.host ? `${url.host}${url.pathname}` : audience;
  return raw.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 63) || 'resource-server';
}

/** The record of a configured resource server (and the service fronting it), for display. */
function configuredSpec(rs: ResourceServerConfig, service: ServiceConfig | undefined, name: string): DataSourceSpec {
  return {
    name,
    audience: rs.audience,
    ...(rs.name ? { displayName: rs.name } : {}),
    kind: rs.kind,
    scopes: rs.scopes,
    profile: rs.profile,
    ...(rs.accessTokenTtl !== undefined ? { accessTokenTtl: rs.accessTokenTtl } : {}),
    accessTokenFormat: rs.accessTokenFormat,
    signingAlg: rs.signingAlg,
    ...(service?.domain ? { domain: service.domain } : {}),
    ...(service?.upstream ? { upstream: service.upstream } : {}),
    hosts: service?.hosts ?? [],
    timeoutSeconds: service?.timeoutSeconds ?? 30,
    forwardToken: service?.forwardToken ?? true,
    defaultPolicies: [],
    scopeGrants: [],
    introspection: false,
  };
}

/** JSON merge patch (RFC 7396) of a record: `null` removes a field, objects are replaced whole. */
function mergePatch(current: DataSourceSpec, patch: unknown): unknown {
  if (!patch || typeof patch !== 'object' || Array.isArray(patch)) return patch;
  const merged: Record<string, unknown> = { ...current };
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete merged[key];
    else merged[key] = value;
  }
  return merged;
}

/** The data sources: store-backed records plus the configured ones, applied to token issuance and the gateway. */
export class DataSources {
  readonly #deps: DataSourcesDeps;
  readonly #feed: ChangeFeed;
  readonly #logger: Logger;
  /** Configured (read-only) entries by name. */
  readonly #configured = new Map<string, DataSourceView>();
  readonly #configuredAudiences: Set<string>;
  /** Store records applied on this replica, by id. */
  #records = new Map<string, StoredDataSource>();
  #seenVersion = 0;
  #localVersion = 0;
  #poll: NodeJS.Timeout | undefined;
  #reloading: Promise<void> | undefined;

  constructor(deps: DataSourcesDeps) {
    this.#deps = deps;
    this.#feed = new ChangeFeed(deps.store);
    this.#logger = deps.logger.child({ component: 'datasources' });
    const { config } = deps;
    this.#configuredAudiences = new Set(config.resourceServers.map((rs) => rs.audience));
    const named = new Set<string>();
    for (const service of config.gateway.services) {
      const rs = config.resourceServers.find((r) => r.audience === service.audience);
      if (!rs) continue;
      named.add(rs.audience);
      this.#configured.set(service.name, this.#view(configuredSpec(rs, service, service.name), { source: 'config' }));
      // RFC 9728 clients may ask for a token with the gateway's resource identifier.
      if (service.upstream) deps.resourceServers.alias(gatewayResource(config.issuer, service.name), rs.audience);
    }
    for (const rs of config.resourceServers) {
      if (named.has(rs.audience)) continue;
      let name = slugOf(rs.audience);
      for (let i = 2; this.#configured.has(name); i += 1) name = `${slugOf(rs.audience).slice(0, 60)}-${i}`;
      this.#configured.set(name, this.#view(configuredSpec(rs, undefined, name), { source: 'config' }));
    }
  }

  /** Raised whenever this replica applies a change. */
  get version(): number {
    return this.#localVersion;
  }

  /**
   * Checks the configuration's `dataSources` against the rest of it, writes
   * the seeds not written before, loads the records and follows changes.
   *
   * @throws ConfigError when a seed conflicts with a configured resource server or service, or is invalid.
   */
  async start(): Promise<void> {
    const { config } = this.#deps;
    const problems: string[] = [];
    config.dataSources.forEach((ds, i) => {
      if (this.#configured.has(ds.name) || this.#deps.services.isConfigured(ds.name)) problems.push(`dataSources.${i}.name: ${ds.name} is already a configured resource server or gateway service`);
      if (this.#configuredAudiences.has(ds.audience)) problems.push(`dataSources.${i}.audience: ${ds.audience} is already a configured resource server`);
    });
    if (problems.length) throw new ConfigError('dataSources', problems);
    await this.#feed.start((change) => this.#onChange(change));
    await this.reload();
    await this.#seed();
    const interval = config.policies.pollSeconds * 1000;
    this.#poll = setInterval(() => {
      this.#feed.currentVersion().then((version) => {
        if (version !== this.#seenVersion) return this.reload();
        return undefined;
      }).catch((err: Error) => this.#logger.warn({ err: { message: err.message } }, 'data source version check failed; keeping the current data sources'));
    }, interval);
    this.#poll.unref();
  }

  async close(): Promise<void> {
    if (this.#poll) clearInterval(this.#poll);
    await this.#feed.close();
  }

  // Reading.

  /** Every data source: configured ones first, then the store's in creation order. */
  list(): DataSourceView[] {
    const stored = [...this.#records.values()].sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.spec.name.localeCompare(b.spec.name));
    return [...this.#configured.values(), ...stored.map((r) => this.#storedView(r))];
  }

  /** The data source named `name`. */
  get(name: string): DataSourceView | undefined {
    const configured = this.#configured.get(name);
    if (configured) return configured;
    const record = this.#byName(name);
    return record ? this.#storedView(record) : undefined;
  }

  /** The data source whose audience, or gateway resource identifier, is `resource`. */
  byResource(resource: string): DataSourceView | undefined {
    return this.list().find((v) => v.spec.audience === resource || v.effective.gatewayUrl === resource);
  }

  // Changes.

  /**
   * Creates a data source from `input` (validated), with its policy lines and
   * introspection client. All or nothing: a refusal leaves no trace.
   *
   * @throws DataSourceError
   */
  async create(input: unknown, context: ChangeContext): Promise<ChangeResult> {
    try {
      const spec = parseDataSource(input);
      const result = await this.#locked(async () => {
        await this.reload();
        return this.#create(spec, context);
      });
      await this.#audit(context, 'create', result.view.spec.name, null, result.view, result);
      return result;
    } catch (err) {
      await this.#auditFailure(context, 'create', (input as { name?: unknown } | null)?.name, err);
      throw err;
    }
  }

  /**
   * Replaces (`merge: false`, PUT) or patches (`merge: true`, PATCH, RFC 7396)
   * the data source named `name`. Renames keep the record; its policy lines
   * move to the new domain, scope grants follow a new audience.
   *
   * @throws DataSourceError
   */
  async update(name: string, input: unknown, context: ChangeContext, options: { merge: boolean }): Promise<ChangeResult> {
    let before: DataSourceView | undefined;
    try {
      const result = await this.#locked(async () => {
        await this.reload();
        const current = this.#mustFindStored(name);
        before = this.#storedView(current);
        const body = input && typeof input === 'object' && !Array.isArray(input) ? input as Record<string, unknown> : input;
        const next = options.merge ? mergePatch(current.spec, body) : (body && typeof body === 'object' && !Array.isArray(body) && !('name' in body) ? { ...body, name } : body);
        return this.#update(current, parseDataSource(next));
      });
      await this.#audit(context, 'update', name, before!, result.view, result);
      return result;
    } catch (err) {
      await this.#auditFailure(context, 'update', name, err);
      throw err;
    }
  }

  /**
   * Removes the data source named `name`: its resource server (no new
   * tokens), its gateway service (route and `/authz` closed, earlier tokens
   * refused), the policy lines it added and its introspection client.
   *
   * @throws DataSourceError
   */
  async remove(name: string, context: ChangeContext): Promise<DataSourceView> {
    try {
      const { view, removed } = await this.#locked(async () => {
        await this.reload();
        const current = this.#mustFindStored(name);
        const view = this.#storedView(current);
        const { store, policy } = this.#deps;
        const diff = await this.#policyChange(() => policy.remove(current.lines));
        if (current.introspectionClientId) await deleteIntrospectionClient(store, current.introspectionClientId);
        await store.delete(recordKey(current.id));
        await store.removeFromSet(IDS_KEY, current.id);
        this.#unapply(current);
        this.#records.delete(current.id);
        await this.#commit(current.id);
        return { view, removed: diff.removed };
      });
      await this.#audit(context, 'delete', name, view, null, { added: [], removed });
      return view;
    } catch (err) {
      await this.#auditFailure(context, 'delete', name, err);
      throw err;
    }
  }

  /** A new secret for the data source's introspection client (the old one stops working at once). */
  async rotateIntrospectionSecret(name: string, context: ChangeContext): Promise<IntrospectionCredentials> {
    try {
      const credentials = await this.#locked(async () => {
        await this.reload();
        const current = this.#mustFindStored(name);
        if (!current.introspectionClientId) throw new DataSourceError('invalid_request', [{ field: 'introspection', message: 'this data source has no introspection client (set introspection: true)' }]);
        return rotateIntrospectionSecret(this.#deps.provider(), this.#deps.store, current.introspectionClientId, current.spec.displayName ?? current.spec.name);
      });
      await this.#deps.audit.record({
        type: 'admin.change', actor: context.actor, outcome: 'success', ip: context.ip, client: credentials.client_id, target: `resource-server:${name}`,
        detail: { action: 'rotate_introspection_secret', via: context.via },
      });
      return credentials;
    } catch (err) {
      await this.#auditFailure(context, 'rotate_introspection_secret', name, err);
      throw err;
    }
  }

  /** Loads every stored record again and applies the differences. */
  async reload(): Promise<void> {
    // Concurrent triggers (a gap and the poll) share one reload.
    this.#reloading ??= (async () => {
      try {
        const version = await this.#feed.currentVersion();
        const ids = await this.#deps.store.setMembers(IDS_KEY);
        const loaded = await Promise.all(ids.map((id) => this.#deps.store.get<StoredDataSource>(recordKey(id))));
        const next = new Map<string, StoredDataSource>();
        for (const record of loaded) if (record?.id && record.spec) next.set(record.id, record);
        for (const [id, record] of this.#records) {
          if (!next.has(id)) {
            this.#unapply(record);
            this.#records.delete(id);
          }
        }
        for (const record of next.values()) this.#applyRecord(record);
        this.#seenVersion = Math.max(this.#seenVersion, version);
      } finally {
        this.#reloading = undefined;
      }
    })();
    return this.#reloading;
  }

  // Internals.

  #byName(name: string): StoredDataSource | undefined {
    for (const record of this.#records.values()) if (record.spec.name === name) return record;
    return undefined;
  }

  #mustFindStored(name: string): StoredDataSource {
    if (this.#configured.has(name)) {
      throw new DataSourceError('read_only', `${name} is defined in the configuration file (resourceServers / gateway.services); change it there`);
    }
    const record = this.#byName(name);
    if (!record) throw new DataSourceError('not_found', `no data source ${name}`);
    return record;
  }

  #onChange(change: DataSourceChange): void {
    if (change.version <= this.#seenVersion) return;
    if (change.version !== this.#seenVersion + 1) {
      this.reload().catch((err: Error) => this.#logger.error({ err: { message: err.message } }, 'data source reload failed; keeping the current data sources'));
      return;
    }
    this.#seenVersion = change.version;
    this.#deps.store.get<StoredDataSource>(recordKey(change.id)).then((record) => {
      const previous = this.#records.get(change.id);
      if (record?.spec) this.#applyRecord(record);
      else if (previous) {
        this.#unapply(previous);
        this.#records.delete(change.id);
      }
    }).catch((err: Error) => {
      this.#logger.warn({ err: { message: err.message } }, 'data source change could not be read; reloading');
      this.reload().catch(() => {});
    });
  }

  /** Announces a local change; reloads when other changes came in between. */
  async #commit(id: string): Promise<void> {
    const version = await this.#feed.announce(id);
    if (version === this.#seenVersion + 1) this.#seenVersion = version;
    else await this.reload();
  }

  /** Applies a record to token issuance and the gateway, replacing its previous state. */
  #applyRecord(record: StoredDataSource): void {
    const previous = this.#records.get(record.id);
    if (previous && JSON.stringify(previous) === JSON.stringify(record)) return;
    const { resourceServers, services, config } = this.#deps;
    const { spec } = record;
    if (this.#configured.has(spec.name) || services.isConfigured(spec.name) || this.#configuredAudiences.has(spec.audience)) {
      this.#logger.error({ name: spec.name, audience: spec.audience }, 'a stored data source has the name or audience of a configured one; the configured one wins and the stored one is ignored');
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
    this.#localVersion += 1;
  }

  #unapply(record: StoredDataSource): void {
    const { resourceServers, services, config } = this.#deps;
    if (this.#configuredAudiences.has(record.spec.audience) || services.isConfigured(record.spec.name)) return;
    resourceServers.delete(record.spec.audience);
    services.delete(record.spec.name);
    resourceServers.alias(gatewayResource(config.issuer, record.spec.name), undefined);
    this.#localVersion += 1;
  }

  /** Name, audience and host conflicts with every other data source and configured service. */
  #conflicts(spec: DataSourceSpec, self: string | undefined): FieldProblem[] {
    const { config, services } = this.#deps;
    const problems: FieldProblem[] = [];
    const others = [...this.#records.values()].filter((r) => r.id !== self);
    if (this.#configured.has(spec.name) || services.isConfigured(spec.name) || others.some((r) => r.spec.name === spec.name)) {
      problems.push({ field: 'name', message: `a data source named ${spec.name} already exists` });
    }
    if (this.#configuredAudiences.has(spec.audience) || others.some((r) => r.spec.audience === spec.audience)) {
      problems.push({ field: 'audience', message: `${spec.audience} is already the audience of another data source` });
    }
    if (spec.audience === config.issuer || spec.audience.startsWith(`${config.issuer}/api/`)) {
      problems.push({ field: 'audience', message: 'the issuer and its gateway routes cannot be a data source audience' });
    }
    if (spec.audience === WLCG_ANY_AUDIENCE) {
      problems.push({ field: 'audience', message: 'the WLCG "any" audience is not a data source (WLCG profile §2.1.3)' });
    }
    spec.hosts.forEach((host, i) => {
      const owner = services.byHost(host);
      if (owner && owner.name !== (self ? this.#records.get(self)?.spec.name : undefined)) problems.push({ field: `hosts.${i}`, message: `${host} is already a host of ${owner.name}` });
    });
    return problems;
  }

  async #validate(spec: DataSourceSpec, self: string | undefined): Promise<void> {
    const domains = this.#deps.policy.domains();
    const problems = [...this.#conflicts(spec, self), ...await policyProblems(spec, domains, (path) => this.#deps.groups.exists(path))];
    if (problems.length) throw new DataSourceError('invalid_request', problems);
  }

  async #create(spec: DataSourceSpec, context: ChangeContext): Promise<ChangeResult> {
    await this.#validate(spec, undefined);
    const { store, policy } = this.#deps;
    const now = new Date().toISOString();
    const record: StoredDataSource = { id: randomUUID(), spec, lines: [], createdVia: context.via, createdAt: now, updatedAt: now };
    let credentials: IntrospectionCredentials | undefined;
    if (spec.introspection) {
      credentials = await createIntrospectionClient(this.#deps.provider(), store, spec.name, spec.displayName ?? spec.name);
      record.introspectionClientId = credentials.client_id;
    }
    // Live here first: the policy checks that scope grants name a known audience and lines a known domain.
    await store.set(recordKey(record.id), record);
    await store.addToSet(IDS_KEY, record.id);
    this.#applyRecord(record);
    let added: PolicyLine[];
    try {
      ({ added } = await this.#policyChange(() => policy.add(policyLinesOf(spec).map((l) => l.line))));
    } catch (err) {
      // Nothing half-created: the record and its client go again.
      await store.delete(recordKey(record.id));
      await store.removeFromSet(IDS_KEY, record.id);
      if (record.introspectionClientId) await deleteIntrospectionClient(store, record.introspectionClientId);
      this.#unapply(record);
      this.#records.delete(record.id);
      await this.#commit(record.id);
      throw err;
    }
    const final: StoredDataSource = { ...record, lines: added };
    await store.set(recordKey(record.id), final);
    this.#applyRecord(final);
    await this.#commit(record.id);
    return { view: this.#storedView(final), credentials, added, removed: [] };
  }

  async #update(current: StoredDataSource, spec: DataSourceSpec): Promise<ChangeResult> {
    await this.#validate(spec, current.id);
    const { store, policy } = this.#deps;
    let credentials: IntrospectionCredentials | undefined;
    const next: StoredDataSource = { ...current, spec, updatedAt: new Date().toISOString() };
    if (spec.introspection && !current.introspectionClientId) {
      credentials = await createIntrospectionClient(this.#deps.provider(), store, spec.name, spec.displayName ?? spec.name);
      next.introspectionClientId = credentials.client_id;
    } else if (!spec.introspection) {
      delete next.introspectionClientId;
    }
    await store.set(recordKey(current.id), next);
    this.#applyRecord(next);
    const wanted = policyLinesOf(spec).map((l) => l.line);
    const wantedKeys = new Set(wanted.map(lineKey));
    const stale = current.lines.filter((l) => !wantedKeys.has(lineKey(l)));
    let added: PolicyLine[];
    let removed: PolicyLine[];
    try {
      ({ added } = await this.#policyChange(() => policy.add(wanted)));
    } catch (err) {
      await store.set(recordKey(current.id), current);
      this.#applyRecord(current);
      if (credentials) await deleteIntrospectionClient(store, credentials.client_id);
      await this.#commit(current.id);
      throw err;
    }
    try {
      ({ removed } = await this.#policyChange(() => policy.remove(stale)));
    } catch (err) {
      // The new lines are in; the old ones are still owned so that a retry removes them.
      await store.set(recordKey(current.id), { ...next, lines: [...current.lines, ...added] });
      throw err;
    }
    const kept = current.lines.filter((l) => wantedKeys.has(lineKey(l)));
    const final: StoredDataSource = { ...next, lines: [...kept, ...added] };
    await store.set(recordKey(current.id), final);
    this.#applyRecord(final);
    if (current.introspectionClientId && !spec.introspection) await deleteIntrospectionClient(store, current.introspectionClientId);
    await this.#commit(current.id);
    return { view: this.#storedView(final), credentials, added, removed };
  }

  /** Runs a policy change, turning its refusals into data source errors. */
  async #policyChange<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (err) {
      if (err instanceof PolicyValidationError) throw new DataSourceError('invalid_request', err.problems.map((message) => ({ field: 'defaultPolicies', message })));
      if (err instanceof PolicyBusyError) throw new DataSourceError('temporarily_unavailable', err.message);
      throw err;
    }
  }

  async #seed(): Promise<void> {
    const { config, store } = this.#deps;
    if (!config.dataSources.length) return;
    const seeded = new Set(await store.setMembers(SEEDED_KEY));
    const pending = config.dataSources.filter((ds) => !seeded.has(ds.name));
    if (!pending.length) return;
    const problems: string[] = [];
    await this.#locked(async () => {
      await this.reload();
      const again = new Set(await store.setMembers(SEEDED_KEY));
      for (const spec of pending) {
        if (again.has(spec.name)) continue;
        const index = config.dataSources.indexOf(spec);
        const taken = [...this.#records.values()].find((r) => r.spec.name === spec.name || r.spec.audience === spec.audience);
        if (taken) {
          // The store holds the truth: a data source created meanwhile (API, CLI) is not replaced.
          this.#logger.warn({ name: spec.name, existing: taken.spec.name }, 'configured data source not seeded: the store already has one with its name or audience');
        } else {
          try {
            const result = await this.#create(spec, { actor: 'config', via: 'config' });
            await this.#audit({ actor: 'config', via: 'config' }, 'create', spec.name, null, result.view, result);
            this.#logger.info({ name: spec.name, audience: spec.audience }, 'data source seeded from configuration');
          } catch (err) {
            if (!(err instanceof DataSourceError)) throw err;
            problems.push(...(err.problems.length ? err.problems.map((p) => `dataSources.${index}.${p.field}: ${p.message}`) : [`dataSources.${index}: ${err.message}`]));
            continue;
          }
        }
        await store.addToSet(SEEDED_KEY, spec.name);
      }
    });
    if (problems.length) throw new ConfigError('dataSources', problems);
  }

  async #locked<T>(work: () => Promise<T>): Promise<T> {
    const { store } = this.#deps;
    const deadline = Date.now() + LOCK_WAIT_MS;
    const token = `${this.#feed.origin}:${randomUUID()}`;
    while (!(await store.setIfAbsent(LOCK_KEY, token, LOCK_TTL_SECONDS))) {
      if (Date.now() > deadline) throw new DataSourceError('temporarily_unavailable', 'another data source change is in progress; try again');
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    try {
      return await work();
    } finally {
      if ((await store.get(LOCK_KEY)) === token) await store.delete(LOCK_KEY);
    }
  }

  #storedView(record: StoredDataSource): DataSourceView {
    return this.#view(record.spec, {
      source: 'store',
      lines: record.lines,
      introspectionClientId: record.introspectionClientId,
      createdVia: record.createdVia,
      createdAt: record.createdAt,
      updatedAt: record.updatedAt,
    });
  }

  #view(spec: DataSourceSpec, extra: Partial<DataSourceView> & { source: DataSourceView['source'] }): DataSourceView {
    const { issuer } = this.#deps.config;
    const gatewayUrl = spec.upstream ? gatewayResource(issuer, spec.name) : null;
    return {
      spec,
      effective: {
        // A configured resource server accepts exactly its listed scopes.
        scopes: extra.source === 'config' ? [...spec.scopes ?? []] : effectiveScopes(spec),
        domain: domainOf(spec),
        accessTokenFormat: accessTokenFormatOf(spec),
        operations: extra.source === 'config' ? {} : operationsOf(spec),
        gatewayUrl,
        authzUrl: `${issuer}/authz?service=${spec.name}`,
        protectedResourceMetadata: [...(gatewayUrl ? [protectedResourceMetadataUrl(gatewayUrl)] : []), audienceMetadataUrl(issuer, spec.audience)],
      },
      readOnly: extra.source === 'config',
      lines: [],
      ...extra,
    };
  }

  async #audit(context: Pick<ChangeContext, 'actor' | 'via'> & { ip?: string | undefined }, action: string, name: string, before: DataSourceView | null, after: DataSourceView | null, diff: { added: PolicyLine[]; removed: PolicyLine[] }): Promise<void> {
    await this.#deps.audit.record({
      type: 'admin.change', actor: context.actor, outcome: 'success', ip: context.ip, target: `resource-server:${name}`,
      detail: {
        action, via: context.via,
        before: before ? { ...before.spec, introspectionClientId: before.introspectionClientId } : null,
        after: after ? { ...after.spec, introspectionClientId: after.introspectionClientId } : null,
        policy_added: diff.added.length, policy_removed: diff.removed.length,
      },
    });
  }

  async #auditFailure(context: ChangeContext, action: string, name: unknown, err: unknown): Promise<void> {
    if (!(err instanceof DataSourceError)) return;
    await this.#deps.audit.record({
      type: 'admin.change', actor: context.actor, outcome: 'failure', ip: context.ip, target: `resource-server:${typeof name === 'string' ? name.slice(0, 100) : '?'}`,
      detail: { action, via: context.via, error: err.code, problems: err.problems.slice(0, 20) },
    });
  }
}

/** The stored data source records, read directly (the `keys rotate` command needs their token lifetimes). */
export async function readStoredDataSources(store: Store): Promise<StoredDataSource[]> {
  const ids = await store.setMembers(IDS_KEY);
  const records = await Promise.all(ids.map((id) => store.get<StoredDataSource>(recordKey(id))));
  return records.filter((r): r is StoredDataSource => !!r?.spec);
}
