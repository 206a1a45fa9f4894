import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { type ConfigError, loadConfig } from '../../src/config/index.ts';

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

  it('defaults key rollover to the WLCG profile: keys published 2 days before they sign, rotated about every 6 months, JWKS cached 6 hours', async () => {
    const { keys } = await loadConfig({});
    assert.equal(keys.prepublishSeconds, 2 * 24 * 3600, 'at least the default JWKS cache expiration (WLCG profile 1.1: 2 days)');
    assert.equal(keys.rotationIntervalSeconds, 182 * 24 * 3600);
    assert.equal(keys.jwksMaxAgeSeconds, 6 * 3600, 'WLCG §4.3.1 public key cache refresh');
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
    const dir = await mkdtemp(join(tmpdir(), 'fedgate-admin-rs-'));
    const file = join(dir, 'fedgate.yaml');
    for (const [server, problem] of [
      ['{ audience: "https://notes.example", scopes: [notes.read, fedgate.admin] }', 'resourceServers.0.scopes.1: fedgate.admin is the scope of the built-in admin API resource server only'],
      ['{ audience: "https://id.example.org/admin/api", scopes: [notes.read] }', 'resourceServers.0.audience: https://id.example.org/admin/api is the built-in admin API resource server'],
    ]) {
      await writeFile(file, `issuer: https://id.example.org\nresourceServers:\n  - ${server}\n`);
      await assert.rejects(loadConfig({ FEDGATE_CONFIG: file }), (err: ConfigError) => err.problems.includes(problem!));
    }
    await rm(dir, { recursive: true, force: true });
  });
});
