/**
 * Benchmark: refresh token grants per second with 1,000 live grants in Redis,
 * side by side with the same fedgate on a Redis holding 1,000,000 (target:
 * at least 0.9 of the small store's rate), with p99 latency and the Redis
 * memory one live grant takes. INDIGO IAM users report refreshes of 5–20 s
 * on a large instance (its issue 580): a refresh must not depend on how
 * many grants the store holds.
 *
 * Each side has its own redis-server (started here, on a free loopback
 * port, no persistence), so neither's keys or memory disturb the other's.
 * Both are seeded the same way: alice signs in once at demo-portal (code
 * flow through fedgate's pages, offline_access) and the stored grant and
 * refresh token are copied, with new ids, through fedgate's own store
 * adapter (pipelined writes, not a million logins). The copies belong to
 * 5 grants per made-up account, plus one chain per load connection for
 * alice, whose refresh tokens the load uses. The load is a closed loop per
 * connection: each refresh returns a rotated refresh token, which the next
 * request of that connection presents (a fixed request body could not
 * work). The rounds alternate small, large, small, large with a fresh
 * fedgate process each round.
 *
 * BENCH_REFRESH_GRANTS sets the large side's grant count (default 1000000).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import type { AdapterPayload } from 'oidc-provider';
import { StoreAdapter } from '../src/oidc/adapter.ts';
import { RedisStore } from '../src/store/index.ts';
import { Browser, freePort, loginThroughPages } from '../test/support/harness.ts';
import { atInterrupt, startServer, type ServerChild } from './lib/child.ts';
import { cpuBetween, cpuMark } from './lib/machine.ts';
import type { BenchOptions } from './lib/options.ts';
import type { Benchmark, BenchmarkResult, ResultRow } from './lib/types.ts';

export const TARGET_RATIO = 0.9;
const SMALL = 1_000;
const GRANTS_PER_ACCOUNT = 5;
const PREFIX = 'fedgate-bench:refresh:';
const PORTAL = { id: 'demo-portal', secret: 'demo-portal-secret' };
const REDIRECT = 'http://localhost:3000/callback';
const BASIC = `Basic ${Buffer.from(`${PORTAL.id}:${PORTAL.secret}`).toString('base64')}`;
const MiB = 1024 * 1024;

interface Side {
  name: string;
  grants: number;
  redis: ChildProcess;
  redisUrl: string;
  /** The current refresh token of each load chain (rotated by every refresh). */
  chains: string[];
  bytesPerGrant: number;
  seedSeconds: number;
}

async function startRedis(): Promise<{ process: ChildProcess; url: string }> {
  const port = await freePort();
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  const url = `redis://127.0.0.1:${port}`;
  const probe = new Redis(url, { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
  probe.on('error', () => {});
  for (let i = 0; i < 100; i += 1) {
    try {
      await probe.connect();
      await probe.ping();
      probe.disconnect();
      return { process: child, url };
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  child.kill('SIGKILL');
  throw new Error(`redis-server on port ${port} did not answer`);
}

async function usedMemory(url: string): Promise<number> {
  const redis = new Redis(url, { maxRetriesPerRequest: 1 });
  try {
    return Number(/^used_memory:(\d+)/m.exec(await redis.info('memory'))![1]);
  } finally {
    redis.disconnect();
  }
}

function fedgateChild(name: string, redisUrl: string, port: number, options: BenchOptions): Promise<ServerChild> {
  return startServer({
    name,
    module: new URL('./servers/fedgate.ts', import.meta.url),
    env: {
      REDIS_URL: redisUrl, BENCH_REDIS_PREFIX: PREFIX, BENCH_LOG_LEVEL: options.logLevel,
      BENCH_PORT: String(port), BENCH_ISSUER: `http://127.0.0.1:${port}`,
    },
  });
}

/** alice's refresh token at demo-portal, through the login and consent pages. */
async function templateRefreshToken(server: ServerChild): Promise<string> {
  const authorization = new URL(`${server.url}/auth`);
  for (const [k, v] of Object.entries({ client_id: PORTAL.id, response_type: 'code', redirect_uri: REDIRECT, scope: 'openid offline_access', prompt: 'consent' })) {
    authorization.searchParams.set(k, v);
  }
  const callback = await loginThroughPages(new Browser(), authorization, REDIRECT, { username: 'alice', password: 'alice-password' });
  const response = await fetch(`${server.url}/token`, {
    method: 'POST',
    headers: { authorization: BASIC, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'authorization_code', code: callback.searchParams.get('code') ?? '', redirect_uri: REDIRECT }),
  });
  const body = await response.json() as { refresh_token?: string };
  if (!body.refresh_token) throw new Error(`${server.name}: no refresh token (HTTP ${response.status}): ${JSON.stringify(body)}\n${server.output()}`);
  return body.refresh_token;
}

/**
 * Copies alice's stored grant and refresh token `total` times through the
 * store adapter: `chains` copies for alice (returned: their refresh tokens),
 * the rest for made-up accounts, GRANTS_PER_ACCOUNT each.
 */
async function seed(redisUrl: string, template: string, total: number, chains: number): Promise<string[]> {
  const store = new RedisStore({ url: redisUrl, keyPrefix: PREFIX });
  try {
    const refresh = new StoreAdapter('RefreshToken', store);
    const grant = new StoreAdapter('Grant', store);
    const rt = await refresh.find(template);
    const g = rt?.grantId ? await grant.find(rt.grantId) : undefined;
    if (!rt || !g) throw new Error('the template refresh token or its grant is not in the store');
    const now = Math.floor(Date.now() / 1000);
    const expiresIn = (payload: AdapterPayload) => Math.max(60, (payload.exp ?? now + 86_400) - now);
    const aliceTokens: string[] = [];
    const copy = async (i: number) => {
      const grantId = randomBytes(16).toString('base64url');
      const token = randomBytes(32).toString('base64url');
      const accountId = i < chains ? rt.accountId! : `bench-account-${Math.floor(i / GRANTS_PER_ACCOUNT)}`;
      await Promise.all([
        grant.upsert(grantId, { ...g, jti: grantId, accountId, iat: now }, expiresIn(g)),
        refresh.upsert(token, { ...rt, jti: token, grantId, accountId, iat: now }, expiresIn(rt)),
      ]);
      if (i < chains) aliceTokens.push(token);
    };
    // Batches of concurrent writes: ioredis pipelines each batch into a few round trips.
    const BATCH = 2_000;
    for (let start = 0; start < total; start += BATCH) {
      await Promise.all(Array.from({ length: Math.min(BATCH, total - start) }, (_, k) => copy(start + k)));
    }
    return aliceTokens;
  } finally {
    await store.close();
  }
}

async function prepareSide(name: string, grants: number, options: BenchOptions): Promise<Side> {
  const redis = await startRedis();
  const port = await freePort();
  const server = await fedgateChild(`${name} (seeding)`, redis.url, port, options);
  try {
    const template = await templateRefreshToken(server);
    const before = await usedMemory(redis.url);
    const started = performance.now();
    const chains = await seed(redis.url, template, grants - 1, options.connections);
    const seedSeconds = (performance.now() - started) / 1000;
    const after = await usedMemory(redis.url);
    process.stderr.write(`  ${name}: seeded ${grants - 1} grants in ${seedSeconds.toFixed(1)} s, Redis used_memory +${((after - before) / MiB).toFixed(0)} MiB\n`);
    return { name, grants, redis: redis.process, redisUrl: redis.url, chains, bytesPerGrant: (after - before) / (grants - 1), seedSeconds };
  } finally {
    await server.stop().catch(() => {});
  }
}

interface LoopResult { ok: number; failed: number; statuses: Record<string, number>; latencies: number[]; seconds: number }

/** One closed loop per chain for `seconds`: refresh, take the rotated token, refresh again. */
async function refreshLoop(server: ServerChild, chains: string[], seconds: number): Promise<LoopResult> {
  const result: LoopResult = { ok: 0, failed: 0, statuses: {}, latencies: [], seconds };
  const end = performance.now() + seconds * 1000;
  await Promise.all(chains.map(async (_, i) => {
    while (performance.now() < end) {
      const started = performance.now();
      let status = 0;
      try {
        const response = await fetch(`${server.url}/token`, {
          method: 'POST',
          headers: { authorization: BASIC, 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
          body: `grant_type=refresh_token&refresh_token=${chains[i]}`,
        });
        status = response.status;
        const body = await response.json() as { refresh_token?: string };
        if (status === 200 && body.refresh_token) {
          chains[i] = body.refresh_token;
          result.ok += 1;
          result.latencies.push(performance.now() - started);
          continue;
        }
      } catch {
        // a socket error: counted below
      }
      result.failed += 1;
      result.statuses[String(status)] = (result.statuses[String(status)] ?? 0) + 1;
      // A chain whose token was refused cannot go on (its next token never came).
      if (status !== 0 && status !== 503) return;
    }
  }));
  return result;
}

function percentile(sorted: number[], p: number): number {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]! : 0;
}

async function measureRound(side: Side, round: number, options: BenchOptions): Promise<ResultRow> {
  const server = await fedgateChild(side.name, side.redisUrl, await freePort(), options);
  try {
    await refreshLoop(server, side.chains, options.warmupSeconds);
    const before = await cpuMark([server], side.redisUrl);
    const load = await refreshLoop(server, side.chains, options.durationSeconds);
    const after = await cpuMark([server], side.redisUrl);
    const cpu = cpuBetween(before, after);
    const stats = await server.stats();
    const sorted = load.latencies.sort((a, b) => a - b);
    const row: ResultRow = {
      name: side.name,
      round,
      requestsPerSec: load.ok / load.seconds,
      p50Ms: percentile(sorted, 50),
      p90Ms: percentile(sorted, 90),
      p99Ms: percentile(sorted, 99),
      peakRssMiB: stats.maxRssBytes / MiB,
      non2xx: Object.entries(load.statuses).filter(([s]) => s !== '0').reduce((n, [, c]) => n + c, 0),
      errors: load.statuses['0'] ?? 0,
      cpuUsPerRequest: load.ok ? (cpu.serversMs[0]! * 1000) / load.ok : 0,
      mainThreadUsPerRequest: load.ok ? (cpu.serversMainMs[0]! * 1000) / load.ok : 0,
      redisCpuPct: cpu.redisPct,
      otherCpuPct: cpu.otherPct,
    };
    process.stderr.write(`  round ${round} ${side.name}: ${row.requestsPerSec.toFixed(0)} refreshes/s, p50 ${row.p50Ms.toFixed(1)} ms, p99 ${row.p99Ms.toFixed(1)} ms${load.failed ? `, failed ${JSON.stringify(load.statuses)}` : ''}\n`);
    if (load.failed) throw new Error(`${side.name}: ${load.failed} refreshes failed (${JSON.stringify(load.statuses)})\n${server.output()}`);
    return row;
  } finally {
    await server.stop().catch(() => {});
  }
}

function best(rounds: readonly ResultRow[], name: string): ResultRow {
  const mine = rounds.filter((r) => r.name === name);
  const top = mine.reduce((a, b) => (b.requestsPerSec > a.requestsPerSec ? b : a));
  const { round: _round, ...rest } = top;
  return { ...rest, peakRssMiB: Math.max(...mine.map((r) => r.peakRssMiB)) };
}

async function run(options: BenchOptions): Promise<BenchmarkResult> {
  const large = Number(process.env.BENCH_REFRESH_GRANTS ?? 1_000_000);
  if (!Number.isInteger(large) || large <= SMALL) throw new Error(`BENCH_REFRESH_GRANTS must be an integer above ${SMALL}`);
  const sides: Side[] = [];
  const stopRedis = async () => { for (const side of sides) side.redis.kill('SIGKILL'); };
  const unregister = atInterrupt(stopRedis);
  try {
    sides.push(await prepareSide(`fedgate, ${SMALL.toLocaleString('en')} live grants`, SMALL, options));
    sides.push(await prepareSide(`fedgate, ${large.toLocaleString('en')} live grants`, large, options));
    const rounds: ResultRow[] = [];
    for (let round = 1; round <= options.rounds; round += 1) {
      for (const side of sides) rounds.push(await measureRound(side, round, options));
    }
    const [small, big] = sides as [Side, Side];
    const smallBest = best(rounds, small.name);
    const bigBest = best(rounds, big.name);
    const ratio = bigBest.requestsPerSec / smallBest.requestsPerSec;
    const perRound = Array.from({ length: options.rounds }, (_, i) => {
      const b = rounds.find((r) => r.name === big.name && r.round === i + 1)!;
      const s = rounds.find((r) => r.name === small.name && r.round === i + 1)!;
      return (b.requestsPerSec / s.requestsPerSec).toFixed(2);
    });
    return {
      id: refreshAtScale.id,
      title: refreshAtScale.title,
      request: `POST /token grant_type=refresh_token by ${PORTAL.id} (client_secret_basic), each connection presenting the refresh token its previous request returned (rotation); alice's offline_access grant; fedgate with its own redis-server per side`,
      method: `best of ${options.rounds} alternating round(s) per side; each round ${options.warmupSeconds} s warm-up (discarded) + ${options.durationSeconds} s measured, ${options.connections} closed-loop connections; fresh fedgate process each round`,
      rows: [smallBest, bigBest],
      rounds,
      checks: [{ name: `ratio ${large.toLocaleString('en')}/${SMALL.toLocaleString('en')} grants`, value: ratio, target: `>= ${TARGET_RATIO}`, pass: ratio >= TARGET_RATIO, note: `per round: ${perRound.join(', ')}` }],
      notes: [
        `Redis memory per live grant (grant + refresh token + their index entries): ${big.bytesPerGrant.toFixed(0)} bytes at ${large.toLocaleString('en')} grants, ${small.bytesPerGrant.toFixed(0)} bytes at ${SMALL.toLocaleString('en')}`,
        `seeding through the store adapter: ${large.toLocaleString('en')} grants in ${big.seedSeconds.toFixed(1)} s (${((large - 1) / big.seedSeconds).toFixed(0)} grants/s)`,
        `p99: ${smallBest.p99Ms.toFixed(1)} ms at ${SMALL.toLocaleString('en')} grants, ${bigBest.p99Ms.toFixed(1)} ms at ${large.toLocaleString('en')}`,
      ],
    };
  } finally {
    await stopRedis();
    unregister();
  }
}

export const refreshAtScale: Benchmark = {
  id: 'refresh-at-scale',
  title: 'Refresh token grants per second with 1,000 vs 1,000,000 live grants in Redis',
  run,
};
