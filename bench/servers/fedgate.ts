/**
 * fedgate as deployed with the demo realm and the Redis store, for the
 * benchmarks. Differences from `npm start`: a throw-away keys directory, a
 * per-run Redis key prefix (BENCH_REDIS_PREFIX, so the run never touches
 * real data and its keys can be deleted afterwards), a quieter log level
 * (BENCH_LOG_LEVEL, default warn) and port 0 on 127.0.0.1.
 * Run by the benchmark parent in its own process; reports its port over IPC.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createFedgate } from '../../src/app.ts';
import { loadConfig } from '../../src/config/index.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { createStore, type ConsumeResult, type Store } from '../../src/store/index.ts';
import { serveUnderBench } from '../lib/ipc.ts';

const redisUrl = process.env.REDIS_URL || 'redis://127.0.0.1:6379';
const keyPrefix = process.env.BENCH_REDIS_PREFIX || `fedgate-bench:${process.pid}:`;
const keysDir = await mkdtemp(join(tmpdir(), 'fedgate-bench-keys-'));

const loaded = await loadConfig({
  REDIS_URL: redisUrl,
  LOG_LEVEL: process.env.BENCH_LOG_LEVEL || 'warn',
  ...(process.env.BENCH_ISSUER ? { ISSUER: process.env.BENCH_ISSUER } : {}),
});
const config = { ...loaded, keysDir };
const logger = createLogger(config.logLevel);
// The same store createFedgate would make from REDIS_URL, only with the bench key prefix.
const created = createStore({
  redisUrl,
  keyPrefix,
  // BENCH_STORE_DEADLINE_MS: a longer store deadline, for runs under valgrind (bench/tools/callgrind-instructions.ts).
  ...(process.env.BENCH_STORE_DEADLINE_MS ? { deadlineMs: Number(process.env.BENCH_STORE_DEADLINE_MS) } : {}),
  onError: (err) => logger.error({ err: { message: err.message } }, 'store connection error'),
});
// BENCH_CONSUME=read-then-write: one-time artifacts consumed as before the atomic Store.consume (the refresh-tokens baseline).
const store = process.env.BENCH_CONSUME === 'read-then-write' ? withReadThenWriteConsume(created) : created;
const fedgate = await createFedgate(config, { store, logger });
// BENCH_PORT: a fixed port, for benchmarks whose requests must match the issuer (BENCH_ISSUER).
const server = await fedgate.listen(Number(process.env.BENCH_PORT ?? 0), '127.0.0.1');

serveUnderBench(server, async () => {
  server.closeAllConnections();
  await fedgate.close();
  logger.flush();
  await rm(keysDir, { recursive: true, force: true });
});

/**
 * The store with `consume` done the way the adapter did it before it was
 * one atomic step: read the artifact, then write it back marked (two round
 * trips, and two concurrent uses can both pass). Everything else is the
 * store itself.
 */
function withReadThenWriteConsume(inner: Store): Store {
  async function consume<T>(key: string, at: number): Promise<ConsumeResult<T>> {
    const value = await inner.get<T>(key);
    if (value === undefined) return { outcome: 'absent' };
    await inner.replace(key, { ...value, consumed: at });
    return { outcome: 'consumed', value };
  }
  return new Proxy(inner, {
    get(target, property) {
      if (property === 'consume') return consume;
      const value: unknown = Reflect.get(target, property, target);
      // The store's methods use private fields: they must run on the store itself, not the proxy.
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}
