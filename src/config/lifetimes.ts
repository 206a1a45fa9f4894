import type { Config } from './schema.ts';

/**
 * Seconds after which no token signed by a key retired now can still be
 * accepted: the longest access or ID token lifetime any client, resource
 * server or data source may get (`extraTtls`: those of data sources read
 * from the store), plus five minutes for replicas that have not noticed a
 * rotation yet and for clock skew. A retired key stays published that long.
 */
export function signedTokenHorizon(config: Config, extraTtls: readonly number[] = []): number {
  const rsTtls = [...config.resourceServers, ...config.dataSources].map((rs) => rs.accessTokenTtl ?? 0);
  const clientTtls = config.clients.map((c) => c.accessTokenTtl ?? 0);
  const { accessToken, idToken, clientCredentials } = config.lifetimes;
  return Math.max(accessToken, idToken, clientCredentials, ...rsTtls, ...clientTtls, ...extraTtls) + 300;
}
