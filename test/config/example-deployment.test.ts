import assert from 'node:assert/strict';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { adminApi, authorizationCodeFlow, decodeJwt, rp, startServer, type TestServer } from '../support/harness.ts';

const EXAMPLE = resolve('docs/configuration.example.yaml');
const EXAMPLE_POLICIES = resolve('docs/example-policies');
const STORAGE = 'https://storage.example-research.org';

/**
 * The example deployment as a newcomer starts it: docs/configuration.example.yaml
 * with its own policy seed. Only what a checkout must change is changed: the
 * policy directory's path (the container mounts it at /etc/fedgate/policies),
 * and the issuer and store (a loopback port, the test's store).
 */
describe('the example deployment (docs/configuration.example.yaml + docs/example-policies)', () => {
  let server: TestServer;

  before(async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fedgate-example-'));
    const file = join(dir, 'fedgate.yaml');
    const text = await readFile(EXAMPLE, 'utf8');
    assert.match(text, /^ {2}dir: \/etc\/fedgate\/policies/m, 'the example names the policy directory the container mounts');
    await writeFile(file, text.replace(/^ {2}dir: \/etc\/fedgate\/policies/m, `  dir: ${EXAMPLE_POLICIES}`));
    server = await startServer({ env: { FEDGATE_CONFIG: file } });
  });
  after(() => server?.cleanup());

  it('starts, and its policy seed fits its configuration (no line names what it does not have)', () => {
    assert.match(server.logs.text, /policy seeded from files/);
    assert.doesNotMatch(server.logs.text, /do not exist \(yet\)|applies to this configuration|name a group, user, client or audience/);
  });

  it('gives j.doe (in /cms/production) the storage scopes the example promises, and nothing it does not', async () => {
    const cli = await rp(server.issuer, 'research-cli');
    const tokens = await authorizationCodeFlow(cli, {
      redirectUri: 'http://127.0.0.1:47011/callback',
      scope: 'openid storage.read:/data/cms storage.create:/data/cms storage.read:/data',
      resource: STORAGE,
      username: 'j.doe',
      password: 'change-me',
    });
    const { header, payload } = decodeJwt(tokens.access_token);
    assert.equal(header.typ, 'at+jwt');
    assert.equal(payload.aud, STORAGE);
    const scopes = String(payload.scope).split(' ').sort();
    assert.deepEqual(scopes.filter((s) => s.startsWith('storage.')), ['storage.create:/data/cms', 'storage.read:/data/cms']);
  });

  it('lets its administrator (ops-admin, in /admins) obtain an admin token as the README does, and j.doe none', async () => {
    const cli = await rp(server.issuer, 'research-cli');
    const ask = (username: string) => authorizationCodeFlow(cli, {
      redirectUri: 'http://127.0.0.1:47011/callback', scope: 'openid fedgate.admin', resource: adminApi(server.issuer), username, password: 'change-me',
    });
    const admin = await ask('ops-admin');
    assert.equal(admin.scope, 'fedgate.admin');
    const accounts = await fetch(`${server.issuer}/admin/api/accounts`, { headers: { authorization: `Bearer ${admin.access_token}` } });
    assert.equal(accounts.status, 200);
    const user = await ask('j.doe');
    assert.equal(user.scope?.split(' ').includes('fedgate.admin') ?? false, false, 'the scope policy gives fedgate.admin to /admins only');
    assert.equal((await fetch(`${server.issuer}/admin/api/accounts`, { headers: { authorization: `Bearer ${user.access_token}` } })).status, 403);
  });

  it('seeded with policies written for another realm, it says at the end, in one line, how many lines do not fit', async () => {
    const foreign = await mkdtemp(join(tmpdir(), 'fedgate-foreign-policies-'));
    await writeFile(join(foreign, 'scopes.csv'), [
      'p, /lhcb, scopes, https://storage.demo, storage.read:/store/lhcb, allow,',
      'p, user:nobody, scopes, *, compute.read, allow,',
    ].join('\n'));
    for (const [dir, verdict] of [
      [resolve('policies'), /"msg":"\d+ of the \d+ policy lines seeded from \S+ name a group, user, client or audience this configuration does not have"/],
      [foreign, /"msg":"none of the 2 policy lines seeded from \S+ applies to this configuration .*no user gets resource scopes/],
    ] as const) {
      const other = await startServer({ env: { FEDGATE_CONFIG: server.config.source }, configure: (config) => { config.policies.dir = dir; } });
      try {
        const lines = other.logs.lines.filter((l) => /policy lines seeded from/.test(l));
        assert.equal(lines.length, 1, other.logs.text.slice(-2000));
        assert.match(lines[0]!, /"level":"warn"/);
        assert.match(lines[0]!, verdict);
        const seeded = other.logs.lines.findIndex((l) => /policy seeded from files/.test(l));
        assert.ok(other.logs.lines.indexOf(lines[0]!) > seeded, 'the verdict comes after the seeding');
      } finally {
        await other.cleanup();
      }
    }
  });
});
