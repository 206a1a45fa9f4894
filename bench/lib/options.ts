/**
 * Run-wide benchmark options, read once from the environment so every
 * benchmark measures the same way.
 *
 *   BENCH_DURATION     measured seconds per run (default 10)
 *   BENCH_WARMUP       warm-up seconds before each measured run, discarded (default 3)
 *   BENCH_ROUNDS       alternating rounds per server; the best round is reported (default 2)
 *   BENCH_CONNECTIONS  concurrent keep-alive connections of the load generator (default 32)
 *   BENCH_ONLY         comma-separated benchmark ids to run (default: all)
 *   BENCH_PROFILE      run server children with --cpu-prof (profiles in .bench/profiles/):
 *                      1 or fedgate (fedgate's child), bare (the baseline), all, or a comma list
 *   BENCH_LOG_LEVEL    fedgate's log level during the run (default warn)
 *   REDIS_URL          Redis for fedgate (default redis://127.0.0.1:6379)
 */
export interface BenchOptions {
  durationSeconds: number;
  warmupSeconds: number;
  rounds: number;
  connections: number;
  only: string[] | undefined;
  /** Server kinds to run with --cpu-prof (`fedgate`, `bare`; `*` for all); empty for none. */
  profile: string[];
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

function profileList(raw: string | undefined): string[] {
  if (!raw || raw === '0' || raw === 'false') return [];
  if (raw === '1' || raw === 'true') return ['fedgate'];
  if (raw === 'all') return ['*'];
  return raw.split(',').map((s) => s.trim()).filter(Boolean);
}

/** Node.js flags that make a server child of `kind` write a CPU profile named `<kind>-<benchmark>.cpuprofile`, if asked for. */
export function profileArgs(options: BenchOptions, kind: string, benchmark: string, dir: string): string[] {
  if (!options.profile.includes(kind) && !options.profile.includes('*')) return [];
  return ['--cpu-prof', `--cpu-prof-dir=${dir}`, `--cpu-prof-name=${kind}-${benchmark}.cpuprofile`];
}

export function readOptions(env: NodeJS.ProcessEnv = process.env): BenchOptions {
  const only = env.BENCH_ONLY?.split(',').map((s) => s.trim()).filter(Boolean);
  return {
    durationSeconds: positiveNumber(env, 'BENCH_DURATION', 10, { integer: true, min: 1 }),
    warmupSeconds: positiveNumber(env, 'BENCH_WARMUP', 3, { integer: true, min: 0 }),
    rounds: positiveNumber(env, 'BENCH_ROUNDS', 2, { integer: true, min: 1 }),
    connections: positiveNumber(env, 'BENCH_CONNECTIONS', 32, { integer: true, min: 1 }),
    only: only?.length ? only : undefined,
    profile: profileList(env.BENCH_PROFILE),
    logLevel: env.BENCH_LOG_LEVEL || 'warn',
    redisUrl: env.REDIS_URL || 'redis://127.0.0.1:6379',
  };
}
