import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { demoRealm } from '../../src/config/demo-realm.ts';
import { freePort } from '../support/harness.ts';
import { KeepAliveConnection, type WireOutcome } from '../support/keep-alive-client.ts';
import { PrivateRedis } from '../support/private-redis.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const SERVICE_AUTH = `Basic ${Buffer.from('demo-service:demo-service-secret').toString('base64')}`;

interface Replica {
  port: number;
  child: ChildProcess;
  output: string[];
  exited: Promise<{ code: number | null; at: number }>;
}

/**
 * A rolling restart of real fedgate processes (`node src/main.ts`, Redis
 * backed) under keep-alive load: each of two replicas in turn gets SIGTERM,
 * drains and is started again while clients keep sending. A client moves to
 * the other replica only where that is safe (connection refused, or a
 * connection the server closed before the request went out, after a
 * `Connection: close` answer); a reset after the request was written, or any
 * 5xx, is a lost request, and there must be none.
 */
describe('rolling restart under keep-alive load', () => {
  let redis: PrivateRedis;
  let dir: string;
  let configFile: string;
  const replicas = new Map<number, Replica>();
  let issuer: string;

  async function startReplica(port: number): Promise<Replica> {
    const child = spawn(process.execPath, ['src/main.ts'], {
      cwd: ROOT,
      env: { PATH: process.env.PATH, FEDGATE_CONFIG: configFile, PORT: String(port), ISSUER: issuer, REDIS_URL: redis.url, HOST: '127.0.0.1', LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const output: string[] = [];
    child.stdout!.on('data', (c: Buffer) => output.push(c.toString()));
    child.stderr!.on('data', (c: Buffer) => output.push(c.toString()));
    const exited = new Promise<{ code: number | null; at: number }>((r) => child.once('exit', (code) => r({ code, at: performance.now() })));
    const replica = { port, child, output, exited };
    replicas.set(port, replica);
    const probe = new KeepAliveConnection(port);
    const until = Date.now() + 60_000;
    for (;;) {
      const outcome = await probe.request('GET', '/readyz');
      if (outcome.kind === 'response' && outcome.response.status === 200) break;
      assert.ok(Date.now() < until, `replica on ${port} did not become ready: ${output.join('')}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    probe.close();
    return replica;
  }

  before(async () => {
    redis = await PrivateRedis.start();
    dir = await mkdtemp(join(tmpdir(), 'fedgate-rolling-'));
    const { users: _users, ...realm } = demoRealm();
    configFile = join(dir, 'fedgate.yaml');
    await writeFile(configFile, stringify({
      ...realm,
      keysDir: join(dir, 'keys'),
      policies: { ...realm.policies, dir: join(ROOT, 'policies') },
      // Room for the test to use a connection it opened before SIGTERM on a busy machine.
      shutdown: { ...realm.shutdown, idleCloseMs: 1000 },
    }));
  });
  after(async () => {
    for (const replica of replicas.values()) replica.child.kill('SIGKILL');
    await redis.kill();
    await rm(dir, { recursive: true, force: true });
  });

  it('loses no request while each of two replicas is restarted in turn', async () => {
    const ports = [await freePort(), await freePort()] as const;
    issuer = `http://127.0.0.1:${ports[0]}`;
    await startReplica(ports[0]);
    await startReplica(ports[1]);

    const tally = { ok: 0, lost: [] as string[], movedOnRefusal: 0, movedOnClose: 0, closeHeaders: new Map<number, number>() };
    let running = true;
    const other = (port: number) => (port === ports[0] ? ports[1] : ports[0]);
    const worker = async (start: number, n: number) => {
      let connection = new KeepAliveConnection(start);
      for (let i = 0; running; i += 1) {
        const outcome: WireOutcome = i % 2 === 0
          ? await connection.request('GET', '/.well-known/openid-configuration')
          : await connection.request('POST', '/token', { authorization: SERVICE_AUTH, 'content-type': 'application/x-www-form-urlencoded' }, 'grant_type=client_credentials');
        if (outcome.kind === 'refused' || outcome.kind === 'closed-before-send') {
          if (outcome.kind === 'refused') tally.movedOnRefusal += 1;
          else tally.movedOnClose += 1;
          connection = new KeepAliveConnection(other(connection.port));
          continue;
        }
        if (outcome.kind === 'reset') {
          tally.lost.push(`worker ${n} on ${connection.port}: ${outcome.error}`);
          connection = new KeepAliveConnection(connection.port);
          continue;
        }
        const { status, headers } = outcome.response;
        if (status >= 500) tally.lost.push(`worker ${n} on ${connection.port}: ${status}`);
        else tally.ok += 1;
        if (/close/i.test(headers.connection ?? '')) {
          tally.closeHeaders.set(connection.port, (tally.closeHeaders.get(connection.port) ?? 0) + 1);
          // The next request opens a new connection: on this replica unless it refuses.
          connection = new KeepAliveConnection(connection.port);
        }
      }
      connection.close();
    };
    const workers = Array.from({ length: 6 }, (_, n) => worker(ports[n % 2]!, n));
    const settle = () => new Promise((r) => setTimeout(r, 1500));

    const results: Array<{ port: number; readyz503Ms: number; idleClosedMs: number; exitMs: number; code: number | null }> = [];
    try {
      await settle();
      for (const port of ports) {
        const replica = replicas.get(port)!;
        // An idle keep-alive connection, and one that asks /readyz.
        const idle = new KeepAliveConnection(port);
        assert.equal((await idle.request('GET', '/healthz')).kind, 'response');
        const readiness = new KeepAliveConnection(port);
        assert.equal((await readiness.request('GET', '/readyz')).kind, 'response');

        const signalled = performance.now();
        replica.child.kill('SIGTERM');
        // Once the replica says it drains, a request on an open connection is told: not ready, and close.
        while (!replica.output.join('').includes('draining:')) {
          assert.ok(performance.now() - signalled < 5000, 'the replica starts draining on SIGTERM');
          await new Promise((r) => setTimeout(r, 5));
        }
        const outcome = await readiness.request('GET', '/readyz');
        assert.equal(outcome.kind, 'response', 'a request on an open connection is still answered while draining');
        const { response } = outcome as { response: { status: number; headers: Record<string, string> } };
        assert.equal(response.status, 503);
        assert.match(response.headers.connection ?? '', /close/i);
        const readyz503Ms = performance.now() - signalled;
        const { code, at } = await replica.exited;
        assert.ok(idle.closedAt !== undefined, 'the idle connection was closed by the server');
        results.push({ port, readyz503Ms: Math.round(readyz503Ms), idleClosedMs: Math.round(idle.closedAt - signalled), exitMs: Math.round(at - signalled), code });
        idle.close();
        readiness.close();
        await startReplica(port);
        await settle();
      }
    } finally {
      running = false;
      await Promise.all(workers);
    }

    const summary = { ok: tally.ok, lost: tally.lost.length, movedOnRefusal: tally.movedOnRefusal, movedOnClose: tally.movedOnClose, closeHeaders: Object.fromEntries(tally.closeHeaders), results };
    console.log(`# rolling restart: ${JSON.stringify(summary)}`);
    assert.deepEqual(tally.lost, [], 'no request lost');
    assert.ok(tally.ok > 100, `load was served (${tally.ok})`);
    for (const result of results) {
      assert.equal(result.code, 0, 'a clean exit');
      // Busy keep-alive connections used to be served for the whole 10 s deadline.
      assert.ok(result.exitMs < 5000, `exits as soon as in-flight work is done (${result.exitMs} ms)`);
      assert.ok(result.idleClosedMs < result.exitMs + 50);
      assert.ok((tally.closeHeaders.get(result.port) ?? 0) > 0, 'busy connections were told Connection: close');
    }
    for (const replica of replicas.values()) assert.doesNotMatch(replica.output.join(''), /connections cut/);
  });
});
