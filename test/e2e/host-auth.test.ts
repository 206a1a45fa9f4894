import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createLocalJWKSet, jwtVerify } from 'jose';
import * as oidc from 'openid-client';
import { stringify } from 'yaml';
import { type ConfigError, loadConfig } from '../../src/config/index.ts';
import { decodeJwt, rp, startServer, type TestServer } from '../support/harness.ts';

const HOST = 'host:worker01.example.org';
const SECRET = 'worker01-secret-0123456789';

/** WLCG common JWT profile 1.3 §2.2.4: host-based authorization. */
describe('host-based authorization (WLCG profile §2.2.4)', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer({
      configure: (config) => {
        config.clients.push({ clientId: HOST, clientSecret: SECRET, grantTypes: ['client_credentials'], applicationType: 'web',
          redirectUris: [], postLogoutRedirectUris: [], consentRequired: false });
      },
    });
  });
  after(() => server.cleanup());

  it('gives a host:<fqdn> client host.auth with client credentials, its id as sub, verifiable with the JWKS', async () => {
    const host = await rp(server.issuer, HOST, SECRET);
    const tokens = await oidc.clientCredentialsGrant(host, { scope: 'host.auth' });
    assert.equal(tokens.scope, 'host.auth');
    const jwks = createLocalJWKSet(await (await fetch(`${server.issuer}/jwks`)).json() as Parameters<typeof createLocalJWKSet>[0]);
    const { payload } = await jwtVerify(tokens.access_token, jwks, { issuer: server.issuer, audience: 'https://wlcg.cern.ch/jwt/v1/any', typ: 'at+jwt' });
    assert.equal(payload.sub, HOST);
    assert.equal(payload.client_id, HOST);
    assert.equal(payload.scope, 'host.auth');
    assert.equal(payload['wlcg.ver'], '1.0');

    // With a named resource, beside that resource's own scopes.
    const storage = await oidc.clientCredentialsGrant(host, { resource: 'https://storage.demo', scope: 'host.auth storage.read:/store/config' });
    const claims = decodeJwt(storage.access_token).payload;
    assert.equal(claims.aud, 'https://storage.demo');
    assert.deepEqual(String(claims.scope).split(' ').sort(), ['host.auth', 'storage.read:/store/config']);
  });

  it('never gives host.auth to a client that is not a host', async () => {
    const service = await rp(server.issuer, 'demo-service', 'demo-service-secret');
    const tokens = await oidc.clientCredentialsGrant(service, { resource: 'https://storage.demo', scope: 'host.auth storage.read:/store' });
    assert.equal(decodeJwt(tokens.access_token).payload.scope, 'storage.read:/store');
  });

  it('refuses a host client id that is not host:<fqdn> in the configuration', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fedgate-host-'));
    try {
      for (const clientId of ['host:worker01', 'host:Worker01.example.org', 'host:bad_name.example.org', 'host:']) {
        const file = join(dir, 'fedgate.yaml');
        await writeFile(file, stringify({ clients: [{ clientId, clientSecret: SECRET, grantTypes: ['client_credentials'] }] }));
        await assert.rejects(loadConfig({ FEDGATE_CONFIG: file }), (err: ConfigError) => err.problems.some((p) => p.startsWith('clients.0.clientId: a host client id is host:')), clientId);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
