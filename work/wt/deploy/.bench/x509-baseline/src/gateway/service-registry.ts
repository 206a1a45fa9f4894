/**
 * The services behind the gateway, looked up by name (proxy,
 * `/authz?service=`) and by host (`/authz` behind a host-routing proxy):
 * the configured ones (`gateway.services`) and the data sources onboarded
 * at run time (src/datasources), which are added, replaced and removed while
 * fedgate runs. Lookups are per request, so a change applies to the next one.
 */
import type { Config, ResourceServerConfig, ServiceConfig } from '../config/schema.ts';
import { audiencePolicy, type AudiencePolicy } from './token-verifier.ts';

/** A service with what the enforcement points derive from its configuration once. */
export interface GatewayService {
  name: string;
  /** Policy domain: `domain`, else the name. */
  domain: string;
  audience: AudiencePolicy;
  config: ServiceConfig;
}

/** Services by name and by host (configured services first, then data sources in the order they were added; the first listing a host wins). */
export class ServiceRegistry {
  readonly #configured = new Map<string, GatewayService>();
  readonly #dynamic = new Map<string, GatewayService>();
  #byName = new Map<string, GatewayService>();
  #byHost = new Map<string, GatewayService>();
  readonly #listeners = new Set<() => void>();
  #version = 0;

  constructor(config: Pick<Config, 'gateway' | 'resourceServers'>) {
    for (const service of config.gateway.services) {
      this.#configured.set(service.name, {
        name: service.name,
        domain: service.domain ?? service.name,
        audience: audiencePolicy(service.audience, config.resourceServers),
        config: service,
      });
    }
    this.#index();
  }

  /** Raised by every change. */
  get version(): number {
    return this.#version;
  }

  /** The service named `name` (`/api/<name>`, `/authz?service=<name>`). */
  byName(name: string): GatewayService | undefined {
    return this.#byName.get(name);
  }

  /** The service for a Host value: exact (with port) first, then without the port. */
  byHost(host: string): GatewayService | undefined {
    const lower = host.toLowerCase();
    const exact = this.#byHost.get(lower);
    if (exact) return exact;
    const withoutPort = lower.replace(/:\d+$/, '');
    return withoutPort === lower ? undefined : this.#byHost.get(withoutPort);
  }

  /** Every service. */
  all(): GatewayService[] {
    return [...this.#byName.values()];
  }

  /** Whether `name` is a service of the configuration file (which run-time changes never replace). */
  isConfigured(name: string): boolean {
    return this.#configured.has(name);
  }

  /**
   * Adds or replaces a run-time service (a data source's). The audience rule
   * follows `resourceServer`, the one it fronts (WLCG profile §2.1.3: a `wlcg`
   * server also accepts the "any" audience).
   *
   * @throws TypeError when `service.name` is a configured service.
   */
  set(service: ServiceConfig, resourceServer: ResourceServerConfig): void {
    if (this.#configured.has(service.name)) throw new TypeError(`${service.name} is a configured service`);
    const audience = audiencePolicy(service.audience, [resourceServer]);
    this.#dynamic.set(service.name, { name: service.name, domain: service.domain ?? service.name, audience, config: service });
    this.#changed();
  }

  /** Removes a run-time service; true when there was one. */
  delete(name: string): boolean {
    if (!this.#dynamic.delete(name)) return false;
    this.#changed();
    return true;
  }

  /** Calls `listener` after every change (the proxy closes connection pools no service uses any more). */
  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #changed(): void {
    this.#version += 1;
    this.#index();
    for (const listener of this.#listeners) listener();
  }

  #index(): void {
    const byName = new Map<string, GatewayService>();
    const byHost = new Map<string, GatewayService>();
    for (const service of [...this.#configured.values(), ...this.#dynamic.values()]) {
      if (byName.has(service.name)) continue;
      byName.set(service.name, service);
      for (const host of service.config.hosts) if (!byHost.has(host.toLowerCase())) byHost.set(host.toLowerCase(), service);
    }
    this.#byName = byName;
    this.#byHost = byHost;
  }
}
