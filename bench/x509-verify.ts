/**
 * Benchmark: certificate login validations per second (verifyChain, the
 * work of one /x509/login before the account lookup), in process, side by
 * side with the code before issue 12 (src/federation/x509 at BASELINE,
 * checked out of git into .bench/ for the run), on the same PKI:
 *
 * - `login`: an end-entity certificate with its intermediate, CRLs at
 *   every level (what an ordinary certificate login does);
 * - `proxy`: an RFC 3820 proxy of it (a grid user's login);
 * - `look-alikes`: a leaf sent with N CA certificates of one subject and
 *   one key: the time to refuse it. Before, path building tried every
 *   order (N = 6 here: 15 would take hours); after, N = 15.
 *
 * Target: ordinary logins do not get slower (ratio ≥ 0.9), and the
 * 15 look-alike chain is decided in under 50 ms.
 */
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { Pki, proxyExtensions } from '../test/federation/x509/pki.ts';
import type { BenchOptions } from './lib/options.ts';
import { OUTPUT_DIR } from './lib/paths.ts';
import type { Benchmark, BenchmarkResult, Check, ResultRow } from './lib/types.ts';

/** main before issue 12. */
const BASELINE = 'e09a538';
const run = promisify(execFile);

interface Implementation {
  verifyChain(chain: Buffer[], trust: unknown, options: unknown): { ok: boolean };
  loadTrustDirectory(dir: string): Promise<unknown>;
}

async function load(dir: string): Promise<Implementation> {
  const verify = await import(join(dir, 'verify.ts')) as { verifyChain: Implementation['verifyChain'] };
  const store = await import(join(dir, 'trust-store.ts')) as { loadTrustDirectory: Implementation['loadTrustDirectory'] };
  return { verifyChain: verify.verifyChain, loadTrustDirectory: store.loadTrustDirectory };
}

/** The baseline's src/federation/x509 (and what it imports) in .bench/x509-baseline/. */
async function baselineTree(): Promise<string> {
  const root = join(OUTPUT_DIR, 'x509-baseline');
  await rm(root, { recursive: true, force: true });
  await mkdir(root, { recursive: true });
  const { stdout } = await run('git', ['archive', '--format=tar', BASELINE, 'src'], { encoding: 'buffer', maxBuffer: 64 * 1024 * 1024 });
  await writeFile(join(root, 'src.tar'), stdout);
  await run('tar', ['-xf', 'src.tar'], { cwd: root });
  return join(root, 'src', 'federation', 'x509');
}

function row(name: string, perSecond: number, msPerOp: number, rss: number): ResultRow {
  return {
    name, requestsPerSec: perSecond, p50Ms: msPerOp, p90Ms: msPerOp, p99Ms: msPerOp, peakRssMiB: rss, non2xx: 0, errors: 0,
    cpuUsPerRequest: msPerOp * 1000, mainThreadUsPerRequest: msPerOp * 1000, otherCpuPct: 0,
  };
}

/** Operations per second of `fn` over `seconds`, best of `rounds`. */
function measure(fn: () => void, seconds: number, rounds: number): number {
  let best = 0;
  for (let r = 0; r < rounds; r++) {
    const end = performance.now() + seconds * 1000;
    let n = 0;
    const start = performance.now();
    while (performance.now() < end) { fn(); n += 1; }
    best = Math.max(best, n / ((performance.now() - start) / 1000));
  }
  return best;
}

async function lookAlikes(pki: Pki, n: number, prefix: string): Promise<Buffer[]> {
  const config = join(pki.dir, 'bench-la.cnf');
  await writeFile(config, '[req]\ndistinguished_name = dn\nprompt = no\n[dn]\n[ext]\nbasicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign\n');
  const key = join(pki.dir, 'bench-la.key');
  await pki.openssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-out', key).catch(() => {});
  const certs = await Promise.all(Array.from({ length: n }, async (_, i) => {
    const pem = await pki.openssl('req', '-config', config, '-x509', '-key', key, '-subj', '/DC=org/DC=bench/CN=Look-alike CA', '-set_serial', String(9000 + i), '-days', '3', '-extensions', 'ext');
    return { pem, der: Buffer.from(new X509Certificate(pem).raw) };
  }));
  const leafFile = join(pki.dir, `${prefix}-leaf`);
  await writeFile(`${leafFile}.ca.pem`, certs[0]!.pem);
  await pki.openssl('req', '-config', join(pki.dir, 'req.cnf'), '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${leafFile}.key`, '-subj', '/DC=org/DC=bench/CN=Victim', '-out', `${leafFile}.csr`);
  const leaf = await pki.openssl('x509', '-req', '-in', `${leafFile}.csr`, '-CA', `${leafFile}.ca.pem`, '-CAkey', key, '-set_serial', '77', '-days', '3');
  return [Buffer.from(new X509Certificate(leaf).raw), ...certs.map((c) => c.der)];
}

async function runBenchmark(options: BenchOptions): Promise<BenchmarkResult> {
  const pki = await Pki.create();
  try {
    const root = await pki.root('root', '/DC=org/DC=bench/CN=Bench Root CA');
    const int = await pki.intermediate(root, 'int', '/DC=org/DC=bench/CN=Bench Intermediate CA');
    const alice = await pki.issue(int, 'alice', '/DC=org/DC=bench/CN=Alice');
    const proxy = await pki.proxy(alice, 'proxy', '1001', proxyExtensions());
    const anchors = join(pki.dir, 'anchors');
    await mkdir(anchors);
    await writeFile(join(anchors, 'root.pem'), root.pem);
    await writeFile(join(anchors, 'root.crl.pem'), await pki.crl(root));
    await writeFile(join(anchors, 'int.crl.pem'), await pki.crl(int));
    const [before6, after15] = await Promise.all([lookAlikes(pki, 6, 'la6'), lookAlikes(pki, 15, 'la15')]);

    const implementations = [
      { name: `before (${BASELINE})`, impl: await load(await baselineTree()), lookAlikes: before6 },
      { name: 'after', impl: await load(join(process.cwd(), 'src', 'federation', 'x509')), lookAlikes: after15 },
    ];
    const verifyOptions = { crl: { missing: 'accept', expired: 'refuse' }, proxyCertificates: true };
    const seconds = Math.max(1, Math.min(options.durationSeconds, 5));
    const rows: ResultRow[] = [];
    const rates = new Map<string, number>();
    const notes: string[] = [];
    for (const { name, impl, lookAlikes: chain } of implementations) {
      const trust = await impl.loadTrustDirectory(anchors);
      const login = [alice.der, int.der];
      const proxyChain = [proxy.der, alice.der, int.der];
      if (!impl.verifyChain(login, trust, verifyOptions).ok || !impl.verifyChain(proxyChain, trust, verifyOptions).ok) throw new Error(`${name}: the bench chains do not validate`);
      const rss = process.memoryUsage().rss / 2 ** 20;
      for (const [kind, c] of [['login', login], ['proxy', proxyChain]] as const) {
        const rate = measure(() => impl.verifyChain(c, trust, verifyOptions), seconds, options.rounds);
        rates.set(`${name}/${kind}`, rate);
        rows.push(row(`${name}: ${kind}`, rate, 1000 / rate, rss));
      }
      const start = performance.now();
      const refused = impl.verifyChain(chain, trust, verifyOptions);
      const ms = performance.now() - start;
      if (refused.ok) throw new Error(`${name}: the look-alike chain validated`);
      rates.set(`${name}/look-alikes`, ms);
      rows.push(row(`${name}: ${chain.length - 1} look-alike CAs (one decision)`, 1000 / ms, ms, rss));
      notes.push(`${name}: ${chain.length - 1} look-alike CAs refused in ${ms.toFixed(1)} ms`);
    }
    const ratio = (kind: string) => rates.get(`after/${kind}`)! / rates.get(`${implementations[0]!.name}/${kind}`)!;
    const checks: Check[] = [
      { name: 'ordinary certificate logins/s, after ÷ before', value: ratio('login'), target: '≥ 0.9', pass: ratio('login') >= 0.9 },
      { name: 'proxy logins/s, after ÷ before', value: ratio('proxy'), target: '≥ 0.9', pass: ratio('proxy') >= 0.9 },
      { name: '15 look-alike CAs decided in (ms)', value: rates.get('after/look-alikes')!, target: '< 50', pass: rates.get('after/look-alikes')! < 50 },
    ];
    return {
      id: x509Verify.id,
      title: x509Verify.title,
      request: 'verifyChain in process (no HTTP): leaf + intermediate with CRLs; RFC 3820 proxy + EEC + intermediate; a leaf with N look-alike CAs',
      method: `best of ${options.rounds} rounds of ${seconds} s per chain`,
      rows,
      rounds: [],
      checks,
      notes,
    };
  } finally {
    await pki.cleanup();
  }
}

export const x509Verify: Benchmark = {
  id: 'x509-verify',
  title: 'Certificate login validations per second, before and after issue 12',
  run: runBenchmark,
};
