import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { createLocalJWKSet, jwtVerify } from 'jose';
import * as oidc from 'openid-client';
import { stringify } from 'yaml';
import { hashPassword } from '../../src/accounts/accounts.ts';
import { demoRealm } from '../../src/config/demo-realm.ts';
import { authorizationCodeFlow, decodeJwt, rp, startServer, type TestServer } from '../support/harness.ts';

const run = promisify(execFile);
const NODE = process.execPath;

/** A configuration file like the demo realm, with hashed passwords and its own keys directory. */
async function writeConfig(dir: string, keysDir: string): Promise<string> {
  const { users, ...rest } = demoRealm();
  const file = join(dir, 'fedgate.yaml');
  await writeFile(file, stringify({
    ...rest,
    keysDir,
    // A short prepublish period so that the scheduled rollover completes within the test.
    keys: { prepublishSeconds: 8, rotationIntervalSeconds: 182 * 24 * 3600, jwksMaxAgeSeconds: 21600 },
    users: await Promise.all(users.map(async ({ password, ...u }) => ({ ...u, passwordHash: await hashPassword(password) }))),
  }));
  return file;
}

async function fetchJwks(issuer: string) {
  return (await fetch(`${issuer}/jwks`)).json() as Promise<{ keys: Array<{ kid: string; alg: string; d?: string }> }>;
}

describe('key rotation and restarts with Redis', () => {
  let server: TestServer;
  let configFile: string;
  let keysDir: string;

  before(async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fedgate-config-'));
    keysDir = join(dir, 'keys');
    configFile = await writeConfig(dir, keysDir);
    server = await startServer({ redis: true, keysDir, watchKeys: true, env: { FEDGATE_CONFIG: configFile } });
  });
  after(() => server.cleanup());

  it('rotates the signing key on a running instance without breaking tokens issued before, and keeps data across a restart', async () => {
    const service = await rp(server.issuer, 'demo-service', 'demo-service-secret');
    const before = await oidc.clientCredentialsGrant(service, { resource: 'https://storage.demo', scope: 'storage.read:/' });
    const opaque = await oidc.clientCredentialsGrant(service, {});
    const cli = await rp(server.issuer, 'demo-cli');
    const login = await authorizationCodeFlow(cli, {
      redirectUri: 'http://127.0.0.1:50123/callback', scope: 'openid offline_access', username: 'alice', password: 'alice-password',
    });
    const oldKid = decodeJwt(before.access_token).header.kid as string;
    const initial = await fetchJwks(server.issuer);
    assert.deepEqual(initial.keys.map((k) => k.alg).sort(), ['ES256', 'RS256']);
    assert.ok(initial.keys.every((k) => k.d === undefined), 'the JWKS publishes public keys only');

    const jwksResponse = await fetch(`${server.issuer}/jwks`);
    assert.equal(jwksResponse.headers.get('cache-control'), 'public, max-age=21600, stale-if-error=8', 'WLCG §4.3.1 public key cache refresh');

    const env = { ...process.env, FEDGATE_CONFIG: configFile };
    const { stdout, stderr } = await run(NODE, ['src/cli/main.ts', 'keys', 'rotate'], { env });
    assert.match(stdout, /added: \S+/);
    assert.match(stdout, /sign from \d{4}-/);
    assert.match(stderr, /prepublishSeconds \(8\) is shorter than the JWKS max-age/);

    // The running instance polls the keys directory and publishes the new keys before it signs with them.
    let jwks = initial;
    for (let i = 0; i < 40 && jwks.keys.length < 4; i += 1) {
      await new Promise((r) => setTimeout(r, 100));
      jwks = await fetchJwks(server.issuer);
    }
    assert.equal(jwks.keys.length, 4, 'new keys published, old ones kept');
    const during = await oidc.clientCredentialsGrant(service, { resource: 'https://storage.demo', scope: 'storage.read:/' });
    assert.equal(decodeJwt(during.access_token).header.kid, oldKid, 'the old key signs while the new one is only published');
    let after = during;
    for (let i = 0; i < 150 && decodeJwt(after.access_token).header.kid === oldKid; i += 1) {
      await new Promise((r) => setTimeout(r, 100));
      after = await oidc.clientCredentialsGrant(service, { resource: 'https://storage.demo', scope: 'storage.read:/' });
    }
    const newKid = decodeJwt(after.access_token).header.kid as string;
    assert.notEqual(newKid, oldKid, 'signs with the new key once the prepublish period has passed');
    assert.ok(jwks.keys.some((k) => k.kid === newKid), 'with a key published before');
    const keySet = createLocalJWKSet(jwks as Parameters<typeof createLocalJWKSet>[0]);
    for (const token of [before.access_token, during.access_token, after.access_token]) {
      await jwtVerify(token, keySet, { issuer: server.issuer, audience: 'https://storage.demo' });
    }

    // The emergency path signs at once and says what it breaks.
    const emergency = await run(NODE, ['src/cli/main.ts', 'keys', 'rotate', '--now'], { env });
    assert.match(emergency.stdout, /sign now/);
    assert.match(emergency.stderr, /refuse tokens signed with the new keys until they fetch the JWKS again/);

    // A restart: a new process state, same Redis and keys directory.
    server = await server.restart();
    const restartedJwks = createLocalJWKSet(await fetchJwks(server.issuer) as Parameters<typeof createLocalJWKSet>[0]);
    await jwtVerify(before.access_token, restartedJwks, { issuer: server.issuer, audience: 'https://storage.demo' });
    const portal = await rp(server.issuer, 'demo-portal', 'demo-portal-secret');
    assert.equal((await oidc.tokenIntrospection(portal, opaque.access_token)).active, true, 'opaque tokens survive in Redis');
    const cliAgain = await rp(server.issuer, 'demo-cli');
    const refreshed = await oidc.refreshTokenGrant(cliAgain, login.refresh_token!);
    assert.ok(refreshed.access_token, 'refresh tokens survive in Redis');
    const { payload } = await jwtVerify(refreshed.id_token!, restartedJwks, { issuer: server.issuer, audience: 'demo-cli' });
    assert.equal(payload.sub, login.claims()!.sub, 'the same account after the restart');
    const events = await server.fedgate.audit.recent(200);
    assert.ok(events.some((e) => e.type === 'login' && e.actor === payload.sub), 'audit events survive too');
  });
});
