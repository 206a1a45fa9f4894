/**
 * Benchmark: authorization decisions per second, in process, at 1,000,
 * 10,000 and 100,000 rules: fedgate's decision engine (src/authz/engine.ts)
 * against Casbin's plain Enforcer (`enforceSync`) holding the same lines.
 *
 * The policy is generated (seeded) to look like a research platform's:
 * experiments with group hierarchies, users in a few groups, path patterns
 * under /store/<experiment>/..., named operations, per-user areas, some
 * denies and scope requirements. The engine is measured on distinct
 * requests (each used once, so the decision cache never answers; caches
 * are dropped before each round) and on a small repeating working set
 * (cache hits). Casbin scans every rule per decision, so its measurement is
 * time-boxed. Checks: the engine uncached at least 100× Casbin at 10,000
 * rules, and at least 100,000 decisions/s at 100,000 rules.
 */
import type { Enforcer } from 'casbin';
import { casbinRequest, createCasbinEnforcer } from '../test/support/casbin-reference.ts';
import { PolicyEngine } from '../src/authz/engine.ts';
import { hierarchyLines } from '../src/authz/rules.ts';
import type { DecisionRequest, PolicyLine } from '../src/authz/types.ts';
import { cpuBetween, cpuMark } from './lib/machine.ts';
import type { BenchOptions } from './lib/options.ts';
import type { Benchmark, BenchmarkResult, Check, ResultRow } from './lib/types.ts';
import { mulberry32 } from '../test/support/random.ts';

const SIZES = [1_000, 10_000, 100_000];
/** Distinct requests per uncached round, each decided once. */
const DISTINCT = 200_000;
const WARMUP = 20_000;
/** Requests timed one by one for the engine's latency percentiles. */
const LATENCY_SAMPLE = 20_000;
const WORKING_SET = 1_000;
const CACHED_SECONDS = 1;
const CASBIN_SECONDS = 3;
const CASBIN_MIN_DECISIONS = 3;
const TARGET_SPEEDUP = 100;
const TARGET_RATE = 100_000;
const MiB = 1024 * 1024;

/** The same policy and requests every run. */
const random = mulberry32;

interface Workload {
  lines: PolicyLine[];
  rules: number;
  users: string[];
  experiments: number;
  request(): DecisionRequest;
}

const NAMED_OPERATIONS: Array<[string, string, string]> = [
  ['GET', 'read', 'data'], ['HEAD', 'read', 'data'], ['PUT', 'write', 'data'], ['POST', 'write', 'data'], ['PATCH', 'write', 'data'], ['DELETE', 'write', 'data'],
  ['GET', 'read', 'orchestrator'], ['HEAD', 'read', 'orchestrator'], ['POST', 'deploy', 'orchestrator'], ['PUT', 'deploy', 'orchestrator'], ['DELETE', 'undeploy', 'orchestrator'],
  ['GET', 'read', 'ml'], ['POST', 'inference', 'ml'], ['POST', 'training', 'ml'],
  ['GET', 'read', 'sync'], ['HEAD', 'read', 'sync'], ['PUT', 'write', 'sync'], ['POST', 'write', 'sync'], ['DELETE', 'write', 'sync'],
];

/** A realistic policy of about `rules` p lines, plus its memberships, hierarchy and named operations. */
function workload(rules: number, seed: number): Workload {
  const rnd = random(seed);
  const int = (n: number) => Math.floor(rnd() * n);
  const pick = <T>(items: readonly T[]): T => items[int(items.length)]!;
  const experiments = Math.max(4, Math.round(rules / 250));
  const userCount = Math.max(50, Math.round(rules / 10));
  const p = (...values: string[]): PolicyLine => ({ ptype: 'p', values });
  const lines: PolicyLine[] = NAMED_OPERATIONS.map((values) => ({ ptype: 'g2', values }));
  const policy: PolicyLine[] = [];
  const groupsOf: string[][] = [];
  const groupPaths: string[] = [];
  for (let e = 0; e < experiments; e++) {
    const x = `exp${e}`;
    const teams = [0, 1, 2].map((t) => `/${x}/analysis/team${t}`);
    const groups = [`/${x}`, `/${x}/production`, `/${x}/analysis`, `/${x}/ops`, ...teams];
    groupsOf.push(groups);
    groupPaths.push(...groups);
    policy.push(
      p(`/${x}`, 'data', `/store/${x}/**`, 'read', 'allow', 'storage.read'),
      p(`/${x}/production`, 'data', `/store/${x}/**`, 'write', 'allow', 'storage.modify'),
      p(`/${x}/analysis`, 'data', `/store/${x}/analysis/**`, 'write', 'allow', 'storage.modify'),
      p(`/${x}/ops`, 'data', `/store/${x}/secret/**`, '*', 'allow', ''),
      p(`/${x}`, 'data', `/store/${x}/secret/**`, '*', 'deny', ''),
      p(`/${x}`, 'orchestrator', `/deployments/${x}/**`, 'read', 'allow', ''),
      p(`/${x}/production`, 'orchestrator', `/deployments/${x}/**`, 'deploy', 'allow', 'compute.create'),
      p(`/${x}/production`, 'orchestrator', `/deployments/${x}/*`, 'undeploy', 'allow', 'compute.cancel'),
      p(`/${x}`, 'ml', `/v1/models/${x}/**`, 'read', 'allow', ''),
      p(`/${x}/analysis`, 'ml', `/v1/models/${x}/*/infer`, 'inference', 'allow', 'ml.inference'),
      p(`/${x}/analysis`, 'ml', `/v1/models/${x}/*/train`, 'training', 'deny', ''),
      p(`/${x}/production`, 'ml', `/v1/models/${x}/*/train`, 'training', 'allow', 'ml.training'),
      p(`/${x}`, 'sync', `/groups/${x}/**`, '*', 'allow', ''),
      p(`/${x}`, 'scopes', '*', `storage.read:/store/${x}`, 'allow', ''),
      p(`/${x}/production`, 'scopes', '*', `storage.modify:/store/${x}`, 'allow', ''),
      p(`/${x}/analysis`, 'scopes', '*', `storage.modify:/store/${x}/analysis`, 'allow', ''),
      p(`/${x}/production`, 'scopes', '*', 'compute.create', 'allow', ''),
      ...teams.map((team) => p(team, 'data', `/store${team}/**`, '*', 'allow', 'storage.modify')),
    );
  }
  lines.push(...hierarchyLines(groupPaths));
  const users: string[] = [];
  const home = new Map<string, number>();
  for (let u = 0; u < userCount; u++) {
    const user = `user:u${u}`;
    users.push(user);
    const e = int(experiments);
    home.set(user, e);
    const mine = new Set([pick(groupsOf[e]!), ...(rnd() < 0.5 ? [pick(groupsOf[e]!)] : []), ...(rnd() < 0.2 ? [pick(groupsOf[int(experiments)]!)] : [])]);
    for (const group of mine) lines.push({ ptype: 'g', values: [user, group] });
    if (policy.length < rules * 0.3) {
      policy.push(p(user, 'data', `/store/user/u${u}/**`, '*', 'allow', 'storage.modify'));
      if (rnd() < 0.2) policy.push(p(user, 'data', `/store/exp${e}/data/run${int(1000)}/**`, '*', 'deny', ''));
    }
  }
  // The bulk: dataset rules per group, as a data management service would write them.
  const patterns = [
    (x: string, m: number) => `/store/${x}/data/run${m}/**`,
    (x: string, m: number) => `/store/${x}/data/run${m}/*/aod`,
    (x: string, m: number) => `/store/${x}/mc/*/run${m}/**`,
    (x: string, m: number) => `/store/${x}/data/run${m}/raw/*`,
  ];
  while (policy.length < rules) {
    const e = int(experiments);
    const x = `exp${e}`;
    const subject = rnd() < 0.1 ? pick(users) : pick(groupsOf[e]!);
    const deny = rnd() < 0.05;
    policy.push(p(subject, 'data', pick(patterns)(x, int(1000)), deny ? '*' : pick(['read', 'write', 'GET', 'PUT', '*']), deny ? 'deny' : 'allow', deny ? '' : pick(['storage.read', 'storage.modify', '', `storage.read:/store/${x}/data`])));
  }
  policy.length = rules;
  lines.push(...policy);

  const request = (): DecisionRequest => {
    const subject = pick(users);
    const e = rnd() < 0.9 ? home.get(subject)! : int(experiments);
    const x = `exp${e}`;
    const roll = rnd();
    const file = `f${int(1_000_000)}`;
    if (roll < 0.7) {
      const object = pick([
        () => `/store/${x}/data/run${int(1000)}/${file}/aod`,
        () => `/store/${x}/data/run${int(1000)}/raw/${file}`,
        () => `/store/${x}/mc/s${int(20)}/run${int(1000)}/${file}`,
        () => `/store/${x}/analysis/team${int(3)}/${file}`,
        () => `/store/${x}/secret/${file}`,
        () => `/store/user/u${int(userCount)}/${file}`,
      ])();
      const scopes = pick([[`storage.read:/store/${x}`], [`storage.read:/store/${x}`, `storage.modify:/store/${x}/analysis`], [`storage.modify:/store/${x}`], [`storage.read:/store/${x}/data`], ['storage.modify:/store/user'], []]);
      return { subject, domain: 'data', object, action: pick(['GET', 'GET', 'HEAD', 'PUT', 'DELETE']), scopes };
    }
    if (roll < 0.8) return { subject, domain: 'orchestrator', object: `/deployments/${x}/d${int(1_000_000)}`, action: pick(['GET', 'POST', 'DELETE']), scopes: pick([['compute.create'], ['compute.read'], []]) };
    if (roll < 0.88) return { subject, domain: 'ml', object: `/v1/models/${x}/m${int(1_000_000)}/${pick(['infer', 'train'])}`, action: pick(['GET', 'POST']), scopes: pick([['ml.inference'], ['ml.training'], []]) };
    if (roll < 0.94) return { subject, domain: 'sync', object: `/groups/${x}/${file}`, action: pick(['GET', 'PUT']), scopes: [] };
    return { subject, domain: 'scopes', object: 'https://storage.demo', action: `storage.${pick(['read', 'modify'])}:/store/${x}/${pick(['data', 'analysis', 'secret'])}/${file}`, scopes: [] };
  };
  return { lines, rules, users, experiments, request };
}

function key(request: DecisionRequest): string {
  return JSON.stringify([request.subject, request.domain, request.object, request.action, request.scopes]);
}

/** `count` distinct requests none of which is in `used`. */
function distinctRequests(work: Workload, count: number, used: Set<string>): DecisionRequest[] {
  const out: DecisionRequest[] = [];
  while (out.length < count) {
    const request = work.request();
    const k = key(request);
    if (used.has(k)) continue;
    used.add(k);
    out.push(request);
  }
  return out;
}

function percentile(sorted: readonly number[], q: number): number {
  if (!sorted.length) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

function peakRssMiB(): number {
  return (process.resourceUsage().maxRSS * 1024) / MiB;
}

interface Measured {
  decisions: number;
  seconds: number;
  cpuUs: number;
  mainUs: number;
  otherPct: number;
  allowed: number;
}

/** Runs `step` until it says stop, recording wall time, CPU and machine noise. */
async function measured(step: () => { decisions: number; allowed: number; done: boolean }): Promise<Measured> {
  const mark = await cpuMark([]);
  const cpu = process.cpuUsage();
  const main = process.threadCpuUsage();
  const start = performance.now();
  let decisions = 0;
  let allowed = 0;
  for (;;) {
    const r = step();
    decisions += r.decisions;
    allowed += r.allowed;
    if (r.done) break;
  }
  const seconds = (performance.now() - start) / 1000;
  const cpuUsed = process.cpuUsage(cpu);
  const mainUsed = process.threadCpuUsage(main);
  const noise = cpuBetween(mark, await cpuMark([]));
  return { decisions, seconds, cpuUs: cpuUsed.user + cpuUsed.system, mainUs: mainUsed.user + mainUsed.system, otherPct: noise.otherPct, allowed };
}

function row(name: string, round: number, m: Measured, latencyMs: readonly number[]): ResultRow {
  const sorted = [...latencyMs].sort((a, b) => a - b);
  return {
    name,
    round,
    requestsPerSec: m.decisions / m.seconds,
    p50Ms: percentile(sorted, 0.5),
    p90Ms: percentile(sorted, 0.9),
    p99Ms: percentile(sorted, 0.99),
    peakRssMiB: peakRssMiB(),
    non2xx: 0,
    errors: 0,
    cpuUsPerRequest: m.cpuUs / m.decisions,
    mainThreadUsPerRequest: m.mainUs / m.decisions,
    otherCpuPct: m.otherPct,
  };
}

/** Per-decision latencies of the engine on requests it has not seen, in ms. */
function engineLatencies(engine: PolicyEngine, requests: readonly DecisionRequest[]): number[] {
  const out = new Array<number>(requests.length);
  for (let i = 0; i < requests.length; i++) {
    const t0 = process.hrtime.bigint();
    engine.allowed(requests[i]!);
    out[i] = Number(process.hrtime.bigint() - t0) / 1e6;
  }
  return out;
}

const label = (n: number) => (n >= 1000 ? `${n / 1000}k` : String(n));

async function run(options: BenchOptions): Promise<BenchmarkResult> {
  const rounds: ResultRow[] = [];
  const notes: string[] = [];
  const best = new Map<string, ResultRow>();
  const keep = (r: ResultRow) => {
    rounds.push(r);
    const { round: _round, ...rest } = r;
    const prior = best.get(r.name);
    if (!prior || r.requestsPerSec > prior.requestsPerSec) best.set(r.name, { ...rest, peakRssMiB: Math.max(r.peakRssMiB, prior?.peakRssMiB ?? 0) });
    else prior.peakRssMiB = Math.max(prior.peakRssMiB, r.peakRssMiB);
  };
  let mismatches = 0;
  let compared = 0;
  const uncached = new Map<number, number>();
  const casbinRate = new Map<number, number>();

  for (const size of SIZES) {
    const work = workload(size, 0xfed6a7e + size);
    const t0 = performance.now();
    const engine = new PolicyEngine(work.lines);
    const engineBuildMs = performance.now() - t0;
    const t1 = performance.now();
    const casbin: Enforcer = await createCasbinEnforcer(work.lines);
    const casbinBuildMs = performance.now() - t1;
    const used = new Set<string>();
    const warm = distinctRequests(work, WARMUP, used);
    const distinct = distinctRequests(work, DISTINCT, used);
    const sample = distinctRequests(work, LATENCY_SAMPLE, used);
    const working = distinctRequests(work, WORKING_SET, used);
    used.clear();
    for (const request of warm) engine.allowed(request);
    process.stderr.write(`  ${label(size)} rules: ${work.lines.length} lines (${work.experiments} experiments, ${work.users.length} users); engine built in ${engineBuildMs.toFixed(0)} ms, Casbin in ${casbinBuildMs.toFixed(0)} ms\n`);

    for (let round = 1; round <= options.rounds; round++) {
      engine.invalidate();
      let i = 0;
      const batch = 1000;
      const m = await measured(() => {
        let allowed = 0;
        const start = i;
        const end = Math.min(i + batch, distinct.length);
        for (; i < end; i++) if (engine.allowed(distinct[i]!)) allowed++;
        return { decisions: end - start, allowed, done: i >= distinct.length };
      });
      const latency = engineLatencies(engine, sample);
      const r = row(`engine, distinct requests, ${label(size)} rules`, round, m, latency);
      keep(r);
      uncached.set(size, Math.max(uncached.get(size) ?? 0, r.requestsPerSec));
      process.stderr.write(`  round ${round} ${r.name}: ${r.requestsPerSec.toFixed(0)} decisions/s (${((m.allowed / m.decisions) * 100).toFixed(0)}% allowed), p99 ${(r.p99Ms * 1000).toFixed(1)} µs\n`);

      for (const request of working) engine.allowed(request);
      let j = 0;
      const cachedEnd = performance.now() + CACHED_SECONDS * 1000;
      const c = await measured(() => {
        let allowed = 0;
        for (let k = 0; k < 10_000; k++) {
          if (engine.allowed(working[j]!)) allowed++;
          j = j + 1 === working.length ? 0 : j + 1;
        }
        return { decisions: 10_000, allowed, done: performance.now() >= cachedEnd };
      });
      const cachedLatency = engineLatencies(engine, working);
      const rc = row(`engine, repeated requests (cache hits), ${label(size)} rules`, round, c, cachedLatency);
      keep(rc);
      process.stderr.write(`  round ${round} ${rc.name}: ${rc.requestsPerSec.toFixed(0)} decisions/s\n`);
    }

    // Casbin scans every rule per decision: only a time box keeps 100,000 rules affordable.
    const latencies: number[] = [];
    let n = 0;
    const casbinEnd = performance.now() + CASBIN_SECONDS * 1000;
    const cm = await measured(() => {
      const request = distinct[n++]!;
      const s = performance.now();
      const allowed = casbin.enforceSync(...casbinRequest(request));
      latencies.push(performance.now() - s);
      compared++;
      if (allowed !== engine.allowed(request)) mismatches++;
      return { decisions: 1, allowed: allowed ? 1 : 0, done: (performance.now() >= casbinEnd && n >= CASBIN_MIN_DECISIONS) || n >= distinct.length };
    });
    // The engine calls made to compare are not Casbin's time: take its own, summed.
    const casbinSeconds = latencies.reduce((a, b) => a + b, 0) / 1000;
    const rcas = row(`Casbin enforceSync, ${label(size)} rules`, 1, { ...cm, seconds: casbinSeconds }, latencies);
    keep(rcas);
    casbinRate.set(size, rcas.requestsPerSec);
    process.stderr.write(`  ${rcas.name}: ${rcas.requestsPerSec.toFixed(1)} decisions/s (${n} decisions in ${casbinSeconds.toFixed(1)} s)\n`);
    notes.push(`${label(size)} rules: ${work.lines.length} lines in all (${size} p, the rest g memberships/hierarchy and g2); engine build ${engineBuildMs.toFixed(0)} ms, Casbin build ${casbinBuildMs.toFixed(0)} ms; Casbin measured on ${n} decision(s) in ${casbinSeconds.toFixed(1)} s`);
  }

  notes.push(
    `distinct requests: ${DISTINCT.toLocaleString('en')} per round, each decided once after the engine's caches were dropped (decision cache misses; principals are resolved again and then cached per subject); ${WARMUP.toLocaleString('en')} other requests warm the JIT first`,
    `repeated requests: a working set of ${WORKING_SET} requests decided round-robin for ${CACHED_SECONDS} s (decision cache hits)`,
    `latency columns: engine = single decisions timed one by one (${LATENCY_SAMPLE.toLocaleString('en')} unseen requests, or the working set), Casbin = every measured decision; CPU µs/req is the process's CPU per decision (single-threaded)`,
    `results compared on every Casbin decision: ${compared - mismatches} of ${compared} agree`,
  );
  const speedup = (uncached.get(10_000) ?? 0) / (casbinRate.get(10_000) || Infinity);
  const checks: Check[] = [
    {
      name: 'engine (distinct requests) / Casbin at 10,000 rules',
      value: speedup,
      target: `>= ${TARGET_SPEEDUP}`,
      pass: speedup >= TARGET_SPEEDUP,
      note: `${(uncached.get(10_000) ?? 0).toFixed(0)} vs ${(casbinRate.get(10_000) ?? 0).toFixed(1)} decisions/s`,
    },
    {
      name: 'engine decisions/s (distinct requests) at 100,000 rules',
      value: uncached.get(100_000) ?? 0,
      target: `>= ${TARGET_RATE}`,
      pass: (uncached.get(100_000) ?? 0) >= TARGET_RATE,
    },
    {
      name: 'decisions differing from Casbin',
      value: mismatches,
      target: '= 0',
      pass: mismatches === 0,
      note: `${compared} compared`,
    },
  ];
  return {
    id: 'authz-decisions',
    title: 'Authorization decisions in process: decision engine vs Casbin Enforcer',
    request: 'one decision (subject, domain, object, action, token scopes); requests/s = decisions/s',
    method: `engine: best of ${options.rounds} round(s) per size; Casbin: one run time-boxed to ${CASBIN_SECONDS} s (at least ${CASBIN_MIN_DECISIONS} decisions); same generated lines for both; peak RSS is the process's so far`,
    rows: [...best.values()],
    rounds,
    checks,
    notes,
  };
}

export const authzDecisions: Benchmark = {
  id: 'authz-decisions',
  title: 'Authorization decisions in process: decision engine vs Casbin Enforcer',
  run,
};
