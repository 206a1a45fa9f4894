/**
 * The round loop shared by the benchmarks that measure fedgate side by side
 * with a bare baseline doing the same job without fedgate's code: each
 * server in its own child process (a fresh one every round), measured
 * alternately (baseline, fedgate, baseline, fedgate, ...) with the same
 * load; the best round of each is reported and their ratio is checked
 * against a target. Every round records the server's CPU time per request
 * (whole process and main thread), Redis's CPU and the CPU other processes
 * took (noise).
 */
import { mkdir } from 'node:fs/promises';
import { atInterrupt, startServer, type ServerChild } from './child.ts';
import type { StatsMessage } from './ipc.ts';
import { measure, warmUp, type LoadRequest, type LoadResult } from './load.ts';
import { cpuBetween, cpuMark, type CpuUse } from './machine.ts';
import { profileArgs, type BenchOptions } from './options.ts';
import { PROFILES_DIR } from './paths.ts';
import { deleteKeysWithPrefix } from './redis.ts';
import type { BenchmarkResult, ResultRow } from './types.ts';

/** Rounds where unrelated processes used more CPU than this (% of one core) are flagged as disturbed. */
const NOISY_OTHER_CPU_PCT = 10;
const MiB = 1024 * 1024;

/**
 * The Redis key prefix of this run's fedgate children: the keys are theirs
 * alone, so they never touch real data and are deleted after each benchmark.
 */
export const BENCH_REDIS_PREFIX = `fedgate-bench:${process.pid}:`;

/** A server under test: how to start a fresh process of it. */
export interface ServerSpec {
  /** Short label (`bare`, `fedgate`): used in notes, the ratio's name and profile file names. */
  kind: string;
  /** Full name, shown in the table. */
  name: string;
  /** The server module (bench/servers/*.ts), which announces its port with serveUnderBench. */
  module: URL;
  env?: NodeJS.ProcessEnv;
  /** Whether Redis's CPU is part of this server's work (otherwise it counts as noise). */
  usesRedis: boolean;
}

/** What a side-by-side benchmark measures. */
export interface SideBySide {
  id: string;
  title: string;
  /** What one request does, for the report. */
  request: string;
  /** The baseline first, then the server compared with it. */
  specs: readonly [baseline: ServerSpec, subject: ServerSpec];
  /** The load's request for a freshly started server (may first ask the server for something, e.g. a token). */
  makeRequest(server: ServerChild, spec: ServerSpec): LoadRequest | Promise<LoadRequest>;
  /**
   * Checks, before any load, that the request gets the real answer: a
   * benchmark of error responses would be worthless. Throws if not.
   */
  verify(server: ServerChild, request: LoadRequest, spec: ServerSpec): Promise<void>;
  /** The subject's rate must be at least this share of the baseline's. */
  targetRatio: number;
  /** What one request produces, singular (`token`, `request`), for the per-round lines and notes. */
  unit: string;
}

/** fedgate with the demo realm and the Redis store (bench/servers/fedgate.ts), under the run's key prefix. */
export function fedgateSpec(options: BenchOptions): ServerSpec {
  return {
    kind: 'fedgate',
    name: 'fedgate (Redis)',
    module: new URL('../servers/fedgate.ts', import.meta.url),
    env: { REDIS_URL: options.redisUrl, BENCH_REDIS_PREFIX, BENCH_LOG_LEVEL: options.logLevel },
    usesRedis: true,
  };
}

/** One round of one server: start it, verify, warm up, measure, stop (also on failure). */
async function measureRound(options: BenchOptions, bench: SideBySide, spec: ServerSpec, round: number): Promise<ResultRow> {
  // A fresh process per round: rounds are independent samples (a process's JIT and
  // heap layout vary a few per cent from one start to the next), and only the
  // server being measured is running.
  const server = await startServer({
    name: spec.name,
    module: spec.module,
    ...(spec.env ? { env: spec.env } : {}),
    execArgv: profileArgs(options, spec.kind, `${bench.id}-r${round}`, PROFILES_DIR),
  });
  let load: LoadResult;
  let cpu: CpuUse;
  let stats: StatsMessage;
  try {
    const request = await bench.makeRequest(server, spec);
    await bench.verify(server, request, spec);
    await warmUp(request, options);
    const before = await cpuMark([server], options.redisUrl);
    load = await measure(request, options);
    const after = await cpuMark([server], options.redisUrl);
    cpu = cpuBetween(before, after);
    stats = await server.stats();
  } finally {
    await server.stop().catch(() => {});
  }
  const row: ResultRow = {
    name: server.name,
    round,
    requestsPerSec: load.requestsPerSec,
    p50Ms: load.p50Ms,
    p90Ms: load.p90Ms,
    p99Ms: load.p99Ms,
    peakRssMiB: stats.maxRssBytes / MiB,
    non2xx: load.non2xx,
    errors: load.errors,
    cpuUsPerRequest: load.ok ? (cpu.serversMs[0]! * 1000) / load.ok : 0,
    mainThreadUsPerRequest: load.ok ? (cpu.serversMainMs[0]! * 1000) / load.ok : 0,
    redisCpuPct: spec.usesRedis ? cpu.redisPct : undefined,
    // Redis is "other" only for a server that does not use it.
    otherCpuPct: cpu.otherPct + (spec.usesRedis ? 0 : (cpu.redisPct ?? 0)),
  };
  const codes = Object.entries(load.statusCodes).filter(([code]) => !code.startsWith('2'));
  const { unit } = bench;
  process.stderr.write(`  round ${round} ${server.name}: ${row.requestsPerSec.toFixed(0)} ${unit}s/s, p50 ${row.p50Ms.toFixed(1)} ms, p99 ${row.p99Ms.toFixed(1)} ms, ${row.cpuUsPerRequest.toFixed(0)} CPU µs/${unit} (main thread ${row.mainThreadUsPerRequest.toFixed(0)}), other CPU ${row.otherCpuPct.toFixed(0)}%${codes.length ? `, non-2xx ${JSON.stringify(Object.fromEntries(codes))}` : ''}${load.errors ? `, errors ${load.errors}` : ''}\n`);
  return row;
}

/** The reported row of a server: its best round by rate, with the highest peak RSS of all its rounds. */
function best(rounds: readonly ResultRow[], name: string): ResultRow {
  const mine = rounds.filter((r) => r.name === name);
  const top = mine.reduce((a, b) => (b.requestsPerSec > a.requestsPerSec ? b : a));
  const { round: _round, ...rest } = top;
  return { ...rest, peakRssMiB: Math.max(...mine.map((r) => r.peakRssMiB)) };
}

/**
 * Runs `options.rounds` alternating rounds of the baseline and the subject
 * and returns the result: both best rows, every round, the ratio check
 * (with the per-round ratios, which show how steady it is) and notes on CPU
 * per request, main-thread saturation and disturbed rounds.
 */
export async function runSideBySide(options: BenchOptions, bench: SideBySide): Promise<BenchmarkResult> {
  const [baseline, subject] = bench.specs;
  const usesRedis = bench.specs.some((s) => s.usesRedis);
  const cleanRedis = () => (usesRedis ? deleteKeysWithPrefix(options.redisUrl, BENCH_REDIS_PREFIX).then(() => {}, () => {}) : Promise.resolve());
  const unregister = atInterrupt(cleanRedis);
  try {
    if (options.profile.length) await mkdir(PROFILES_DIR, { recursive: true });
    const rounds: ResultRow[] = [];
    for (let round = 1; round <= options.rounds; round += 1) {
      for (const spec of bench.specs) {
        rounds.push(await measureRound(options, bench, spec, round));
      }
    }

    const baseBest = best(rounds, baseline.name);
    const subjectBest = best(rounds, subject.name);
    const ratioName = `${subject.kind}/${baseline.kind}`;
    const ratio = subjectBest.requestsPerSec / baseBest.requestsPerSec;
    const perRound = Array.from({ length: options.rounds }, (_, i) => {
      const s = rounds.find((r) => r.name === subject.name && r.round === i + 1)!;
      const b = rounds.find((r) => r.name === baseline.name && r.round === i + 1)!;
      return (s.requestsPerSec / b.requestsPerSec).toFixed(2);
    });
    const cpuRatio = subjectBest.cpuUsPerRequest / baseBest.cpuUsPerRequest;
    const mainRatio = subjectBest.mainThreadUsPerRequest / baseBest.mainThreadUsPerRequest;
    const saturation = (r: ResultRow) => ((r.mainThreadUsPerRequest * r.requestsPerSec) / 1e4).toFixed(0);
    const noisy = rounds.filter((r) => r.otherCpuPct > NOISY_OTHER_CPU_PCT);
    const redisExtra = subject.usesRedis && !baseline.usesRedis ? `; ${subject.kind}'s Redis CPU is extra` : '';
    const notes = [
      `CPU per ${bench.unit} ${ratioName} = ${cpuRatio.toFixed(2)} (whole server process${redisExtra}), main thread ${mainRatio.toFixed(2)}`,
      `main thread busy: ${baseline.kind} ${saturation(baseBest)}%, ${subject.kind} ${saturation(subjectBest)}% (near 100%: the JavaScript thread is the bottleneck, and the rate is about 1e6 / main µs per request)`,
    ];
    if (noisy.length) {
      notes.push(`WARNING: other processes used more than ${NOISY_OTHER_CPU_PCT}% of a core in ${noisy.length} round(s) (${noisy.map((r) => `${r.name} #${r.round}`).join(', ')}): figures are disturbed; rerun on a quiet machine`);
    }
    return {
      id: bench.id,
      title: bench.title,
      request: bench.request,
      method: `best of ${options.rounds} alternating round(s) per server (${baseline.kind}, ${subject.kind}, ${baseline.kind}, ...); each round ${options.warmupSeconds} s warm-up (discarded) + ${options.durationSeconds} s measured, ${options.connections} connections, pipelining 1; fresh server processes each round; peak RSS is the highest of the rounds`,
      rows: [baseBest, subjectBest],
      rounds,
      checks: [{
        name: `ratio ${ratioName}`,
        value: ratio,
        target: `>= ${bench.targetRatio}`,
        pass: ratio >= bench.targetRatio,
        note: `per round: ${perRound.join(', ')}`,
      }],
      notes,
    };
  } finally {
    await cleanRedis();
    unregister();
  }
}
