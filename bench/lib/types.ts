import type { BenchOptions } from './options.ts';

/** One measured line: a server (or variant) in one round, or its summary. */
export interface ResultRow {
  name: string;
  /** 1-based round; absent on summary rows. */
  round?: number;
  requestsPerSec: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  /** Peak RSS of the server process so far, MiB. */
  peakRssMiB: number;
  non2xx: number;
  /** Socket errors and timeouts. */
  errors: number;
  /** CPU time of the server process per successful request, microseconds (less noise-prone than the rate). */
  cpuUsPerRequest: number;
  /**
   * CPU time of the server's main thread per successful request, microseconds.
   * JavaScript runs there, so once it is saturated the rate is about 1e6 / this.
   */
  mainThreadUsPerRequest: number;
  /** Redis server CPU during the run, % of one core; absent when not measured. */
  redisCpuPct?: number | undefined;
  /** CPU used by unrelated processes during the run, % of one core: noise, ideally near 0. */
  otherCpuPct: number;
}

/** A target the issue sets, evaluated on this run. */
export interface Check {
  name: string;
  value: number;
  target: string;
  pass: boolean;
  note?: string;
}

export interface BenchmarkResult {
  id: string;
  title: string;
  /** What one request does. */
  request: string;
  /** How summary rows are chosen from rounds, e.g. "best of 2 rounds". */
  method: string;
  /** One row per server: the reported figures. */
  rows: ResultRow[];
  /** Every measured round, in the order run. */
  rounds: ResultRow[];
  checks: Check[];
  /** Further observations printed under the table. */
  notes?: string[];
}

/** A benchmark: run(options) starts its servers, measures, stops them and returns its result. */
export interface Benchmark {
  id: string;
  title: string;
  run(options: BenchOptions): Promise<BenchmarkResult>;
}
