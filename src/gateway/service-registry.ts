/**
 * The configured services (`gateway.services`), looked up by name (proxy,
 * `/authz?service=`) and by host (`/authz` behind a host-routing proxy).
 */
import type { Config, ServiceConfig } from '../config/schema.ts';
import { audiencePolicy, type AudiencePolicy } from './token-verifier.ts';

/** A service with what the enforcement points derive from its configuration once. */
export interface GatewayService {
  name: string;
  /** Policy domain: `domain`, else the name. */
  domain: string;
  audience: AudiencePolicy;
  config: ServiceConfig;
}

/** The configured services by name and by host (first service listing a host wins). */
export class ServiceRegistry {
  readonly #byName = new Map<string, GatewayService>();
  readonly #byHost = new Map<string, GatewayService>();

  constructor(config: Pick<Config, 'gateway' | 'resourceServers'>) {
    for (const service of config.gateway.services) {
      const entry: GatewayService = {
        name: service.name,
        domain: service.domain ?? service.name,
        audience: audiencePolicy(service.audience, config.resourceServers),
        config: service,
      };
      this.#byName.set(service.name, entry);
      for (const host of service.hosts) if (!this.#byHost.has(host.toLowerCase())) this.#byHost.set(host.toLowerCase(), entry);
    }
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

  /** Every configured service. */
  all(): GatewayService[] {
    return [...this.#byName.values()];
  }
}
