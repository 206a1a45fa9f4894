import Router from '@koa/router';
import type { Accounts } from '../accounts/accounts.ts';
import type { Groups } from '../accounts/groups.ts';
import type { Config } from '../config/schema.ts';
import { keyState, nextKeyChange, SIGNING_ALGORITHMS, type KeySet, type StoredKey } from '../keys/index.ts';
import type { Audit } from '../observability/audit.ts';
import { liveReplicas } from '../observability/replicas.ts';
import { CLIENT_INDEX } from '../oidc/client-records.ts';
import type { Store } from '../store/store.ts';

export interface OverviewRoutesDeps {
  config: Config;
  store: Store;
  accounts: Accounts;
  groups: Groups;
  audit: Audit;
  /** The signing keys this replica uses now. */
  keys?: (() => KeySet) | undefined;
  /** How many data sources exist (held in memory by the registry). */
  dataSourceCount?: (() => number) | undefined;
}

/** Latest audit events on the overview. */
const OVERVIEW_EVENTS = 10;

const iso = (seconds: number | undefined) => (seconds === undefined ? null : new Date(seconds * 1000).toISOString());

/**
 * `GET /admin/api/overview`: what the console's first page shows. Every
 * part is a few constant-time store reads (a ping, counter reads, the
 * heartbeats, the newest audit events); none scans a list. A part whose
 * store read fails says so (`store.ok: false`, the counts left out) instead of
 * failing the whole answer, since the overview is where an outage is looked at.
 */
export function overviewRoutes(deps: OverviewRoutesDeps): Router {
  const { config, store, accounts, groups, audit } = deps;
  const router = new Router();

  const keyView = (key: StoredKey) => ({
    kid: key.jwk.kid,
    alg: key.jwk.alg,
    created_at: iso(key.createdAt),
    activates_at: iso(key.activatesAt ?? key.createdAt),
    retires_at: iso(key.retiredAt),
  });

  const signingKeys = () => {
    const set = deps.keys?.();
    if (!set) return null;
    const now = Math.floor(Date.now() / 1000);
    const byState = (state: string) => set.keys.filter((k) => keyState(k, now) === state).map(keyView);
    const interval = config.keys.rotationIntervalSeconds;
    // A scheduled change (a prepublished key activating) comes first; else the next rotation the schedule will make.
    let next = nextKeyChange(set, now);
    if (next === undefined && interval > 0 && set.keys.length) {
      const newest = Math.min(...SIGNING_ALGORITHMS.map((alg) => Math.max(0, ...set.keys.filter((k) => k.jwk.alg === alg).map((k) => k.activatesAt ?? k.createdAt))));
      next = newest + interval;
    }
    return { active: byState('active'), published: byState('pending'), retiring: byState('retired'), nextRotation: iso(next) };
  };

  router.get('/overview', async (ctx) => {
    const started = performance.now();
    const ping = await store.ping().then(() => true, () => false);
    const latencyMs = Math.round((performance.now() - started) * 100) / 100;
    const counted = async <T>(read: () => Promise<T>): Promise<T | null> => (ping ? read().catch(() => null) : null);
    const [replicas, accountCount, groupCount, storedClients, events] = await Promise.all([
      counted(() => liveReplicas(store)),
      counted(() => accounts.count()),
      counted(() => groups.count()),
      counted(() => store.indexSize(CLIENT_INDEX)),
      counted(() => audit.recent(OVERVIEW_EVENTS)),
    ]);
    ctx.body = {
      store: { ok: ping, kind: store.kind, latencyMs },
      replicas: replicas ?? [],
      keys: signingKeys(),
      // A count the store could not give is left out, never shown as 0.
      counts: {
        ...(accountCount === null ? {} : { accounts: accountCount }),
        ...(groupCount === null ? {} : { groups: groupCount }),
        ...(storedClients === null ? {} : { clients: config.clients.length + storedClients }),
        dataSources: deps.dataSourceCount?.() ?? 0,
      },
      audit: events ?? [],
    };
  });

  return router;
}
