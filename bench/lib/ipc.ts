/**
 * The small IPC protocol between the benchmark parent and a server child
 * (bench/servers/*.ts), and the child side of it.
 *
 * child -> parent: { type: 'listening', port } once, then { type: 'stats', ... }
 *                  in answer to each stats request.
 * parent -> child: { type: 'stats' } | { type: 'stop' }.
 *
 * A child also exits when the IPC channel closes (the parent died), so no
 * server is ever left behind.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ListeningMessage {
  type: 'listening';
  port: number;
}

export interface StatsMessage {
  type: 'stats';
  /** Peak resident set size of the child so far, bytes (getrusage ru_maxrss). */
  maxRssBytes: number;
  /** Current resident set size, bytes. */
  rssBytes: number;
  /** CPU time the child used so far, microseconds. */
  userCpuMicros: number;
  systemCpuMicros: number;
  /** CPU time of the main (JavaScript) thread alone, microseconds; the rest is libuv's thread pool (crypto) and V8's helpers. */
  mainThreadCpuMicros: number;
}

export type ChildMessage = ListeningMessage | StatsMessage;
export type ParentMessage = { type: 'stats' } | { type: 'stop' };

export function isChildMessage(value: unknown): value is ChildMessage {
  return typeof value === 'object' && value !== null && ((value as { type?: unknown }).type === 'listening' || (value as { type?: unknown }).type === 'stats');
}

function statsNow(): StatsMessage {
  const usage = process.resourceUsage();
  const thread = process.threadCpuUsage();
  return {
    type: 'stats',
    maxRssBytes: usage.maxRSS * 1024, // maxRSS is in KiB
    rssBytes: process.memoryUsage.rss(),
    userCpuMicros: usage.userCPUTime,
    systemCpuMicros: usage.systemCPUTime,
    mainThreadCpuMicros: thread.user + thread.system,
  };
}

/**
 * Child side: announces the listening port to the parent (or on stdout when
 * run by hand), answers stats requests, and on `stop` runs `shutdown` and
 * exits normally (so --cpu-prof can write its profile).
 */
export function serveUnderBench(server: Server, shutdown: () => Promise<void>): void {
  const { port } = server.address() as AddressInfo;
  let stopping = false;
  const stop = (code: number) => {
    if (stopping) return;
    stopping = true;
    const hardStop = setTimeout(() => process.exit(code), 5000);
    hardStop.unref();
    shutdown().then(() => process.exit(code), (err: Error) => {
      process.stderr.write(`bench server: shutdown failed: ${err.message}\n`);
      process.exit(1);
    });
  };
  if (!process.send) {
    process.stdout.write(`listening on http://127.0.0.1:${port}\n`);
    process.on('SIGINT', () => stop(0));
    process.on('SIGTERM', () => stop(0));
    return;
  }
  process.on('message', (message: ParentMessage) => {
    if (message?.type === 'stats') process.send!(statsNow());
    else if (message?.type === 'stop') stop(0);
  });
  process.on('disconnect', () => stop(0));
  process.on('SIGTERM', () => stop(0));
  process.send({ type: 'listening', port } satisfies ListeningMessage);
}
