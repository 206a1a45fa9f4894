/**
 * Run-wide benchmark options, read once from the environment so every
 * benchmark measures the same way.
 *
 *   BENCH_DURATION     measured seconds per run (default 10)
 *   BENCH_WARMUP       warm-up seconds before each measured run, discarded (default 3)
 *   BENCH_ROUNDS       alternating rounds per server; the best round is reported (default 2)
 *   BENCH_CONNECTIONS  concurrent keep-alive connections of the load generator (default 32)
 *   BENCH_ONLY         comma-separated benchmark ids to run (default: all)
 *   BENCH_PROFILE      1: run fedgate's server child with --cpu-prof (profiles in .bench/profiles/)
 *   BENCH_LOG_LEVEL    fedgate's log level during the run (default warn)
 *   REDIS_URL          Redis for fedgate (default redis://127.0.0.1:6379)
 */
export interface BenchOptions {
  durationSeconds: number;
  warmupSeconds: number;
  rounds: number;
  connections: number;
  only: string[] | undefined;
  profile: boolean;
  logLevel: string;
  redisUrl: string;
}

function positiveNumber(env: NodeJS.ProcessEnv, name: string, fallback: number, { integer = false, min = 0 } = {}): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < min || (integer && !Number.isInteger(value))) {
    throw new Error(`${name} must be ${integer ? 'an integer' : 'a number'} >= ${min}, got ${JSON.stringify(raw)}`);
  }
  return value;
}

export function readOptions(env: NodeJS.ProcessEnv = process.env): BenchOptions {
  const only = env.BENCH_ONLY?.split(',').map((s) => s.trim()).filter(Boolean);
  return {
    durationSeconds: positiveNumber(env, 'BENCH_DURATION', 10, { integer: true, min: 1 }),
    warmupSeconds: positiveNumber(env, 'BENCH_WARMUP', 3, { integer: true, min: 0 }),
    rounds: positiveNumber(env, 'BENCH_ROUNDS', 2, { integer: true, min: 1 }),
    connections: positiveNumber(env, 'BENCH_CONNECTIONS', 32, { integer: true, min: 1 }),
    only: only && only.length ? only : undefined,
    profile: env.BENCH_PROFILE === '1' || env.BENCH_PROFILE === 'true',
    logLevel: env.BENCH_LOG_LEVEL || 'warn',
    redisUrl: env.REDIS_URL || 'redis://127.0.0.1:6379',
  };
}
