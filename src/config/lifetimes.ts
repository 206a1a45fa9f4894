import type { Config, FileConfig } from './schema.ts';

/**
 * The longest lifetimes configuration may give tokens, in seconds: the
 * "Default Maximum Lifetime" of AARC-G081 as the WLCG common JWT profile
 * §4.3.1 tabulates it (access and ID tokens 6 hours, refresh tokens 400
 * days). A longer value is a configuration error unless its entry carries a
 * `lifetimeException` naming the risk assessment that allows it (the
 * profile's "alternative mitigation MUST be agreed ... and put in place").
 */
export const LIFETIME_MAXIMUMS = {
  accessToken: 6 * 3600,
  idToken: 6 * 3600,
  refreshToken: 400 * 24 * 3600,
} as const;

/** One lifetime above its maximum: where, what, and whether a documented exception allows it. */
export interface LongLifetime {
  path: string;
  seconds: number;
  maximum: number;
  exception?: string | undefined;
}

function human(seconds: number): string {
  if (seconds >= 2 * 86400 && seconds % 86400 === 0) return `${seconds / 86400} days`;
  return seconds % 3600 === 0 ? `${seconds / 3600} h` : `${seconds} s`;
}

/** Every configured token lifetime above {@link LIFETIME_MAXIMUMS}, with its exception if any. */
export function longLifetimes(config: FileConfig): LongLifetime[] {
  const out: LongLifetime[] = [];
  const check = (path: string, seconds: number | undefined, maximum: number, exception: string | undefined) => {
    if (seconds !== undefined && seconds > maximum) out.push({ path, seconds, maximum, exception });
  };
  const { lifetimes } = config;
  check('lifetimes.accessToken', lifetimes.accessToken, LIFETIME_MAXIMUMS.accessToken, lifetimes.exception);
  check('lifetimes.clientCredentials', lifetimes.clientCredentials, LIFETIME_MAXIMUMS.accessToken, lifetimes.exception);
  check('lifetimes.idToken', lifetimes.idToken, LIFETIME_MAXIMUMS.idToken, lifetimes.exception);
  check('lifetimes.refreshToken', lifetimes.refreshToken, LIFETIME_MAXIMUMS.refreshToken, lifetimes.exception);
  config.clients.forEach((client, i) => {
    check(`clients.${i}.accessTokenTtl`, client.accessTokenTtl, LIFETIME_MAXIMUMS.accessToken, client.lifetimeException);
    check(`clients.${i}.refreshTokenTtl`, client.refreshTokenTtl, LIFETIME_MAXIMUMS.refreshToken, client.lifetimeException);
  });
  config.resourceServers.forEach((rs, i) => {
    check(`resourceServers.${i}.accessTokenTtl`, rs.accessTokenTtl, LIFETIME_MAXIMUMS.accessToken, rs.lifetimeException);
  });
  return out;
}

/** The configuration problem for a lifetime above its maximum without an exception. */
export function longLifetimeProblem(long: LongLifetime): string {
  return `${long.path}: ${human(long.seconds)} is above the maximum of ${human(long.maximum)} (AARC-G081, WLCG profile §4.3.1); shorten it, or document the risk assessment that allows it in lifetimeException`;
}

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
