/**
 * Parent side of a server under test: each server runs in its own child
 * process (so its CPU time and peak RSS are its own) and reports its port
 * over IPC. Every child started here is killed when the parent exits, however
 * it exits.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { isChildMessage, type ParentMessage, type StatsMessage } from './ipc.ts';

export interface ServerChild {
  name: string;
  pid: number;
  port: number;
  url: string;
  /** Peak and current RSS and CPU time of the child so far. */
  stats(): Promise<StatsMessage>;
  /** Asks the child to shut down cleanly (waits up to `timeoutMs`, then kills it). */
  stop(timeoutMs?: number): Promise<void>;
  /** The last lines the child wrote to stdout/stderr (kept, not echoed). */
  output(): string;
}

export interface StartOptions {
  /** A short name for messages. */
  name: string;
  /** The server module, e.g. new URL('../servers/fedgate.ts', import.meta.url). */
  module: URL;
  env?: NodeJS.ProcessEnv;
  /** Extra Node.js flags for the child (e.g. --cpu-prof). */
  execArgv?: string[];
  /** How long to wait for the "listening" message (default 60 s). */
  startTimeoutMs?: number;
}

const live = new Set<ChildProcess>();
const interruptCleanups = new Set<() => Promise<void>>();
let hooksInstalled = false;

/**
 * Registers work to do (best effort, 5 s at most) if the run is interrupted
 * by a signal, e.g. deleting the benchmark's Redis keys. Returns an unregister function.
 */
export function atInterrupt(cleanup: () => Promise<void>): () => void {
  interruptCleanups.add(cleanup);
  return () => interruptCleanups.delete(cleanup);
}

function killAll(): void {
  for (const child of live) {
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
  live.clear();
}

function installExitHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', killAll);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => {
      killAll();
      const code = 128 + (signal === 'SIGINT' ? 2 : signal === 'SIGTERM' ? 15 : 1);
      const timer = setTimeout(() => process.exit(code), 5000);
      Promise.allSettled([...interruptCleanups].map((fn) => fn())).then(() => {
        clearTimeout(timer);
        process.exit(code);
      });
    });
  }
}

/** Keeps the last `limit` characters a child wrote; the pipes must be drained or the child blocks. */
function tail(limit: number) {
  let text = '';
  return {
    push(chunk: Buffer | string) {
      text += chunk.toString();
      if (text.length > limit * 2) text = text.slice(-limit);
    },
    get() {
      return text.length > limit ? text.slice(-limit) : text;
    },
  };
}

export async function startServer(options: StartOptions): Promise<ServerChild> {
  installExitHooks();
  const log = tail(16 * 1024);
  const child = fork(fileURLToPath(options.module), [], {
    execArgv: options.execArgv ?? [],
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  live.add(child);
  child.stdout!.on('data', log.push);
  child.stderr!.on('data', log.push);
  child.once('exit', () => live.delete(child));

  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error(`timed out waiting for it to listen`)), options.startTimeoutMs ?? 60_000);
    const onMessage = (message: unknown) => {
      if (isChildMessage(message) && message.type === 'listening') {
        cleanup();
        resolve(message.port);
      }
    };
    const onExit = (code: number | null, signal: string | null) => fail(new Error(`exited before listening (code ${code}, signal ${signal})`));
    const onError = (err: Error) => fail(err);
    function cleanup() {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
      child.off('error', onError);
    }
    function fail(err: Error) {
      cleanup();
      child.kill('SIGKILL');
      const out = log.get().trim();
      reject(new Error(`server ${options.name}: ${err.message}${out ? `\n--- its output ---\n${out}\n---` : ''}`));
    }
    child.on('message', onMessage);
    child.once('exit', onExit);
    child.once('error', onError);
  });

  const send = (message: ParentMessage) => child.send(message);
  return {
    name: options.name,
    pid: child.pid!,
    port,
    url: `http://127.0.0.1:${port}`,
    stats() {
      return new Promise<StatsMessage>((resolve, reject) => {
        if (child.exitCode !== null || child.signalCode !== null) {
          reject(new Error(`server ${options.name} is not running`));
          return;
        }
        const timer = setTimeout(() => done(new Error(`server ${options.name}: no stats answer`)), 5000);
        const onMessage = (message: unknown) => {
          if (isChildMessage(message) && message.type === 'stats') done(undefined, message);
        };
        function done(err?: Error, stats?: StatsMessage) {
          clearTimeout(timer);
          child.off('message', onMessage);
          if (err) reject(err);
          else resolve(stats!);
        }
        child.on('message', onMessage);
        send({ type: 'stats' });
      });
    },
    async stop(timeoutMs = 10_000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, 'exit');
      if (child.connected) send({ type: 'stop' });
      else child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      await exited;
      clearTimeout(timer);
    },
    output: log.get,
  };
}
