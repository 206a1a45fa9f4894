/**
 * `npm run bench`: runs each benchmark in turn, prints a table per benchmark
 * and writes every figure to .bench/results.json (gitignored) for
 * docs/performance.md. Missing a target is reported, not an error: the exit
 * code is 0 unless a benchmark could not run at all.
 *
 * Options come from the environment; see bench/lib/options.ts
 * (BENCH_DURATION, BENCH_WARMUP, BENCH_ROUNDS, BENCH_CONNECTIONS, BENCH_ONLY,
 * BENCH_PROFILE, BENCH_LOG_LEVEL, REDIS_URL).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { adminLists } from './admin-lists.ts';
import { authzDecisions } from './authz-decisions.ts';
import { authzHttp } from './authz-http.ts';
import { consolePages } from './console-pages.ts';
import { report } from './lib/format.ts';
import { busyShare, machineInfo } from './lib/machine.ts';
import { readOptions } from './lib/options.ts';
import { OUTPUT_DIR, RESULTS_FILE } from './lib/paths.ts';
import type { Benchmark, BenchmarkResult } from './lib/types.ts';
import { refreshAtScale } from './refresh-at-scale.ts';
import { refreshTokens } from './refresh-tokens.ts';
import { samlAcs } from './saml-acs.ts';
import { samlMetadata } from './saml-metadata.ts';
import { tokenExchange } from './token-exchange.ts';
import { tokenIssuance } from './token-issuance.ts';
import { x509Verify } from './x509-verify.ts';

/** Every benchmark, in run order; later features append theirs. */
const BENCHMARKS: Benchmark[] = [tokenIssuance, authzDecisions, authzHttp, samlMetadata, samlAcs, tokenExchange, refreshAtScale, refreshTokens, x509Verify, consolePages, adminLists];

async function main(): Promise<void> {
  const options = readOptions();
  const selected = options.only ? BENCHMARKS.filter((b) => options.only!.includes(b.id)) : BENCHMARKS;
  if (options.only && selected.length !== options.only.length) {
    const known = new Set(BENCHMARKS.map((b) => b.id));
    throw new Error(`unknown benchmark(s) in BENCH_ONLY: ${options.only.filter((id) => !known.has(id)).join(', ')} (known: ${[...known].join(', ')})`);
  }
  const machine = machineInfo();
  process.stdout.write(`fedgate benchmarks: node ${machine.node}, ${machine.cpus} CPU(s) (${machine.cpuModel}), ${machine.platform}\n`);
  const busy = await busyShare(1000);
  if (busy > 0.1) {
    process.stdout.write(`WARNING: the machine is already ${(busy * 100).toFixed(0)}% busy (all cores) before the run; figures will be disturbed\n`);
  }
  if (options.profile.length) process.stdout.write(`BENCH_PROFILE: ${options.profile.join(', ')} run with --cpu-prof (profiles in .bench/profiles/); their figures are lower than usual\n`);

  const results: BenchmarkResult[] = [];
  for (const benchmark of selected) {
    process.stdout.write(`\nrunning ${benchmark.id}...\n`);
    const result = await benchmark.run(options);
    results.push(result);
    process.stdout.write(`\n${report(result)}\n`);
  }

  await mkdir(OUTPUT_DIR, { recursive: true });
  await writeFile(RESULTS_FILE, `${JSON.stringify({ date: new Date().toISOString(), machine: { ...machine, busyBeforeRunPct: Math.round(busy * 100) }, options, benchmarks: results }, null, 2)}\n`);
  const failed = results.flatMap((r) => r.checks.filter((c) => !c.pass).map((c) => `${r.id}: ${c.name}`));
  process.stdout.write(`\nresults written to ${RESULTS_FILE}\n`);
  process.stdout.write(failed.length ? `TARGETS MISSED: ${failed.join('; ')}\n` : 'all targets met\n');
}

main().catch((err: Error) => {
  process.stderr.write(`bench: ${err.stack ?? err.message}\n`);
  process.exit(1);
});
