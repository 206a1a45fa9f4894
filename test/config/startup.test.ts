import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { freePort } from '../support/harness.ts';

/** Runs `node src/main.ts` with an environment; resolves with its exit code and output. */
function runMain(env: Record<string, string>, untilStdout?: RegExp, onReady?: (child: ReturnType<typeof spawn>) => Promise<void>) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn(process.execPath, ['src/main.ts'], { env: { PATH: process.env.PATH!, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let readyCalled = false;
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`timeout; stdout: ${stdout}; stderr: ${stderr}`)); }, 30_000);
    child.stdout.on('data', (d: Buffer) => {
      stdout += d;
      if (untilStdout && onReady && !readyCalled && untilStdout.test(stdout)) {
        readyCalled = true;
        onReady(child).catch(reject);
      }
    });
    child.stderr.on('data', (d: Buffer) => { stderr += d; });
    child.on('exit', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }); });
  });
}

describe('starting fedgate', () => {
  it('stops with one clear line per problem for an invalid configuration file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fedgate-bad-config-'));
    const file = join(dir, 'fedgate.yaml');
    await writeFile(file, [
      'port: 99999',
      'clients:',
      '  - clientId: portal',
      '    grantTypes: [client_credentials, teleport]',
      'resourceServers:',
      '  - audience: not a uri',
      'users:',
      '  - username: eve',
      '    passwordHash: plaintext',
      'surprise: true',
    ].join('\n'));
    const { code, stderr, stdout } = await runMain({ FEDGATE_CONFIG: file });
    assert.equal(code, 2);
    assert.equal(stdout, '');
    const lines = stderr.trim().split('\n');
    assert.match(lines[0]!, /invalid configuration/);
    for (const expected of [/port: /, /clients\.0\.grantTypes\.1: /, /resourceServers\.0\.audience: must be an absolute URI/, /users\.0\.passwordHash: must be an argon2id hash/, /\(root\): .*surprise/]) {
      assert.ok(lines.some((l) => expected.test(l)), `expected a line matching ${expected} in:\n${stderr}`);
    }
    assert.doesNotMatch(stderr, /at \w+ \(|node_modules/, 'no stack trace');
  });

  it('reports cross-field problems: secrets needed, duplicates', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fedgate-bad-config-'));
    const file = join(dir, 'fedgate.yaml');
    await writeFile(file, [
      'clients:',
      '  - { clientId: svc, grantTypes: [client_credentials], scopes: ["storage.read:/a//b"] }',
      '  - { clientId: svc, clientSecret: aaaaaaaaaaaaaaaaaaaa, grantTypes: [authorization_code] }',
      'resourceServers:',
      '  - { audience: "https://s.example", scopes: ["storage.read:relative", "storage.read:/store/%2e%2e/x"] }',
      'groups: [{ path: /cms }]',
      'users:',
      '  - { username: carol, groups: [/cms, /lhcb] }',
    ].join('\n'));
    const { code, stderr } = await runMain({ FEDGATE_CONFIG: file });
    assert.equal(code, 2);
    assert.match(stderr, /clients\.0\.grantTypes: client_credentials needs a confidential client/);
    assert.match(stderr, /clients\.1\.clientId: duplicate client id svc/);
    assert.match(stderr, /clients\.1\.redirectUris: authorization_code needs at least one redirect URI/);
    assert.match(stderr, /resourceServers\.0\.scopes\.0: the storage path must be absolute and in normal form/);
    assert.match(stderr, /resourceServers\.0\.scopes\.1: the storage path must be absolute and in normal form .*percent-encoding/);
    assert.match(stderr, /clients\.0\.scopes\.0: the storage path must be absolute and in normal form .*empty segment/);
    assert.match(stderr, /users\.0\.groups\.1: group \/lhcb is not declared under groups/);
    assert.doesNotMatch(stderr, /users\.0\.groups\.0/);
  });

  it('refuses the demo realm in production and says why', async () => {
    const { code, stderr } = await runMain({ NODE_ENV: 'production' });
    assert.equal(code, 2);
    assert.match(stderr, /FEDGATE_CONFIG: not set, and NODE_ENV=production refuses to run the demo realm/);
  });

  it('refuses a YAML syntax error and an unreadable file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fedgate-bad-config-'));
    const file = join(dir, 'fedgate.yaml');
    await writeFile(file, 'clients: [\n  - oops: {');
    const syntax = await runMain({ FEDGATE_CONFIG: file });
    assert.equal(syntax.code, 2);
    assert.match(syntax.stderr, /line \d+: not valid YAML/);
    const missing = await runMain({ FEDGATE_CONFIG: join(dir, 'missing.yaml') });
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /cannot read .*missing\.yaml \(ENOENT\)/);
  });

  it('starts the demo realm, prints it, serves health checks and shuts down gracefully on SIGTERM', async () => {
    const port = await freePort();
    let health: unknown;
    let ready: unknown;
    const { code, stdout } = await runMain({ PORT: String(port), ISSUER: `http://127.0.0.1:${port}`, LOG_LEVEL: 'info' }, /fedgate listening/, async (child) => {
      health = await (await fetch(`http://127.0.0.1:${port}/healthz`)).json();
      ready = await (await fetch(`http://127.0.0.1:${port}/readyz`)).json();
      child.kill('SIGTERM');
    });
    assert.equal(code, 0, 'a clean exit after SIGTERM');
    assert.deepEqual(health, { status: 'ok' });
    assert.deepEqual(ready, { status: 'ready', store: 'memory' });
    for (const name of ['demo-cli', 'demo-portal', 'demo-portal-secret', 'demo-service', 'https://storage.demo', 'https://orchestrator.demo', 'https://ml.demo', 'https://sync.demo', 'alice', 'bob', 'admin-password']) {
      assert.ok(stdout.includes(name), `the banner names ${name}`);
    }
    assert.match(stdout, /EMBEDDED IN-MEMORY STORE/);
    assert.match(stdout, /shutting down/);
  });
});
