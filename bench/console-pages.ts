/**
 * Benchmark: server time of each console page with 10,000 groups and
 * 100,000 accounts (issue 17: each page under 100 ms), side by side with the
 * admin API call the page is built on, measured the same way in the same run.
 *
 * A private redis-server (loopback, free port, no persistence) is seeded
 * through fedgate's own store classes (`Groups.create`, `Accounts.create`,
 * so every index the admin API pages on is kept as in production): 100 top
 * groups `/vo-000`…`/vo-099` with 99 subgroups each, and the accounts
 * `user-000000`… spread over the subgroups (about 10 direct and 1,000
 * effective members per group). fedgate then starts in this process on that
 * store; the admin signs in to the console through the login pages (the
 * console's own PKCE flow), and each page is asked for in turn, sequentially
 * on one keep-alive connection, after a warm-up. A page's time is its
 * response time on loopback: the console's work plus its HTTP calls to the
 * admin API; the baseline row is that API call alone.
 *
 * BENCH_CONSOLE_ACCOUNTS and BENCH_CONSOLE_GROUPS scale the seed down for
 * a quick look (defaults 100000 and 10000); BENCH_CONSOLE_SAMPLES sets the
 * samples per page (default 40).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { Accounts } from '../src/accounts/accounts.ts';
import { Groups } from '../src/accounts/groups.ts';
import { createFedgate, type Fedgate } from '../src/app.ts';
import { loadConfig } from '../src/config/index.ts';
import { createLogger } from '../src/observability/logger.ts';
import { RedisStore } from '../src/store/index.ts';
import { adminToken, Browser, freePort, loginThroughPages } from '../test/support/harness.ts';
import type { BenchOptions } from './lib/options.ts';
import type { Benchmark, BenchmarkResult, Check, ResultRow } from './lib/types.ts';

export const TARGET_MS = 100;
const TOP = 100;

function envNumber(name: string, fallback: number): number {
  // bench/lib/options.ts reads the common options; these are this benchmark's own.
  const value = Number(process.env[name]);
  return Number.isFinite(value) && value > 0 ? Math.floor(value) : fallback;
}

async function startRedis(): Promise<{ process: ChildProcess; url: string }> {
  const port = await freePort();
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  const url = `redis://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    const probe = new Redis(url, { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
    probe.on('error', () => {});
    try {
      await probe.connect();
      await probe.ping();
      return { process: child, url };
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    } finally {
      probe.disconnect();
    }
  }
  child.kill();
  throw new Error('redis-server did not start');
}

/** Runs `work(i)` for i in [0, count) with at most `width` in flight. */
async function inBatches(count: number, width: number, work: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < count) await work(next++);
  }));
}

const vo = (i: number) => `/vo-${String(i).padStart(3, '0')}`;
const username = (i: number) => `user-${String(i).padStart(6, '0')}`;

/** Seeds groups and accounts through fedgate's store classes; returns the leaf groups. */
async function seed(url: string, groupCount: number, accountCount: number): Promise<string[]> {
  const store = new RedisStore({ url });
  try {
    const accounts = new Accounts(store);
    const groups = new Groups(store, accounts);
    // As at a fedgate's first start on an empty store: the list indexes are marked built, then kept by every create.
    await accounts.ensureMemberIndex();
    const tops = Math.min(TOP, groupCount);
    const perTop = Math.max(0, Math.floor((groupCount - tops) / tops));
    await inBatches(tops, 50, (i) => groups.create(vo(i), `Virtual organisation ${i}`));
    const leaves: string[] = [];
    for (let t = 0; t < tops; t++) for (let c = 0; c < perTop; c++) leaves.push(`${vo(t)}/g-${String(c).padStart(2, '0')}`);
    await inBatches(leaves.length, 100, (i) => groups.create(leaves[i]!));
    const homes = leaves.length ? leaves : Array.from({ length: tops }, (_, i) => vo(i));
    await inBatches(accountCount, 200, (i) => accounts.create({
      username: username(i), name: `Researcher ${i}`, email: `${username(i)}@example.org`, groups: [homes[i % homes.length]!],
    }));
    return homes;
  } finally {
    await store.close();
  }
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** Times `samples` sequential GETs after a warm-up (wall time, sorted, and this process's CPU time of each); fails on a non-200. */
async function timeGets(url: string, headers: Record<string, string>, samples: number): Promise<{ wall: number[]; cpu: number[] }> {
  const once = async () => {
    const cpuStart = process.cpuUsage();
    const start = performance.now();
    const res = await fetch(url, { headers, redirect: 'manual' });
    const text = await res.text();
    const ms = performance.now() - start;
    const cpu = process.cpuUsage(cpuStart);
    if (res.status !== 200) throw new Error(`${url} answered ${res.status}: ${text.slice(0, 200)}`);
    return { ms, cpuMs: (cpu.user + cpu.system) / 1000 };
  };
  for (let i = 0; i < 5; i++) await once();
  const wall: number[] = [];
  const cpu: number[] = [];
  for (let i = 0; i < samples; i++) {
    const { ms, cpuMs } = await once();
    wall.push(ms);
    cpu.push(cpuMs);
  }
  return { wall: wall.sort((a, b) => a - b), cpu: cpu.sort((a, b) => a - b) };
}

function row(name: string, times: { wall: number[]; cpu: number[] }): ResultRow {
  const mean = (list: number[]) => list.reduce((a, b) => a + b, 0) / list.length;
  return {
    name, requestsPerSec: 1000 / mean(times.wall), p50Ms: percentile(times.wall, 50), p90Ms: percentile(times.wall, 90), p99Ms: percentile(times.wall, 99),
    peakRssMiB: process.memoryUsage().rss / (1024 * 1024), non2xx: 0, errors: 0,
    cpuUsPerRequest: mean(times.cpu) * 1000, mainThreadUsPerRequest: percentile(times.cpu, 50) * 1000, otherCpuPct: 0,
  };
}

export const consolePages: Benchmark = {
  id: 'console-pages',
  title: 'Console pages with 10,000 groups and 100,000 accounts, beside the admin API call each is built on',
  async run(_options: BenchOptions): Promise<BenchmarkResult> {
    const groupCount = envNumber('BENCH_CONSOLE_GROUPS', 10_000);
    const accountCount = envNumber('BENCH_CONSOLE_ACCOUNTS', 100_000);
    const samples = envNumber('BENCH_CONSOLE_SAMPLES', 40);
    const redis = await startRedis();
    const keysDir = await mkdtemp(join(tmpdir(), 'fedgate-bench-console-'));
    let fedgate: Fedgate | undefined;
    try {
      const seedStart = performance.now();
      const leaves = await seed(redis.url, groupCount, accountCount);
      const seedSeconds = (performance.now() - seedStart) / 1000;
      process.stdout.write(`seeded ${groupCount} groups and ${accountCount} accounts in ${seedSeconds.toFixed(0)} s\n`);

      const port = await freePort();
      const issuer = `http://127.0.0.1:${port}`;
      const config = await loadConfig({ ISSUER: issuer, PORT: String(port), LOG_LEVEL: 'warn' });
      config.keysDir = keysDir;
      fedgate = await createFedgate(config, { store: new RedisStore({ url: redis.url }), logger: createLogger('warn'), watchKeys: false });
      await fedgate.listen(port, '127.0.0.1');

      // The console session, as a browser gets it: /admin → fedgate's login → the console's callback.
      const browser = new Browser();
      const first = await browser.request(`${issuer}/admin`);
      const callback = await loginThroughPages(browser, new URL(first.headers.get('location')!, issuer), `${issuer}/admin/callback`, { username: 'admin', password: 'admin-password' });
      const signedIn = await browser.request(callback);
      if (signedIn.status !== 303) throw new Error(`console sign-in answered ${signedIn.status}`);
      const cookie = signedIn.headers.getSetCookie().map((c) => c.split(';')[0]).join('; ');
      const token = await adminToken(issuer);
      const api = `${issuer}/admin/api`;

      const leaf = leaves[Math.floor(leaves.length / 2)]!;
      const top = vo(Math.min(42, Math.min(TOP, groupCount) - 1));
      const someone = username(Math.floor(accountCount / 2));
      const enc = encodeURIComponent;
      const pages: Array<[string, string, string]> = [
        ['overview', '/admin', '/overview'],
        ['groups: top level', '/admin/groups', '/groups?parent=%2F&limit=50'],
        ['groups: children', `/admin/groups?parent=${enc(top)}`, `/groups?parent=${enc(top)}&limit=50`],
        ['groups: search', '/admin/groups?q=g-42', '/groups?q=g-42&limit=50'],
        ['group: direct members', `/admin/groups/view?path=${enc(leaf)}`, `/groups/${enc(leaf)}/members?limit=50`],
        ['group: effective members', `/admin/groups/view?path=${enc(top)}&effective=true`, `/groups/${enc(top)}/members?effective=true&limit=50`],
        ['accounts', '/admin/accounts', '/accounts?limit=50'],
        ['accounts: search', `/admin/accounts?q=${someone}`, `/accounts?q=${someone}&limit=50`],
        ['account', `/admin/accounts/view?username=${someone}`, `/accounts/${someone}`],
        ['audit', '/admin/audit', '/audit?limit=50'],
        ['audit: by type', '/admin/audit?type=login', '/audit?type=login&limit=50'],
        ['policies of a group', '/admin/policies?group=%2Fatlas', '/groups/%2Fatlas/policies'],
        ['data sources', '/admin/datasources', '/resource-servers'],
        ['clients', '/admin/clients', '/clients?limit=50'],
        ['requests', '/admin/requests', '/requests?status=pending&limit=50'],
      ];
      const rows: ResultRow[] = [];
      const checks: Check[] = [];
      const notes = [`seed: ${groupCount} groups, ${accountCount} accounts through Groups.create/Accounts.create on a private redis-server, ${seedSeconds.toFixed(0)} s; ${samples} sequential samples per page after 5 warm-up requests; p90 of the wall time is the figure checked; "CPU µs/req" is the mean CPU time of this process (the console, the admin API and the client all run in it) per request, "main µs/req" its median: on a busy machine the wall time waits for a core, the CPU time does not`];
      for (const [label, page, call] of pages) {
        const consoleTimes = await timeGets(`${issuer}${page}`, { cookie, accept: 'text/html' }, samples);
        const apiTimes = await timeGets(`${api}${call}`, { authorization: `Bearer ${token}`, accept: 'application/json' }, samples);
        rows.push(row(`console ${label}`, consoleTimes), row(`  API ${call.split('?')[0]}`, apiTimes));
        const p90 = percentile(consoleTimes.wall, 90);
        const cpu = percentile(consoleTimes.cpu, 50);
        checks.push({ name: `console ${label} p90 ms`, value: p90, target: `< ${TARGET_MS}`, pass: p90 < TARGET_MS, note: `CPU ${cpu.toFixed(1)} ms (median), API alone p90 ${percentile(apiTimes.wall, 90).toFixed(1)} ms` });
      }
      return {
        id: 'console-pages',
        title: consolePages.title,
        request: 'GET of a console page with the console session cookie (the page calls the admin API over HTTP), and of that API call alone with an admin token',
        method: `${samples} sequential requests per row on one connection; requests/s is 1000 / mean latency`,
        rows,
        rounds: [],
        checks,
        notes,
      };
    } finally {
      await fedgate?.close().catch(() => {});
      redis.process.kill();
      await rm(keysDir, { recursive: true, force: true });
    }
  },
};
