import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { createFedgate, type Fedgate } from '../../src/app.ts';
import { demoRealm } from '../../src/config/demo-realm.ts';
import { loadConfig } from '../../src/config/index.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { freePort, LogCapture, rawRequest } from '../support/harness.ts';
import { within } from '../support/poll.ts';

const NODE = process.execPath;

/** Runs the command line with the deployment's environment; never rejects. */
function cli(env: Record<string, string>, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(NODE, ['src/cli/main.ts', ...args], { env: { PATH: process.env.PATH!, ...env }, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}


/**
 * `npm run fedgate -- datasource add|list|remove` against a running
 * deployment: its own Redis (a redis-server of this test, the CLI's default
 * key prefix), a configuration file and keys directory shared by the running
 * fedgate and the command line, as on an operator's host.
 */
describe('command line: datasource add, list, remove against a running deployment', () => {
  let redis: ChildProcess;
  let dir: string;
  let env: Record<string, string>;
  let fedgate: Fedgate;
  let issuer: string;

  before(async () => {
    const redisPort = await freePort();
    redis = spawn('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
    for (let i = 0; i < 50; i += 1) {
      const up = await fetch(`http://127.0.0.1:${redisPort}`).catch((err: Error & { cause?: { code?: string } }) => err.cause?.code);
      if (up !== 'ECONNREFUSED') break;
      await new Promise((r) => setTimeout(r, 100));
    }
    dir = await mkdtemp(join(tmpdir(), 'fedgate-cli-'));
    const { users: _users, ...realm } = demoRealm();
    const configFile = join(dir, 'fedgate.yaml');
    await writeFile(configFile, stringify({ ...realm, keysDir: join(dir, 'keys'), logLevel: 'warn', users: [] }));
    const port = await freePort();
    issuer = `http://127.0.0.1:${port}`;
    env = { FEDGATE_CONFIG: configFile, REDIS_URL: `redis://127.0.0.1:${redisPort}`, ISSUER: issuer, PORT: String(port) };
    const config = await loadConfig(env);
    fedgate = await createFedgate(config, { logger: createLogger('warn', new LogCapture()), watchKeys: false });
    await fedgate.listen(port, '127.0.0.1');
  });
  after(async () => {
    await fedgate?.close();
    redis?.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  });

  const clientToken = (resource: string, scope: string) => fetch(`${issuer}/token`, {
    method: 'POST',
    headers: { authorization: `Basic ${Buffer.from('demo-service:demo-service-secret').toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'client_credentials', resource, scope }),
  });

  it('adds a data source that the running fedgate serves at once, and prints the onboarding bundle', async () => {
    const added = await cli(env, [
      'datasource', 'add', '--name', 'tape', '--audience', 'https://tape.partner.test', '--kind', 'storage', '--base-path', '/tape',
      '--display-name', 'Partner tape archive', '--policy', '/cms:/tape/cms/**:read:storage.read', '--grant', '/cms:storage.read:/tape/cms',
      '--host', 'tape.partner.test', '--introspection', '--format', 'jwt',
    ]);
    assert.equal(added.code, 0, added.stderr);
    const bundle = JSON.parse(added.stdout) as Record<string, any>;
    assert.equal(bundle.name, 'tape');
    assert.equal(bundle.issuer, issuer);
    assert.equal(bundle.audience, 'https://tape.partner.test');
    assert.deepEqual(bundle.scopes, ['storage.read:/tape', 'storage.create:/tape', 'storage.modify:/tape', 'storage.stage:/tape', 'storage.poll:/tape']);
    assert.ok(bundle.introspection.client_id && bundle.introspection.client_secret, 'the secret, once');
    assert.match(bundle.snippets.nginx, /authz\?service=tape/);
    assert.deepEqual(bundle.policy_rules.filter((r: { type: string }) => r.type === 'p').map((r: { subject: string; domain: string; object: string; scope: string }) => [r.subject, r.domain, r.object, r.scope]), [
      ['/cms', 'tape', '/tape/cms/**', 'storage.read'],
      ['/cms', 'scopes', 'https://tape.partner.test', ''],
    ]);
    assert.match(added.stderr, /shown this once/);

    // The running deployment picked it up: tokens for the audience, /authz for the service.
    await within(1000, async () => (await clientToken('https://tape.partner.test', 'storage.read:/tape/x')).status === 200);
    const authz = await rawRequest(issuer, '/authz', { headers: { host: 'tape.partner.test', 'x-original-method': 'GET', 'x-original-uri': '/tape/cms/f' } });
    assert.equal(authz.status, 401, 'found by its host; a token is needed');
    const introspection = await fetch(`${issuer}/token/introspection`, {
      method: 'POST',
      headers: { authorization: `Basic ${Buffer.from(`${bundle.introspection.client_id}:${bundle.introspection.client_secret}`).toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' },
      body: 'token=unknown-token-0123456789abcdef',
    });
    assert.equal(introspection.status, 200);
    const events = await fedgate.audit.recent(50);
    assert.ok(events.some((e) => e.type === 'admin.change' && e.actor === 'cli' && e.target === 'resource-server:tape' && (e.detail as { action?: string }).action === 'create'));
  });

  it('lists configured and stored data sources, and shows one', async () => {
    const listed = await cli(env, ['datasource', 'list']);
    assert.equal(listed.code, 0, listed.stderr);
    const lines = listed.stdout.trim().split('\n').map((l) => l.split('\t'));
    assert.deepEqual(lines.map((l) => l[0]), ['orchestrator', 'data', 'ml', 'sync', 'tape']);
    assert.equal(lines.at(-1)![4], 'store (cli)');
    assert.equal(lines[1]![4], 'config (read-only)');
    const json = JSON.parse((await cli(env, ['datasource', 'list', '--json'])).stdout) as Array<{ name: string; readOnly: boolean }>;
    assert.equal(json.find((d) => d.name === 'tape')?.readOnly, false);
    const shown = JSON.parse((await cli(env, ['datasource', 'show', 'tape'])).stdout) as { onboarding: { introspection: { client_secret?: string } } };
    assert.equal(shown.onboarding.introspection.client_secret, undefined);
  });

  it('refuses bad input with the field and reason (exit 2), and a missing data source (exit 1)', async () => {
    const bad = await cli(env, ['datasource', 'add', '--name', 'x', '--audience', 'not a uri', '--kind', 'storage', '--base-path', 'relative', '--upstream', 'ftp://x']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /audience: must be an absolute URI/);
    assert.match(bad.stderr, /storage\.basePath: must be an absolute path/);
    assert.match(bad.stderr, /upstream: must be an http/);
    const duplicate = await cli(env, ['datasource', 'add', '--name', 'tape2', '--audience', 'https://tape.partner.test']);
    assert.equal(duplicate.code, 2);
    assert.match(duplicate.stderr, /audience: .* already the audience/);
    assert.equal((await cli(env, ['datasource', 'add', '--policy', 'nonsense'])).code, 2);
    assert.equal((await cli(env, ['datasource', 'remove', 'nope'])).code, 1);
    assert.equal((await cli(env, ['datasource', 'remove', 'data'])).code, 1, 'configured: read-only');
  });

  it('removes it: the running fedgate stops issuing tokens and deciding for it', async () => {
    const removed = await cli(env, ['datasource', 'remove', 'tape']);
    assert.equal(removed.code, 0, removed.stderr);
    await within(1000, async () => {
      const token = await clientToken('https://tape.partner.test', 'storage.read:/tape/x');
      return token.status === 400 && (await token.json() as { error: string }).error === 'invalid_target';
    });
    const authz = await rawRequest(issuer, '/authz?service=tape', { headers: { 'x-original-method': 'GET', 'x-original-uri': '/tape/cms/f' } });
    assert.equal(authz.status, 404);
    assert.deepEqual((await fedgate.policy.list({ domain: 'tape' })), []);
    const listed = await cli(env, ['datasource', 'list']);
    assert.ok(!listed.stdout.includes('tape'));
  });
});
