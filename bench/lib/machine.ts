/**
 * The machine a run happens on, and CPU accounting around each measured run.
 * On a shared 2-core machine anything else running during a benchmark shows
 * up directly in its figures, so every round records how much CPU went to
 * the server under test, to Redis, and to other processes (noise).
 */
import { availableParallelism, cpus, loadavg, totalmem } from 'node:os';
import type { ServerChild } from './child.ts';
import { redisCpuMs } from './redis.ts';

export interface MachineInfo {
  cpus: number;
  cpuModel: string;
  memoryGiB: number;
  platform: string;
  node: string;
  loadAverage1m: number;
}

export function machineInfo(): MachineInfo {
  return {
    cpus: availableParallelism(),
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round((totalmem() / 1024 ** 3) * 10) / 10,
    platform: `${process.platform} ${process.arch}`,
    node: process.version,
    loadAverage1m: Math.round(loadavg()[0]! * 100) / 100,
  };
}

function machineTimes(): { busyMs: number; totalMs: number } {
  let busyMs = 0;
  let totalMs = 0;
  for (const { times } of cpus()) {
    const all = times.user + times.nice + times.sys + times.idle + times.irq;
    busyMs += all - times.idle;
    totalMs += all;
  }
  return { busyMs, totalMs };
}

/** Share of the machine's CPU capacity (all cores) that is busy over the next `ms` milliseconds, 0..1. */
export async function busyShare(ms: number): Promise<number> {
  const a = machineTimes();
  await new Promise((resolve) => setTimeout(resolve, ms));
  const b = machineTimes();
  const total = b.totalMs - a.totalMs;
  return total > 0 ? Math.min(1, (b.busyMs - a.busyMs) / total) : 0;
}

/** CPU counters at one instant. */
export interface CpuMark {
  wallMs: number;
  machineBusyMs: number;
  machineTotalMs: number;
  /** This process (the load generator). */
  parentMs: number;
  /** Each server child, in the order given: the whole process, and its main thread alone. */
  serversMs: number[];
  serversMainMs: number[];
  /** The Redis server, if a URL was given and INFO answered. */
  redisMs: number | undefined;
}

export async function cpuMark(servers: readonly ServerChild[], redisUrl?: string): Promise<CpuMark> {
  const [stats, redisMs] = await Promise.all([
    Promise.all(servers.map((s) => s.stats())),
    redisUrl ? redisCpuMs(redisUrl) : Promise.resolve(undefined),
  ]);
  const machine = machineTimes();
  const parent = process.cpuUsage();
  return {
    wallMs: performance.now(),
    machineBusyMs: machine.busyMs,
    machineTotalMs: machine.totalMs,
    parentMs: (parent.user + parent.system) / 1000,
    serversMs: stats.map((s) => (s.userCpuMicros + s.systemCpuMicros) / 1000),
    serversMainMs: stats.map((s) => s.mainThreadCpuMicros / 1000),
    redisMs,
  };
}

/** CPU used between two marks. Percentages are of one core (100 = one core busy the whole time). */
export interface CpuUse {
  wallMs: number;
  serversMs: number[];
  serversMainMs: number[];
  redisMs: number | undefined;
  /** Load generator, % of one core. */
  parentPct: number;
  /** Redis, % of one core (undefined when unknown). */
  redisPct: number | undefined;
  /** Everything else on the machine, % of one core: noise. */
  otherPct: number;
}

export function cpuBetween(a: CpuMark, b: CpuMark): CpuUse {
  const wallMs = b.wallMs - a.wallMs;
  const serversMs = b.serversMs.map((ms, i) => ms - (a.serversMs[i] ?? 0));
  const redisMs = a.redisMs !== undefined && b.redisMs !== undefined ? b.redisMs - a.redisMs : undefined;
  const parentMs = b.parentMs - a.parentMs;
  const machineMs = b.machineBusyMs - a.machineBusyMs;
  const otherMs = machineMs - parentMs - serversMs.reduce((x, y) => x + y, 0) - (redisMs ?? 0);
  const pct = (ms: number) => (wallMs > 0 ? (ms / wallMs) * 100 : 0);
  return {
    wallMs,
    serversMs,
    serversMainMs: b.serversMainMs.map((ms, i) => ms - (a.serversMainMs[i] ?? 0)),
    redisMs,
    parentPct: pct(parentMs),
    redisPct: redisMs === undefined ? undefined : pct(redisMs),
    // Counters tick in 10 ms steps, so small negative values are rounding.
    otherPct: Math.max(0, pct(otherMs)),
  };
}
