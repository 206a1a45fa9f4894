import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig } from '../../src/config/index.ts';

describe('loadConfig', () => {
  it('defaults to the demo realm on port 8080 outside production', async () => {
    const config = await loadConfig({});
    assert.equal(config.demo, true);
    assert.equal(config.port, 8080);
    assert.equal(config.issuer, 'http://localhost:8080');
    assert.equal(config.redisUrl, undefined);
    assert.deepEqual(config.clients.map((c) => c.clientId), ['demo-cli', 'demo-portal', 'demo-service', 'demo-orchestrator']);
    assert.deepEqual(config.lifetimes.accessToken, 3600);
    assert.deepEqual(config.lifetimes.refreshToken, 30 * 24 * 3600);
  });

  it('takes PORT, ISSUER and REDIS_URL from the environment', async () => {
    const config = await loadConfig({ PORT: '9090', ISSUER: 'https://id.example.org/', REDIS_URL: 'redis://cache:6379' });
    assert.equal(config.port, 9090);
    assert.equal(config.issuer, 'https://id.example.org');
    assert.equal(config.redisUrl, 'redis://cache:6379');
  });

  it('rejects bad environment values with a clear problem', async () => {
    await assert.rejects(loadConfig({ PORT: 'eighty' }), (err: ConfigError) => err.problems[0]!.startsWith('PORT: '));
    await assert.rejects(loadConfig({ ISSUER: 'ftp://x' }), (err: ConfigError) => err.problems[0]!.startsWith('ISSUER: '));
    await assert.rejects(loadConfig({ LOG_LEVEL: 'loud' }), (err: ConfigError) => err.problems[0]!.startsWith('LOG_LEVEL: '));
  });

  it('keeps the admin API\'s audience and scope to the built-in resource server', async () => {
    const file = join(await mkdtemp(join(tmpdir(), 'fedgate-admin-rs-')), 'fedgate.yaml');
    await writeFile(file, [
      'issuer: https://id.example.org',
      'resourceServers:',
      '  - { audience: "https://notes.example", scopes: [notes.read, fedgate.admin] }',
    ].join('\n'));
    await assert.rejects(loadConfig({ FEDGATE_CONFIG: file }), (err: ConfigError) =>
      err.problems.some((p) => p === 'resourceServers.0.scopes.1: fedgate.admin is the scope of the built-in admin API resource server only'));
    await writeFile(file, [
      'issuer: https://id.example.org',
      'resourceServers:',
      '  - { audience: "https://id.example.org/admin/api", scopes: [notes.read] }',
    ].join('\n'));
    await assert.rejects(loadConfig({ FEDGATE_CONFIG: file }), (err: ConfigError) =>
      err.problems.some((p) => p === 'resourceServers.0.audience: https://id.example.org/admin/api is the built-in admin API resource server'));
  });
});
