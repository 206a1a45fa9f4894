/**
 * How fedgate answers while its Redis is frozen (SIGSTOP) and then down:
 * status codes and the slowest request per phase, under a small concurrent
 * load of requests that need the store (opaque client credentials tokens and
 * their introspection). Not a throughput benchmark: a record of the failure
 * behaviour (issue 14, "Failing honestly"), with the default store deadline.
 *
 *   node bench/tools/outage-latency.ts [freezeSeconds=12] [downSeconds=8]
 *
 * Uses its own redis-server on a free port; the shared Redis is not touched.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { createFedgate } from '../../src/app.ts';
import { loadConfig } from '../../src/config/index.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { RedisStore } from '../../src/store/index.ts';
import { PrivateRedis } from '../../test/support/private-redis.ts';

const freezeSeconds = Number(process.argv[2] ?? 12);
const downSeconds = Number(process.argv[3] ?? 8);
const CONCURRENCY = 4;
const AUTH = `Basic ${Buffer.from('demo-service:demo-service-secret').toString('base64')}`;
const FORM = { authorization: AUTH, 'content-type': 'application/x-www-form-urlencoded' };

const redis = await PrivateRedis.start();
const config = await loadConfig({ LOG_LEVEL: 'silent' });
config.keysDir = await mkdtemp(join(tmpdir(), 'fedgate-outage-'));
const fedgate = await createFedgate(config, {
  store: new RedisStore({ url: redis.url, keyPrefix: 'outage:', deadlineMs: config.store.deadlineMs }),
  logger: createLogger('silent'),
  watchKeys: false,
});
const server = await fedgate.listen(0, '127.0.0.1');
const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;

const issue = async () => fetch(`${base}/token`, { method: 'POST', headers: FORM, body: 'grant_type=client_credentials' });
const token = (await (await issue()).json() as { access_token: string }).access_token;
const introspect = () => fetch(`${base}/token/introspection`, { method: 'POST', headers: FORM, body: `token=${token}` });

interface Phase { name: string; statuses: Map<number, number>; latencies: number[]; slow: string[] }
let phase: Phase = { name: 'warm-up', statuses: new Map(), latencies: [], slow: [] };
const t0 = performance.now();
const loopDelay = monitorEventLoopDelay({ resolution: 10 });
loopDelay.enable();
const phases: Phase[] = [];
let running = true;
const worker = async (n: number) => {
  for (let i = n; running; i += 1) {
    const current = phase;
    const start = performance.now();
    const res = await (i % 2 ? introspect() : issue()).catch(() => undefined);
    await res?.arrayBuffer();
    const ms = performance.now() - start;
    current.latencies.push(ms);
    const status = res?.status ?? 0;
    if (ms > 1000) current.slow.push(`${i % 2 ? 'introspection' : 'token'} ${status} ${Math.round(ms)} ms at +${Math.round(start - t0)} ms`);
    current.statuses.set(status, (current.statuses.get(status) ?? 0) + 1);
  }
};
const begin = (name: string) => { phase = { name, statuses: new Map(), latencies: [], slow: [] }; phases.push(phase); console.log(`${name} at +${Math.round(performance.now() - t0)} ms`); };
const sleep = (s: number) => new Promise((r) => setTimeout(r, s * 1000));

const workers = Array.from({ length: CONCURRENCY }, (_, n) => worker(n));
begin('Redis up');
await sleep(3);
begin(`Redis frozen (SIGSTOP, ${freezeSeconds} s)`);
redis.freeze();
await sleep(freezeSeconds);
redis.thaw();
begin('after SIGCONT');
await sleep(3);
begin(`Redis down (SIGKILL, ${downSeconds} s)`);
await redis.kill();
await sleep(downSeconds);
await redis.restart();
begin('Redis restarted (empty)');
await sleep(3);
running = false;
await Promise.all(workers);

const pct = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? 0;
};
console.log(`deadline ${config.store.deadlineMs} ms, Retry-After ${config.store.retryAfterSeconds} s, ${CONCURRENCY} concurrent clients\n`);
console.log('| phase | requests | statuses | p50 ms | p99 ms | max ms |');
console.log('|:--|--:|:--|--:|--:|--:|');
for (const p of phases) {
  const statuses = [...p.statuses].sort(([a], [b]) => a - b).map(([s, c]) => `${s}×${c}`).join(' ');
  console.log(`| ${p.name} | ${p.latencies.length} | ${statuses} | ${pct(p.latencies, 0.5).toFixed(1)} | ${pct(p.latencies, 0.99).toFixed(1)} | ${Math.max(...p.latencies).toFixed(1)} |`);
}
for (const p of phases) if (p.slow.length) console.log(`slow in ${p.name}: ${p.slow.join('; ')}`);
console.log(`event loop delay (this process, server and clients): max ${Math.round(loopDelay.max / 1e6)} ms, p99 ${Math.round(loopDelay.percentile(99) / 1e6)} ms`);
await fedgate.close();
await redis.kill();
await rm(config.keysDir, { recursive: true, force: true });
