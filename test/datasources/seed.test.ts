import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { dataSourceSchema } from '../../src/config/datasource-schema.ts';
import { ConfigError, type Config } from '../../src/config/index.ts';
import { deleteRedisPrefix, startServer, type TestServer } from '../support/harness.ts';

const SEED = {
  name: 'seeded-store',
  audience: 'https://seeded.partner.test',
  displayName: 'Seeded storage',
  kind: 'storage' as const,
  storage: { basePath: '/seed' },
  defaultPolicies: [{ group: '/cms', path: '/seed/cms/**', action: 'read' }],
};

/**
 * The configuration's `dataSources` are seeds: written to the store once
 * each (the first replica to start writes, the others find them), after which
 * the store holds the truth — a seed removed through the API stays removed.
 */
describe('dataSources in the configuration file: seeds', () => {
  const prefix = `fedgate-test-${randomBytes(6).toString('hex')}:`;
  const servers: TestServer[] = [];
  let keysDir: string;
  after(async () => {
    for (const s of servers) await s.stop().catch(() => {});
    await deleteRedisPrefix(prefix);
    if (keysDir) await rm(keysDir, { recursive: true, force: true });
  });

  const start = async (configure: (config: Config) => void = () => {}) => {
    keysDir ??= await mkdtemp(join(tmpdir(), 'fedgate-keys-'));
    const server = await startServer({ redis: true, redisPrefix: prefix, keysDir, configure: (config) => { config.dataSources = [dataSourceSchema.parse(structuredClone(SEED))]; configure(config); } });
    servers.push(server);
    return server;
  };
  const token = (server: TestServer) => fetch(`${server.issuer}/token`, {
    method: 'POST',
    headers: { authorization: `Basic ${Buffer.from('demo-service:demo-service-secret').toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'client_credentials', resource: SEED.audience, scope: 'storage.read:/seed/x' }),
  });

  it('seeds a data source at the first start, with its policies, and not again on the next replica', async () => {
    const a = await start();
    const view = a.fedgate.dataSources.get('seeded-store');
    assert.ok(view);
    assert.equal(view.source, 'store');
    assert.equal(view.createdVia, 'config');
    assert.equal((await token(a)).status, 200);
    assert.ok((await a.fedgate.policy.list({ domain: 'seeded-store' })).some((l) => l.values[2] === '/seed/cms/**'));
    const b = await start();
    assert.equal(b.fedgate.dataSources.list().filter((d) => d.spec.name === 'seeded-store').length, 1);
    assert.equal((await b.store.setMembers('datasource:ids')).length, 1, 'one record, not two');
    assert.ok(b.logs.lines.every((l) => !l.includes('data source seeded from configuration')), 'the second replica found it');
  });

  it('keeps a seed removed through the store removed at the next start (the store holds the truth)', async () => {
    const [a] = servers;
    await a!.fedgate.dataSources.remove('seeded-store', { actor: 'test', via: 'api' });
    await Promise.all(servers.splice(0).map((s) => s.stop()));
    const c = await start();
    assert.equal(c.fedgate.dataSources.get('seeded-store'), undefined);
    assert.equal((await token(c)).status, 400);
  });

  it('refuses a seed that conflicts with a configured resource server, at start', async () => {
    await assert.rejects(start((config) => { config.dataSources[0]!.audience = 'https://storage.demo'; }), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.match(err.problems.join('\n'), /dataSources\.0\.audience: https:\/\/storage\.demo is already a configured resource server/);
      return true;
    });
    await assert.rejects(start((config) => { config.dataSources[0]!.name = 'data'; config.dataSources[0]!.audience = 'https://fresh.partner.test'; }), /dataSources\.0\.name/);
  });
});
