import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import * as oidc from 'openid-client';
import { stringify } from 'yaml';
import { type ConfigError, loadConfig } from '../../src/config/index.ts';
import { LIFETIME_MAXIMUMS } from '../../src/config/lifetimes.ts';
import type { DataSourceError } from '../../src/datasources/errors.ts';
import { decodeJwt, rp, startServer } from '../support/harness.ts';

const dirs: string[] = [];
after(async () => { await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true }))); });

async function load(config: object) {
  const dir = await mkdtemp(join(tmpdir(), 'fedgate-lifetimes-'));
  dirs.push(dir);
  const file = join(dir, 'fedgate.yaml');
  await writeFile(file, stringify(config));
  return loadConfig({ FEDGATE_CONFIG: file });
}

const service = { clientId: 'svc', clientSecret: 'svc-secret-0123456789', grantTypes: ['client_credentials'] };
const EXCEPTION = 'FTS third-party copies, risk assessment with the VO security contact (SEC-42)';

describe('token lifetimes (AARC-G081 / WLCG profile §4.3.1)', () => {
  it('defaults to 1 h access and ID tokens and 30 days refresh tokens', async () => {
    const config = await load({});
    assert.equal(config.lifetimes.accessToken, 3600);
    assert.equal(config.lifetimes.idToken, 3600);
    assert.equal(config.lifetimes.clientCredentials, 3600);
    assert.equal(config.lifetimes.refreshToken, 30 * 24 * 3600);
    assert.deepEqual(LIFETIME_MAXIMUMS, { accessToken: 6 * 3600, idToken: 6 * 3600, refreshToken: 400 * 24 * 3600 });
  });

  it('refuses a lifetime above the maximum, naming each setting, unless a documented exception allows it', async () => {
    await assert.rejects(load({
      lifetimes: { accessToken: 6 * 3600 + 1, refreshToken: 401 * 24 * 3600 },
      clients: [{ ...service, accessTokenTtl: 7 * 3600 }, { ...service, clientId: 'cli', clientSecret: undefined, grantTypes: ['device_code', 'refresh_token'], refreshTokenTtl: 500 * 24 * 3600 }],
      resourceServers: [{ audience: 'https://fts.example', accessTokenTtl: 24 * 3600 }],
    }), (err: ConfigError) => {
      const paths = err.problems.map((p) => p.split(':')[0]).sort();
      assert.deepEqual(paths, ['clients.0.accessTokenTtl', 'clients.1.refreshTokenTtl', 'lifetimes.accessToken', 'lifetimes.refreshToken', 'resourceServers.0.accessTokenTtl']);
      assert.match(err.problems.find((p) => p.startsWith('resourceServers.0'))!, /24 h is above the maximum of 6 h .*lifetimeException/);
      return true;
    });
    // Exactly at the maximum is fine.
    const atMaximum = await load({ lifetimes: { accessToken: 6 * 3600, idToken: 6 * 3600, refreshToken: 400 * 24 * 3600 } });
    assert.equal(atMaximum.lifetimes.refreshToken, 400 * 24 * 3600);
    // An exception is per entry: it does not cover another one.
    const excepted = await load({
      clients: [{ ...service, accessTokenTtl: 12 * 3600, lifetimeException: EXCEPTION }],
      resourceServers: [{ audience: 'https://fts.example', accessTokenTtl: 24 * 3600, lifetimeException: EXCEPTION }],
    });
    assert.equal(excepted.clients[0]!.lifetimeException, EXCEPTION);
    await assert.rejects(load({ clients: [{ ...service, accessTokenTtl: 12 * 3600, lifetimeException: 'ok' }] }),
      (err: ConfigError) => err.problems.some((p) => p.startsWith('clients.0.lifetimeException: name the risk assessment')));
  });

  it('issues tokens with an excepted lifetime, warns at start, and refuses an over-long data source without one', async () => {
    const server = await startServer({
      configure: (config) => {
        config.clients.push({ clientId: 'fts', clientSecret: 'fts-secret-0123456789', grantTypes: ['client_credentials'], applicationType: 'web',
          redirectUris: [], postLogoutRedirectUris: [], consentRequired: false, accessTokenTtl: 12 * 3600, lifetimeException: EXCEPTION });
      },
    });
    try {
      const fts = await rp(server.issuer, 'fts', 'fts-secret-0123456789');
      const tokens = await oidc.clientCredentialsGrant(fts, { resource: 'https://storage.demo', scope: 'storage.read:/store' });
      const { payload } = decodeJwt(tokens.access_token);
      assert.equal((payload.exp as number) - (payload.iat as number), 12 * 3600);
      const demo = await oidc.clientCredentialsGrant(await rp(server.issuer, 'demo-service', 'demo-service-secret'), { resource: 'https://storage.demo', scope: 'storage.read:/store' });
      const demoPayload = decodeJwt(demo.access_token).payload;
      assert.equal((demoPayload.exp as number) - (demoPayload.iat as number), 3600);
      assert.match(server.logs.text, /token lifetime above the AARC-G081 maximum, by documented exception/);

      const context = { actor: 'cli', via: 'cli' } as const;
      const record = { name: 'fts-store', audience: 'https://fts-store.example', kind: 'storage', storage: { basePath: '/data' }, accessTokenTtl: 2 * 24 * 3600 };
      await assert.rejects(server.fedgate.dataSources.create(record, context), (err: DataSourceError) =>
        err.status === 400 && err.problems.some((p) => p.field === 'accessTokenTtl' && /maximum of 21600 s .*lifetimeException/.test(p.message)));
      await server.fedgate.dataSources.create({ ...record, lifetimeException: EXCEPTION }, context);
    } finally {
      await server.cleanup();
    }
  });
});
