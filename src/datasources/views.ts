/**
 * How data sources are shown (admin API, command line, onboarding): the
 * record and what fedgate derives from it; and the read-only entries made
 * from the configuration file's `resourceServers` / `gateway.services`.
 */
import type { PolicyLine } from '../authz/types.ts';
import type { DataSourceSpec } from '../config/datasource-schema.ts';
import type { Config, ResourceServerConfig, ServiceConfig } from '../config/schema.ts';
import type { ResourceServers } from '../resource-servers/resource-servers.ts';
import { audienceMetadataUrl, gatewayResource, protectedResourceMetadataUrl } from '../gateway/protected-resource.ts';
import type { ChangeContext, StoredDataSource } from './records.ts';
import { accessTokenFormatOf, domainOf, effectiveScopes, operationsOf } from './spec.ts';

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

/** The view of `spec` with what fedgate derives from it. */
export function dataSourceView(issuer: string, spec: DataSourceSpec, extra: Partial<DataSourceView> & { source: DataSourceView['source'] }): DataSourceView {
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

/** The view of a stored record. */
export function storedView(issuer: string, record: StoredDataSource): DataSourceView {
  return dataSourceView(issuer, record.spec, {
    source: 'store',
    lines: record.lines,
    introspectionClientId: record.introspectionClientId,
    createdVia: record.createdVia,
    createdAt: record.createdAt,
    updatedAt: record.updatedAt,
  });
}

/** The read-only data sources of the configuration file, by name and by audience. */
export interface ConfiguredDataSources {
  readonly views: ReadonlyMap<string, DataSourceView>;
  readonly audiences: ReadonlySet<string>;
}

/**
 * The configuration file's resource servers as read-only data sources: named
 * after the gateway service fronting them, otherwise after their audience.
 * Registers the gateway resource identifier of each fronted one as an alias
 * of its audience (RFC 9728 clients may ask for a token with it).
 */
export function configuredDataSources(config: Config, resourceServers: ResourceServers): ConfiguredDataSources {
  const views = new Map<string, DataSourceView>();
  const named = new Set<string>();
  for (const service of config.gateway.services) {
    const rs = config.resourceServers.find((r) => r.audience === service.audience);
    if (!rs) continue;
    named.add(rs.audience);
    views.set(service.name, dataSourceView(config.issuer, configuredSpec(rs, service, service.name), { source: 'config' }));
    if (service.upstream) resourceServers.alias(gatewayResource(config.issuer, service.name), rs.audience);
  }
  for (const rs of config.resourceServers) {
    if (named.has(rs.audience)) continue;
    let name = slugOf(rs.audience);
    for (let i = 2; views.has(name); i += 1) name = `${slugOf(rs.audience).slice(0, 60)}-${i}`;
    views.set(name, dataSourceView(config.issuer, configuredSpec(rs, undefined, name), { source: 'config' }));
  }
  return { views, audiences: new Set(config.resourceServers.map((rs) => rs.audience)) };
}

/** A `[a-z0-9-]` name for a configured resource server that no gateway service names (its audience's host and path). */
function slugOf(audience: string): string {
  const url = URL.parse(audience);
  const raw = url?.host ? `${url.host}${url.pathname}` : audience;
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
    authzHeaders: service?.authzHeaders ?? 'nginx',
    timeoutSeconds: service?.timeoutSeconds ?? 30,
    forwardToken: service?.forwardToken ?? true,
    defaultPolicies: [],
    scopeGrants: [],
    introspection: false,
  };
}
