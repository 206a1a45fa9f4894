import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/config/index.ts';
import { freePort, REDIS_URL } from '../support/harness.ts';

interface Run { code: number | null; stdout: string; stderr: string }

/** Runs a fedgate entry point with exactly this environment (plus PATH). */
function run(script: string, args: string[], env: Record<string, string>): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [script, ...args], { env: { PATH: process.env.PATH!, ...env }, timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout, stderr });
    });
  });
}

/** Resolves true when a TCP connection to host:port is accepted. */
function accepts(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    socket.once('connect', () => { socket.destroy(); resolve(true); });
    socket.once('error', () => resolve(false));
  });
}

/** Starts `node src/main.ts`, waits for it to listen, runs `check`, then stops it. */
async function whileRunning(env: Record<string, string>, check: () => Promise<void>): Promise<void> {
  const child = spawn(process.execPath, ['src/main.ts'], { env: { PATH: process.env.PATH!, LOG_LEVEL: 'info', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`fedgate did not start: ${output}`)), 30_000);
      const seen = (d: Buffer) => {
        output += d;
        if (/fedgate listening/.test(output)) { clearTimeout(timer); resolve(); }
      };
      child.stdout.on('data', seen);
      child.stderr.on('data', seen);
      child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`fedgate exited (${code}): ${output}`)); });
    });
    await check();
  } finally {
    child.removeAllListeners('exit');
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  }
}

describe('HOST: the listen address', () => {
  it('is loopback for the demo realm, every interface with a configuration file, and HOST overrides both', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fedgate-host-'));
    const file = join(dir, 'fedgate.yaml');
    await writeFile(file, 'issuer: https://aai.example.org\n');
    assert.equal((await loadConfig({})).host, '127.0.0.1');
    assert.equal((await loadConfig({ FEDGATE_CONFIG: file })).host, undefined);
    assert.equal((await loadConfig({ HOST: '0.0.0.0' })).host, '0.0.0.0');
    await writeFile(file, 'host: 127.0.0.3\n');
    assert.equal((await loadConfig({ FEDGATE_CONFIG: file })).host, '127.0.0.3');
    assert.equal((await loadConfig({ FEDGATE_CONFIG: file, HOST: '::1' })).host, '::1');
  });

  it('the demo realm answers on 127.0.0.1 only; HOST=0.0.0.0 opens it to other addresses', async () => {
    // 127.0.0.2 is another local address (all of 127/8 is loopback on Linux): bound to
    // 127.0.0.1 the listener must refuse it, bound to every interface accept it.
    const port = await freePort();
    await whileRunning({ PORT: String(port) }, async () => {
      assert.equal(await accepts('127.0.0.1', port), true);
      assert.equal(await accepts('127.0.0.2', port), false, 'the demo realm must not listen beyond loopback');
    });
    const open = await freePort();
    await whileRunning({ PORT: String(open), HOST: '0.0.0.0' }, async () => {
      assert.equal(await accepts('127.0.0.2', open), true);
    });
  });
});

describe('REDIS_URL at start-up', () => {
  it('refuses a database index the server does not have (configuration error, exit 2)', async () => {
    const { code, stderr } = await run('src/main.ts', [], { PORT: '0', REDIS_URL: `${REDIS_URL.replace(/\/\d*$/, '')}/999` });
    assert.equal(code, 2);
    assert.match(stderr, /database 999 does not exist/);
    assert.doesNotMatch(stderr, /at \w+ \(|node_modules|ReplyError/, 'no stack trace, no ioredis jargon');
  });

  it('refuses a path that is no database index', async () => {
    const { code, stderr } = await run('src/main.ts', [], { PORT: '0', REDIS_URL: 'redis://127.0.0.1:6379/fedgate' });
    assert.equal(code, 2);
    assert.match(stderr, /REDIS_URL: the path must be a database index/);
  });

  it('names the URL it could not reach, without its password', async () => {
    const port = await freePort();
    const { code, stderr } = await run('src/main.ts', [], { PORT: '0', REDIS_URL: `redis://fedgate:s3cret-pass@127.0.0.1:${port}` });
    assert.equal(code, 1);
    assert.match(stderr, new RegExp(`cannot reach Redis at redis://\\*\\*\\*@127\\.0\\.0\\.1:${port}: connection refused`));
    assert.doesNotMatch(stderr, /s3cret-pass/);
    assert.doesNotMatch(stderr, /at \w+ \(|node_modules|MaxRetriesPerRequest/);
  });
});

describe('CLI commands that act on the deployment store', () => {
  for (const args of [['initial-access-token', 'create'], ['accounts', 'disable', 'bob'], ['datasource', 'list']]) {
    it(`${args.join(' ')} without REDIS_URL says no store is configured and fails`, async () => {
      const { code, stdout, stderr } = await run('src/cli/main.ts', args, {});
      assert.equal(code, 2);
      assert.equal(stdout, '');
      assert.match(stderr, /no store is configured/);
      assert.match(stderr, /REDIS_URL/);
    });
  }

  it('an unreachable REDIS_URL is named, exit 1', async () => {
    const port = await freePort();
    const { code, stderr } = await run('src/cli/main.ts', ['accounts', 'disable', 'bob'], { REDIS_URL: `redis://127.0.0.1:${port}` });
    assert.equal(code, 1);
    assert.match(stderr, /cannot reach Redis at redis:\/\/127\.0\.0\.1:\d+/);
  });
});
