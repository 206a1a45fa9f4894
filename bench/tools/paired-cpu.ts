/**
 * Main-thread CPU per client credentials token of several token-issuance
 * servers measured *at the same time*, each under its own fixed-rate load:
 * an A/B comparison that the machine's drift cannot bias.
 *
 *   node bench/tools/paired-cpu.ts [--rate 1000] [--seconds 15] [--warmup 8] [--runs 2] [--profile DIR] label=module[::--flag,...] ...
 *
 * `--profile DIR` also writes each server's CPU profile (DIR/<label>-<run>.cpuprofile,
 * compare two with bench/tools/cpuprofile-diff.ts); `::--flag,--flag` after a
 * module gives that server Node.js flags of its own.
 *
 * e.g. `bare=bench/servers/bare-provider.ts fedgate=bench/servers/fedgate.ts`,
 * or fedgate against another tree's (`other=/tmp/tree/bench/servers/fedgate.ts`,
 * with that tree's own node_modules).
 *
 * Why: on the shared 2-core machine the side-by-side benchmark's rounds swing
 * by ±15-20% between processes and minutes (the same server measured 220
 * and 320 µs per token in one hour), so a 5% change cannot be seen there,
 * and instruction counts (bench/tools/callgrind-instructions.ts) do not
 * follow time (at 32 connections fedgate runs 1.03-1.18x the bare
 * provider's instructions but 1.3x its CPU time). Here every server of a run
 * is a fresh process started together, loaded below saturation at the same
 * rate (so no server waits for a core the others hold), and measured over
 * the same seconds: what the machine does to one it does to all. Two copies
 * of the same server agree within about 3% (docs/performance.md).
 *
 * Prints per run each server's main-thread CPU µs per token and its ratio to
 * the first server, then the median ratios. Needs Redis for fedgate servers
 * (their keys go under a per-run prefix, deleted afterwards).
 */
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { startServer, type ServerChild } from '../lib/child.ts';
import { clientCredentialsRequest } from '../lib/client-credentials.ts';
import { deleteKeysWithPrefix } from '../lib/redis.ts';
import { AUDIENCE, CLIENT_ID, CLIENT_SECRET, SCOPE } from '../servers/token-request.ts';

interface AutocannonResult { '2xx': number; non2xx: number; errors: number; timeouts: number }
type Autocannon = (options: Record<string, unknown>) => Promise<AutocannonResult>;
const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;

const args = process.argv.slice(2);
const option = (name: string, fallback: number) => {
  const at = args.indexOf(`--${name}`);
  if (at === -1) return fallback;
  const value = Number(args.splice(at, 2)[1]);
  if (!Number.isFinite(value) || value <= 0) throw new TypeError(`--${name} needs a positive number`);
  return value;
};
const rate = option('rate', 1000);
const seconds = option('seconds', 15);
const warmup = option('warmup', 8);
const runs = option('runs', 2);
const profileAt = args.indexOf('--profile');
const profileDir = profileAt === -1 ? undefined : resolve(args.splice(profileAt, 2)[1] ?? '.');
const servers = args.map((arg) => {
  const eq = arg.indexOf('=');
  if (eq <= 0) throw new TypeError(`usage: paired-cpu.ts [--rate N] [--seconds N] [--warmup N] [--runs N] [--profile DIR] label=module[::--flag,...] ...; got ${JSON.stringify(arg)}`);
  // label=module::--flag,--flag: Node.js flags for that server only.
  const [path, flags] = arg.slice(eq + 1).split('::');
  return { label: arg.slice(0, eq), module: pathToFileURL(resolve(path!)), flags: flags ? flags.split(',') : [] };
});
if (servers.length < 2) throw new TypeError('name at least two servers (label=module)');

const redisUrl = process.env.REDIS_URL || 'redis://127.0.0.1:6379';
const client = { clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, resource: AUDIENCE, scope: SCOPE };

/** Fixed-rate load on one server; answers the count of 2xx (and refuses a run with failures). */
async function load(server: ServerChild, duration: number): Promise<number> {
  const request = clientCredentialsRequest(server.url, client);
  const result = await autocannon({
    url: request.url, method: request.method, headers: request.headers, body: request.body,
    connections: 16, pipelining: 1, duration, overallRate: rate, timeout: 10,
  });
  if (result.non2xx || result.errors || result.timeouts) {
    throw new Error(`${server.name}: ${result.non2xx} non-2xx, ${result.errors} errors, ${result.timeouts} timeouts\n${server.output().trim().slice(-2000)}`);
  }
  return result['2xx'];
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor((values.length - 1) / 2)]!;
const ratios = new Map<string, number[]>(servers.map((s) => [s.label, []]));

for (let run = 1; run <= runs; run += 1) {
  const prefix = `fedgate-bench:paired-${process.pid}-${run}:`;
  const children: ServerChild[] = [];
  try {
    for (const s of servers) {
      const execArgv = [...s.flags, ...profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`, `--cpu-prof-name=${s.label}-${run}.cpuprofile`] : []];
      children.push(await startServer({ name: s.label, module: s.module, execArgv, env: { REDIS_URL: redisUrl, BENCH_REDIS_PREFIX: `${prefix}${s.label}:` } }));
    }
    await Promise.all(children.map((c) => load(c, warmup)));
    const before = await Promise.all(children.map((c) => c.stats()));
    const counts = await Promise.all(children.map((c) => load(c, seconds)));
    const after = await Promise.all(children.map((c) => c.stats()));
    const perToken = children.map((_, i) => (after[i]!.mainThreadCpuMicros - before[i]!.mainThreadCpuMicros) / counts[i]!);
    const line = children.map((c, i) => {
      const ratio = perToken[i]! / perToken[0]!;
      ratios.get(c.name)!.push(ratio);
      return `${c.name} ${perToken[i]!.toFixed(0)} µs (${(counts[i]! / seconds).toFixed(0)}/s${i ? `, ${ratio.toFixed(3)}x` : ''})`;
    });
    console.log(`run ${run}: ${line.join(', ')}`);
  } finally {
    await Promise.all(children.map((c) => c.stop().catch(() => {})));
    await deleteKeysWithPrefix(redisUrl, prefix).catch(() => {});
  }
}
const first = servers[0]!.label;
console.log(`median main-thread CPU per token relative to ${first}: ${servers.slice(1).map((s) => `${s.label} ${median(ratios.get(s.label)!).toFixed(3)}x`).join(', ')} (${runs} run(s) at ${rate} tokens/s each, ${seconds} s)`);
process.exit(0);
