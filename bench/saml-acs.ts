/**
 * Benchmark: SAML responses checked at the ACS, side by side in one run.
 *
 * - `on the event loop` (the baseline, how fedgate checked responses before
 *   the worker pool): ResponseValidator with the document checks
 *   (response-checks.ts) run in this thread;
 * - `worker pool` (fedgate now): the same validator with the checks in
 *   ValidationPool threads (`saml.validation.threads`, default 2).
 *
 * Each response answers its own request (RelayState and request ID in a
 * memory store, as /saml/login leaves them), is signed ahead of time by
 * samlify (assertion, RSA-SHA256) and must be accepted. Figures:
 * assertions/s with 8 concurrent validations, latency, the event loop's CPU
 * per assertion, and the longest event-loop delay seen during the run (what
 * every other request waits behind). A third row shows the widest response
 * the limits let through (4 × 126 siblings) checked in the pool: the worst
 * an attacker can make one request cost.
 */
import { randomBytes } from 'node:crypto';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { BenchOptions } from './lib/options.ts';
import type { Benchmark, BenchmarkResult, Check, ResultRow } from './lib/types.ts';

const RESPONSES = 400;
const WARMUP = 40;
const WORST = 40;
const CONCURRENCY = 8;

function percentile(sorted: readonly number[], q: number): number {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]! : 0;
}

async function run(_options: BenchOptions): Promise<BenchmarkResult> {
  const [{ MemoryStore }, { ServiceProvider }, { StoreCacheProvider }, { ResponseValidator, relayKey }, checks, { ValidationPool }, { TestIdp, ATTR }, { testKeyPair }] = await Promise.all([
    import('../src/store/index.ts'), import('../src/federation/saml/service-provider.ts'), import('../src/federation/saml/cache-provider.ts'),
    import('../src/federation/saml/response.ts'), import('../src/federation/saml/response-checks.ts'), import('../src/federation/saml/validation-pool.ts'),
    import('../test/federation/saml/test-idp.ts'), import('../test/fixtures/saml/metadata-builder.ts'),
  ]);
  const store = new MemoryStore();
  const cacheProvider = new StoreCacheProvider(store, 900);
  const spKeys = await testKeyPair('bench sp');
  const sp = new ServiceProvider({
    entityId: 'https://fedgate.bench.example/saml/metadata', acsUrl: 'https://fedgate.bench.example/saml/acs', keys: spKeys,
    clockSkewSeconds: 180, requestTtlSeconds: 900, requireSignedAssertions: true, cacheProvider,
  });
  const idp = await TestIdp.create('https://idp.bench.example.org/idp/shibboleth');
  const idpRecord = {
    entityID: idp.entityID, displayName: 'Bench', ssoUrl: idp.ssoUrl, signingCertificates: [idp.keys.certificatePem],
    scopes: [], hidden: false, searchText: '', searchName: '',
  };
  const spMetadata = sp.metadata();
  const wide = Array.from({ length: 4 }, () => `<g>${'<x/>'.repeat(126)}</g>`).join('');

  /** A response to a fresh request whose context is in the store; `extra` goes into a samlp:Extensions. */
  const prepare = async (i: number, extra = ''): Promise<{ samlResponse: string; relayState: string }> => {
    const requestId = `_${randomBytes(20).toString('hex')}`;
    const relayState = randomBytes(32).toString('base64url');
    await store.set(relayKey(relayState), { requestId, idp: idp.entityID, purpose: { kind: 'login', interaction: `b${i}` }, browser: 'b', createdAt: Date.now() }, 3600);
    await cacheProvider.saveAsync(requestId, new Date().toISOString());
    const body = await idp.respond(spMetadata, { requestId, relayState, acsUrl: sp.acsUrl, spEntityId: sp.entityId }, {
      attributes: { [ATTR.subjectId]: [`u${i}@bench.example.org`], [ATTR.mail]: [`u${i}@bench.example.org`], [ATTR.displayName]: [`User ${i}`], [ATTR.entitlement]: ['urn:geant:example.org:group:cms#aai.example.org'] },
    });
    const samlResponse = extra
      ? Buffer.from(Buffer.from(body.SAMLResponse, 'base64').toString('utf8').replace('<samlp:Status>', `<samlp:Extensions>${extra}</samlp:Extensions><samlp:Status>`)).toString('base64')
      : body.SAMLResponse;
    return { samlResponse, relayState };
  };

  // Each check starts in a macrotask of its own, as it would after a Redis round trip (the memory store answers in microtasks).
  const yieldToLoop = () => new Promise<void>((resolve) => setImmediate(resolve));
  const inThread = {
    inspect: async (samlResponse: string) => {
      await yieldToLoop();
      const result = checks.inspectResponse(samlResponse);
      if (!result.ok) throw new checks.SamlResponseError(result.reason, result.message, result.idp);
      return result;
    },
    verify: async (input: Parameters<typeof checks.verifyResponse>[0]) => {
      await yieldToLoop();
      const result = await checks.verifyResponse(input);
      if (!result.ok) throw new checks.SamlResponseError(result.reason, result.message, result.idp, result.status);
      return result;
    },
  };
  const pool = new ValidationPool({ threads: 2, deadlineMs: 30_000, maxQueue: 10_000 });
  await pool.warm();
  const validator = (runner: typeof inThread | InstanceType<typeof ValidationPool>) => new ResponseValidator({
    store, sp, cacheProvider, pool: runner, idp: (id) => (id === idp.entityID ? idpRecord : undefined),
    clockSkewSeconds: 180, requireSignedAssertions: true, allowSha1: false,
  });

  const measure = async (name: string, runner: typeof inThread | InstanceType<typeof ValidationPool>, count: number, extra = '', expectAccepted = true): Promise<ResultRow> => {
    const v = validator(runner);
    const warm = await Promise.all(Array.from({ length: Math.min(WARMUP, count) }, (_, i) => prepare(i, extra)));
    for (const r of warm) await v.validate(r.samlResponse, r.relayState).catch(() => undefined);
    const prepared: Array<{ samlResponse: string; relayState: string }> = [];
    for (let i = 0; i < count; i += 1) prepared.push(await prepare(i, extra));
    const latencies: number[] = [];
    let refused = 0;
    let next = 0;
    const delay = monitorEventLoopDelay({ resolution: 5 });
    delay.enable();
    const cpu = process.cpuUsage();
    const main = process.threadCpuUsage();
    const start = performance.now();
    await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
      while (next < prepared.length) {
        const r = prepared[next++]!;
        const t = performance.now();
        try {
          await v.validate(r.samlResponse, r.relayState);
        } catch {
          refused += 1;
        }
        latencies.push(performance.now() - t);
      }
    }));
    const seconds = (performance.now() - start) / 1000;
    const used = process.cpuUsage(cpu);
    const mainUsed = process.threadCpuUsage(main);
    delay.disable();
    latencies.sort((a, b) => a - b);
    process.stderr.write(`  ${name}: ${(count / seconds).toFixed(0)} /s, p50 ${percentile(latencies, 0.5).toFixed(1)} ms, event loop held up to ${(delay.max / 1e6).toFixed(0)} ms, ${refused} refused\n`);
    return {
      name: `${name} (event loop delay max ${(delay.max / 1e6).toFixed(0)} ms)`,
      round: 1,
      requestsPerSec: count / seconds,
      p50Ms: percentile(latencies, 0.5),
      p90Ms: percentile(latencies, 0.9),
      p99Ms: percentile(latencies, 0.99),
      peakRssMiB: process.memoryUsage().rss / (1024 * 1024),
      non2xx: expectAccepted ? refused : 0,
      errors: 0,
      cpuUsPerRequest: (used.user + used.system) / count,
      mainThreadUsPerRequest: (mainUsed.user + mainUsed.system) / count,
      otherCpuPct: 0,
    };
  };

  try {
    const before = await measure('before: checks on the event loop', inThread, RESPONSES);
    const after = await measure('after: checks in the worker pool (2 threads)', pool, RESPONSES);
    const worstBefore = await measure('worst shape the limits allow (4 × 126 siblings), on the event loop', inThread, WORST / 4, wide, false);
    const worst = await measure('worst shape the limits allow (4 × 126 siblings), worker pool', pool, WORST, wide, false);
    const delayOf = (row: ResultRow) => Number(/delay max (\d+) ms/.exec(row.name)?.[1] ?? 'NaN');
    const result: Check[] = [
      { name: 'responses refused (before, after)', value: before.non2xx + after.non2xx, target: '= 0', pass: before.non2xx + after.non2xx === 0 },
      { name: 'event loop delay max with the worker pool, ms', value: delayOf(after), target: '< 100', pass: delayOf(after) < 100, note: `on the event loop: ${delayOf(before)} ms` },
      { name: 'event loop delay max while the worst allowed shape is checked, ms', value: delayOf(worst), target: '< 100', pass: delayOf(worst) < 100, note: `on the event loop: ${delayOf(worstBefore)} ms` },
    ];
    return {
      id: 'saml-acs',
      title: 'SAML ACS: response checks on the event loop (before) and in the worker pool (after)',
      request: 'one signed response validated by ResponseValidator (store lookups, inspection, node-saml signature and conditions, replay record, consumption); requests/s = assertions/s',
      method: `${RESPONSES} responses per row after ${WARMUP} warm-up ones, ${CONCURRENCY} concurrent validations; worst-shape row: ${WORST} responses`,
      rows: [before, after, worstBefore, worst],
      rounds: [before, after, worstBefore, worst],
      checks: result,
      notes: [
        'samlify signs the assertion (RSA-SHA256, 2048-bit key); each response carries subject-id, mail, displayName and an entitlement; memory store; no HTTP (bench saml measures the ACS over HTTP)',
        'main-thread µs/req is the event loop\'s share: with the pool it is the store work and the hand-off only',
        'the event-loop rows start each check in its own macrotask (as after a Redis round trip), so the delay histogram sees each check as one blocking stretch',
      ],
    };
  } finally {
    await pool.close();
    await store.close();
  }
}

export const samlAcs: Benchmark = {
  id: 'saml-acs',
  title: 'SAML ACS: response checks on the event loop (before) and in the worker pool (after)',
  run,
};
