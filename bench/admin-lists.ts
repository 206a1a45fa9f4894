/**
 * Benchmark: the admin API's paged, searched lists with 10,000 groups and
 * 100,000 accounts, side by side with the same fedgate on a store of 100
 * groups and 1,000 accounts (issue 17: a page costs well under 100 ms of
 * server time whatever the size). Each side has its own redis-server
 * (test/support/private-redis.ts), seeded through fedgate's own
 * `Accounts`/`Groups` (every index written as in production; writes
 * pipelined, 500 accounts or groups in flight). fedgate runs in this process on loopback;
 * each page is asked BENCH_ADMIN_REPEAT times (default 40) one after
 * another, and the latency measured by the client (an upper bound of the
 * server time) is reported per page as p50/p90/p99. The earlier, unpaged
 * `GET /accounts` (every account read and sorted) is measured a few times
 * on both sides too, as the cost the pages avoid.
 *
 * BENCH_ADMIN_ACCOUNTS / BENCH_ADMIN_GROUPS set the large side's size.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createFedgate, type Fedgate } from '../src/app.ts';
import { loadConfig } from '../src/config/index.ts';
import { createLogger } from '../src/observability/logger.ts';
import { RedisStore } from '../src/store/index.ts';
import { Accounts } from '../src/accounts/accounts.ts';
import { Groups } from '../src/accounts/groups.ts';
import { adminToken, freePort } from '../test/support/harness.ts';
import { PrivateRedis } from '../test/support/private-redis.ts';
import { atInterrupt } from './lib/child.ts';
import type { BenchOptions } from './lib/options.ts';
import type { Benchmark, BenchmarkResult, Check, ResultRow } from './lib/types.ts';

export const TARGET_P99_MS = 100;
const IN_FLIGHT = 500;

interface Side {
  name: string;
  groups: number;
  accounts: number;
  fedgate: Fedgate;
  issuer: string;
  token: string;
  seedSeconds: number;
}

/** Runs `count` tasks with at most IN_FLIGHT at a time (auto-pipelined by ioredis). */
async function inBatches(count: number, task: (i: number) => Promise<unknown>): Promise<void> {
  for (let start = 0; start < count; start += IN_FLIGHT) {
    await Promise.all(Array.from({ length: Math.min(IN_FLIGHT, count - start) }, (_, j) => task(start + j)));
  }
}

const top = (i: number) => `/vo-${String(i).padStart(3, '0')}`;

async function startSide(name: string, groups: number, accounts: number, started: Array<() => Promise<void>>): Promise<Side> {
  const redis = await PrivateRedis.start();
  const keysDir = await mkdtemp(join(tmpdir(), 'fedgate-bench-keys-'));
  // Stopped by the caller however this ends.
  started.push(async () => {
    await redis.kill();
    await rm(keysDir, { recursive: true, force: true });
  });
  // Seeding keeps hundreds of writes in flight: on a busy machine one pipeline may take longer than the default deadline.
  const store = new RedisStore({ url: redis.url, deadlineMs: 60_000 });
  const seeded = performance.now();
  // Seeded through the store's own Accounts and Groups (no fedgate running: no policy announcement per group).
  const seedAccounts = new Accounts(store);
  const seedGroups = new Groups(store, seedAccounts);
  // The indexes are kept from the first write on: mark them built, as a fresh deployment does.
  await Promise.all([seedAccounts.ensureMemberIndex(), seedGroups.ensureIndex()]);
  // 100 top-level groups, the rest spread under them.
  const tops = Math.min(100, groups);
  await inBatches(tops, (i) => seedGroups.create(top(i), `virtual organisation ${i}`));
  await inBatches(groups - tops, (i) => seedGroups.create(`${top(i % tops)}/team-${String(i).padStart(5, '0')}`));
  await inBatches(accounts, (i) => seedAccounts.create({
    username: `user${String(i).padStart(6, '0')}`,
    name: `Researcher ${i}${i % 1000 === 500 ? ' Lovelace' : ''}`,
    email: `user${i}@${i % 4 === 0 ? 'cern.ch' : 'lab.example'}`,
    groups: [groups > tops ? `${top(i % tops)}/team-${String(i % (groups - tops)).padStart(5, '0')}` : top(i % tops)],
  }));
  const seedSeconds = (performance.now() - seeded) / 1000;
  await store.close();
  const port = await freePort();
  const issuer = `http://127.0.0.1:${port}`;
  const config = await loadConfig({ ISSUER: issuer, PORT: String(port), LOG_LEVEL: 'error' });
  config.keysDir = keysDir;
  const fedgate = await createFedgate(config, { store: new RedisStore({ url: redis.url }), logger: createLogger('error'), watchKeys: false });
  // Closed before its Redis goes.
  started.unshift(async () => { await fedgate.close().catch(() => {}); });
  await fedgate.listen(port, '127.0.0.1');
  return { name, groups, accounts, fedgate, issuer, token: await adminToken(issuer), seedSeconds };
}


/** One GET, its latency in ms; fails on anything but 200. */
async function timed(side: Side, path: string): Promise<{ ms: number; body: Record<string, unknown> }> {
  const start = performance.now();
  const res = await fetch(`${side.issuer}/admin/api${path}`, { headers: { authorization: `Bearer ${side.token}` } });
  const body = await res.json() as Record<string, unknown>;
  const ms = performance.now() - start;
  if (res.status !== 200) throw new Error(`${side.name} ${path}: ${res.status} ${JSON.stringify(body)}`);
  return { ms, body };
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

function row(name: string, latencies: number[]): ResultRow {
  const sorted = [...latencies].sort((a, b) => a - b);
  const mean = latencies.reduce((s, v) => s + v, 0) / latencies.length;
  const round = (v: number) => Math.round(v * 100) / 100;
  return {
    name, requestsPerSec: round(1000 / mean), p50Ms: round(percentile(sorted, 0.5)), p90Ms: round(percentile(sorted, 0.9)), p99Ms: round(percentile(sorted, 0.99)),
    peakRssMiB: Math.round(process.memoryUsage().rss / 1024 / 1024), non2xx: 0, errors: 0, cpuUsPerRequest: 0, mainThreadUsPerRequest: 0, otherCpuPct: 0,
  };
}

export const adminLists: Benchmark = {
  id: 'admin-lists',
  title: 'Admin API lists: one page with 10,000 groups and 100,000 accounts vs 100 and 1,000',
  async run(_options: BenchOptions): Promise<BenchmarkResult> {
    const repeat = Number(process.env.BENCH_ADMIN_REPEAT ?? 40);
    const largeAccounts = Number(process.env.BENCH_ADMIN_ACCOUNTS ?? 100_000);
    const largeGroups = Number(process.env.BENCH_ADMIN_GROUPS ?? 10_000);
    const sides: Side[] = [];
    const cleanups: Array<() => Promise<void>> = [];
    const stopAll = async () => {
      for (const cleanup of cleanups.splice(0)) await cleanup();
    };
    const unregister = atInterrupt(stopAll);
    try {
      sides.push(await startSide('small', 100, 1_000, cleanups));
      sides.push(await startSide('large', largeGroups, largeAccounts, cleanups));
      // Each page: its path, and for a second page the cursor of the first.
      const pages: Array<{ name: string; path: (side: Side) => Promise<string> }> = [
        { name: 'accounts, first page (50)', path: async () => '/accounts?limit=50' },
        { name: 'accounts, second page (200)', path: async (side) => `/accounts?limit=200&cursor=${(await timed(side, '/accounts?limit=200')).body.next as string}` },
        { name: 'accounts, search q=lovelace (rare)', path: async () => '/accounts?q=lovelace&limit=50' },
        { name: 'accounts, search q=cern.ch (common)', path: async () => '/accounts?q=cern.ch&limit=50' },
        { name: 'groups, top level (parent=/)', path: async () => '/groups?parent=%2F&limit=100' },
        { name: 'groups, children of one', path: async () => `/groups?parent=${encodeURIComponent(top(7))}&limit=100` },
        { name: 'groups, search q=team-0099', path: async () => '/groups?q=team-0099&limit=50' },
        { name: 'members, effective (parent group)', path: async () => `/groups/${encodeURIComponent(top(7))}/members?effective=true&limit=50` },
        { name: 'audit, type filter', path: async () => '/audit?type=group.&limit=50' },
        { name: 'overview', path: async () => '/overview' },
      ];
      const rows: ResultRow[] = [];
      const checks: Check[] = [];
      for (const page of pages) {
        for (const side of sides) {
          const path = await page.path(side);
          await timed(side, path);
          const latencies: number[] = [];
          for (let i = 0; i < repeat; i += 1) latencies.push((await timed(side, path)).ms);
          rows.push(row(`${side.name}: ${page.name}`, latencies));
        }
        const [small, large] = rows.slice(-2) as [ResultRow, ResultRow];
        checks.push({ name: `${page.name}: p99 with ${largeAccounts.toLocaleString('en')} accounts`, value: large.p99Ms, target: `< ${TARGET_P99_MS} ms`, pass: large.p99Ms < TARGET_P99_MS, note: `small store p99 ${small.p99Ms} ms` });
      }
      // The earlier unpaged list, for comparison: every account read in one request. Last, since at scale it
      // can outrun the store deadline (503), which marks the store unavailable for a moment.
      for (const side of sides) {
        const latencies: number[] = [];
        let failed = 0;
        for (let i = 0; i < 3; i += 1) {
          const start = performance.now();
          const res = await fetch(`${side.issuer}/admin/api/accounts`, { headers: { authorization: `Bearer ${side.token}` } });
          await res.arrayBuffer();
          latencies.push(performance.now() - start);
          if (res.status !== 200) failed += 1;
        }
        rows.push({ ...row(`${side.name}: accounts, unpaged (every account)`, latencies), non2xx: failed });
      }
      return {
        id: 'admin-lists',
        title: adminLists.title,
        request: 'GET /admin/api/<list>?… with an admin token, one request at a time',
        method: `${repeat} requests per page and side after one warm-up; latency measured by the client on loopback`,
        rows,
        rounds: rows,
        checks,
        notes: sides.map((s) => `${s.name}: ${s.groups.toLocaleString('en')} groups and ${s.accounts.toLocaleString('en')} accounts seeded through the store in ${s.seedSeconds.toFixed(1)} s`),
      };
    } finally {
      unregister();
      await stopAll();
    }
  },
};
