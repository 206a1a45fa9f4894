/**
 * Crafted chains cannot make certificate validation expensive: path
 * building is bounded (each signature checked at most once, hard caps), and
 * a request carrying the worst chain the limits allow does not hold other
 * requests (perf_hooks.monitorEventLoopDelay), on the header route and on
 * the mTLS listener.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import { TrustStore } from '../../../src/federation/x509/trust-store.ts';
import { MAX_CHAIN_LENGTH, VERIFY_LIMITS, verifyChain, type VerifyOptions } from '../../../src/federation/x509/verify.ts';
import { createLogger } from '../../../src/observability/logger.ts';
import { rawRequest, startServer, type TestServer } from '../../support/harness.ts';
import { Pki, type Ca, type Issued } from './pki.ts';

const OPTIONS: VerifyOptions = { crl: { missing: 'accept', expired: 'refuse' }, proxyCertificates: true };
const LOOK_ALIKES = MAX_CHAIN_LENGTH - 1;
const LOOK_ALIKE_SUBJECT = '/DC=org/DC=fedgate-test/CN=Look-alike CA';

interface LookAlikePki {
  pki: Pki;
  anchors: string;
  root: Ca;
  /** Self-signed CAs with one subject and one key, none of them trusted. */
  lookAlikes: Issued[];
  /** Issued by that key. */
  victim: Issued;
  /** Issued by the trusted root, with the look-alikes sent along. */
  alice: Issued;
}

/** Counts the certificate signature checks node:crypto performs while `fn` runs. */
function countingSignatureChecks<T>(fn: () => T): { result: T; checks: number } {
  const original = X509Certificate.prototype.verify;
  let checks = 0;
  X509Certificate.prototype.verify = function verify(this: X509Certificate, key) {
    checks += 1;
    return original.call(this, key);
  };
  try {
    return { result: fn(), checks };
  } finally {
    X509Certificate.prototype.verify = original;
  }
}

const CA_CONFIG = '[req]\ndistinguished_name = dn\nprompt = no\n[dn]\n[ext]\nbasicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign\n';

/**
 * `count` self-signed CAs named LOOK_ALIKE_SUBJECT, with the key in
 * `keyFile` (a new key each when absent); `keyIds: false` leaves out the
 * key identifiers, which would otherwise rule candidate issuers out.
 */
async function selfSigned(pki: Pki, prefix: string, count: number, keyFile?: string, keyIds = true): Promise<Issued[]> {
  const config = join(pki.dir, `${prefix}.cnf`);
  await writeFile(config, keyIds ? CA_CONFIG : `${CA_CONFIG}subjectKeyIdentifier = none\nauthorityKeyIdentifier = none\n`);
  return Promise.all(Array.from({ length: count }, async (_, i) => {
    const name = `${prefix}-${i}`;
    const key = keyFile ? ['-key', keyFile] : ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`];
    await pki.openssl('req', '-config', config, '-x509', ...key, '-subj', LOOK_ALIKE_SUBJECT, '-set_serial', String(1000 + i), '-days', '30', '-extensions', 'ext', '-out', `${name}.pem`);
    const pem = await pki.openssl('x509', '-in', `${name}.pem`);
    return {
      name, subject: LOOK_ALIKE_SUBJECT, certFile: join(pki.dir, `${name}.pem`), keyFile: join(pki.dir, keyFile ?? `${name}.key`),
      pem, der: Buffer.from(new X509Certificate(pem).raw), key: '', serial: '',
    } satisfies Issued;
  }));
}

async function makeLookAlikes(): Promise<LookAlikePki> {
  const pki = await Pki.create();
  const root = await pki.root('root', '/DC=org/DC=fedgate-test/CN=Bounded Root CA');
  await pki.openssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-out', 'look-alike.key');
  const lookAlikes = await selfSigned(pki, 'look-alike', LOOK_ALIKES, 'look-alike.key');
  const victim = await pki.issue(await pki.asCa(lookAlikes[0]!), 'victim', '/DC=org/DC=fedgate-test/CN=Victim');
  const alice = await pki.issue(root, 'alice', '/DC=org/DC=fedgate-test/CN=Alice');
  const anchors = join(pki.dir, 'anchors');
  await mkdir(anchors);
  await writeFile(join(anchors, `${await pki.hash(root)}.0`), root.pem);
  return { pki, anchors, root, lookAlikes, victim, alice };
}

describe('path building is bounded', () => {
  let t: LookAlikePki;
  let store: TrustStore;

  before(async () => {
    t = await makeLookAlikes();
    store = await TrustStore.open({ dir: t.anchors, logger: createLogger('silent'), reloadSeconds: 0 });
  });
  after(async () => {
    store.close();
    await t.pki.cleanup();
  });

  it(`decides a chain of ${LOOK_ALIKES} look-alike CAs (one subject, one key) with one signature check per certificate and issuer key`, () => {
    const chain = [t.victim, ...t.lookAlikes].map((c) => c.der);
    assert.equal(chain.length, MAX_CHAIN_LENGTH, 'the longest chain a client may send');
    const { result, checks } = countingSignatureChecks(() => verifyChain(chain, store.snapshot, OPTIONS));
    assert.equal(result.ok ? 'ok' : result.reason, 'untrusted');
    // The victim against the look-alikes' one key: one check, whichever look-alike it is tried with; look-alikes never stack.
    assert.equal(checks, 1);
    assert.equal(result.work?.signatureChecks, checks, 'the reported count is the real one');
    assert.ok(result.work!.pathSteps <= LOOK_ALIKES + 1, `path steps: ${result.work!.pathSteps}`);
  });

  it('still finds the real path when look-alikes are sent along, checking each signature once', () => {
    const { result, checks } = countingSignatureChecks(() => verifyChain([t.alice, ...t.lookAlikes].map((c) => c.der), store.snapshot, OPTIONS));
    assert.ok(result.ok, result.ok ? '' : result.message);
    assert.equal(result.path.map((c) => c.subjectDn).join(), '/DC=org/DC=fedgate-test/CN=Bounded Root CA');
    // Alice by the root's key, the root by itself.
    assert.equal(checks, 2);
    assert.equal(result.work.signatureChecks, 2);
  });

  it(`stops at ${VERIFY_LIMITS.signatureChecks} signature checks whatever the chain`, async () => {
    // Re-keyed CAs with one name and no key identifiers, each signed by the next one's key: every one may have signed
    // every other, and each step down the path opens the next. The search would need over a hundred checks.
    const keys = await selfSigned(t.pki, 'rekeyed-key', LOOK_ALIKES + 1, undefined, false);
    const rekeyed = await Promise.all(keys.slice(0, -1).map(async (own, i) => {
      const out = `rekeyed-${i}.pem`;
      await t.pki.openssl('x509', '-in', own.certFile, '-CA', keys[i + 1]!.certFile, '-CAkey', keys[i + 1]!.keyFile, '-set_serial', String(2000 + i), '-out', out);
      return Buffer.from(new X509Certificate(await t.pki.openssl('x509', '-in', out)).raw);
    }));
    const leafConfig = join(t.pki.dir, 'rekeyed-leaf.cnf');
    await writeFile(leafConfig, '[ext]\nbasicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature\n');
    await t.pki.openssl('req', '-config', join(t.pki.dir, 'req.cnf'), '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', 'rekeyed-leaf.key', '-subj', '/DC=org/DC=fedgate-test/CN=Leaf', '-out', 'rekeyed-leaf.csr');
    await t.pki.openssl('x509', '-req', '-in', 'rekeyed-leaf.csr', '-CA', keys[0]!.certFile, '-CAkey', keys[0]!.keyFile, '-set_serial', '3000',
      '-days', '30', '-extfile', leafConfig, '-extensions', 'ext', '-out', 'rekeyed-leaf.pem');
    const leaf = Buffer.from(new X509Certificate(await t.pki.openssl('x509', '-in', 'rekeyed-leaf.pem')).raw);
    const { result, checks } = countingSignatureChecks(() => verifyChain([leaf, ...rekeyed], store.snapshot, OPTIONS));
    assert.equal(result.ok ? 'ok' : result.reason, 'untrusted');
    assert.equal(checks, VERIFY_LIMITS.signatureChecks, 'the search went as far as the limit allows, and no further');
    assert.equal(result.work?.signatureChecks, checks);
    assert.match(result.ok ? '' : result.message, /more than 48 signature checks/);
  });
});

/**
 * The attacking clients run in a worker thread, so that their own TLS and
 * HTTP work does not count against the server's event loop: it sends
 * `rounds` pairs of requests (header route, mTLS listener) and posts the
 * statuses back.
 */
const ATTACKER = `
const { workerData, parentPort } = require('node:worker_threads');
const http = require('node:http');
const https = require('node:https');
const { origin, mtlsPort, headers, cert, key, rounds } = workerData;
const get = (mod, options) => new Promise((resolve, reject) => {
  const req = mod.request({ ...options, agent: false }, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode)); });
  req.on('error', reject);
  req.end();
});
const url = new URL(origin);
const path = '/x509/login?interaction=attack';
parentPort.postMessage('ready');
parentPort.once('message', () => Promise.all(Array.from({ length: rounds }, () => [
  get(http, { host: url.hostname, port: url.port, path, headers }),
  get(https, { host: '127.0.0.1', port: mtlsPort, path, cert, key, rejectUnauthorized: false, headers: { accept: 'application/json' } }),
]).flat()).then((statuses) => parentPort.postMessage(statuses), (err) => parentPort.postMessage(String(err))));
`;

interface AttackData { origin: string; mtlsPort: number; headers: Record<string, string>; cert: string; key: string; rounds: number }

/** Starts an attacker; resolves, once it is ready, to the function that launches the attack and resolves to the statuses. */
function attacker(data: AttackData): Promise<() => Promise<number[]>> {
  return new Promise((ready, reject) => {
    const worker = new Worker(ATTACKER, { eval: true, workerData: data });
    worker.once('error', reject);
    worker.once('message', () => ready(() => new Promise((resolve, fail) => {
      worker.once('message', (statuses: number[] | string) => (typeof statuses === 'string' ? fail(new Error(statuses)) : resolve(statuses)));
      worker.postMessage('go');
    })));
  });
}

describe('adversarial certificate chains do not hold the event loop', () => {
  let t: LookAlikePki;
  let server: TestServer;

  before(async () => {
    t = await makeLookAlikes();
    server = await startServer({
      configure(config) {
        config.trustedProxies = ['127.0.0.1'];
        config.x509 = { ...config.x509, enabled: true, trustAnchorsDir: t.anchors, reloadSeconds: 0, mtlsPort: 0 };
      },
    });
  });
  after(async () => {
    await server.cleanup();
    await t.pki.cleanup();
  });

  it('answers a concurrent request within 100 ms while look-alike chains arrive by header and by TLS', async (context) => {
    const chain = [t.victim, ...t.lookAlikes];
    // RFC 9440 headers: the largest chain the limits allow, just under the listener's 16 KiB of headers.
    const headers = {
      'client-cert': `:${t.victim.der.toString('base64')}:`,
      'client-cert-chain': t.lookAlikes.map((c) => `:${c.der.toString('base64')}:`).join(', '),
      accept: 'application/json',
    };
    assert.ok(JSON.stringify(headers).length > 10_000, 'a large header');
    const mtlsPort = (server.fedgate.mtlsServer()!.address() as AddressInfo).port;

    const data = { origin: server.issuer, mtlsPort, headers, cert: chain.map((c) => c.pem).join(''), key: t.victim.key };
    // Warm up (first-use compilation and caches are not what is measured).
    await Promise.all([(await attacker({ ...data, rounds: 1 }))(), rawRequest(server.issuer, '/.well-known/openid-configuration')]);

    /** One measured round: the attacks, and a simple request sent while they are in flight. */
    const round = async () => {
      const launch = await attacker({ ...data, rounds: 4 });
      const attacks = launch().then((statuses) => ({ statuses, at: performance.now() }));
      await sleep(20); // the attacks are on their way
      // The event loop is watched for the life of the simple request, sent while the attacks are being handled.
      const delay = monitorEventLoopDelay({ resolution: 1 });
      delay.enable();
      const sent = performance.now();
      const answer = await rawRequest(server.issuer, '/.well-known/openid-configuration').then((res) => ({ status: res.status, ms: performance.now() - sent }));
      delay.disable();
      const answeredAt = performance.now();
      const { statuses, at } = await attacks;
      assert.ok(at > answeredAt, 'the attacks were still being handled when the simple request was answered');
      return { statuses, answer, maxDelayMs: delay.max / 1e6, samples: delay.count };
    };
    // This machine is shared (two cores, many test processes): the scheduler alone stalls a busy process for 100 ms and more
    // now and then. So up to five rounds are measured, and one must meet the bound; a request that really holds the loop
    // (every look-alike chain is in every round) fails them all.
    const rounds: Array<Awaited<ReturnType<typeof round>>> = [];
    for (let i = 0; i < 5 && !rounds.some((r) => r.answer.ms < 100 && r.maxDelayMs < 100); i += 1) {
      const r = await round();
      context.diagnostic(`round ${i + 1}: concurrent request ${r.answer.ms.toFixed(1)} ms, event loop delay max ${r.maxDelayMs.toFixed(1)} ms over ${r.samples} samples`);
      assert.deepEqual([...new Set(r.statuses)], [403], 'every look-alike chain is refused');
      assert.equal(r.answer.status, 200);
      rounds.push(r);
    }
    const best = rounds.at(-1)!;
    assert.ok(best.answer.ms < 100, `the concurrent request took ${best.answer.ms.toFixed(1)} ms`);
    assert.ok(best.maxDelayMs < 100, `the event loop was held ${best.maxDelayMs.toFixed(1)} ms`);
  });
});
