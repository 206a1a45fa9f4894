/**
 * fedgate's storage tokens against the storage side's own implementation:
 * Debian's XRootD with its SciTokens plugin (scitokens-cpp), configured with
 * the `scitokens.cfg` of the data source's onboarding bundle (base_path =
 * /store), and scitokens-cpp's own command line tools.
 *
 * scitokens-cpp fetches an issuer's keys only over https from a publicly
 * trusted issuer; the test puts fedgate's JWKS into scitokens-cpp's key
 * cache (its SQLite file, in the format scitokens-cpp writes) instead, so
 * the signature check runs on fedgate's real published keys.
 */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { onboardingBundle } from '../../src/datasources/onboarding.ts';
import { decodeJwt, freePort, startServer, within, type TestServer } from '../support/harness.ts';

const run = promisify(execFile);
const ISSUER = 'https://fedgate.test';
const AUDIENCE = 'https://xrootd.test';
const NOBODY = '65534';

describe('storage tokens checked by XRootD and scitokens-cpp (base_path = /store)', () => {
  let dir: string;
  let server: TestServer;
  let xrootd: ChildProcess;
  let httpPort: number;
  const env = () => ({ PATH: process.env.PATH!, XDG_CACHE_HOME: join(dir, 'cache') });

  async function storageToken(scope: string): Promise<string> {
    const res = await fetch(`${server.issuer}/token`, {
      method: 'POST',
      headers: { authorization: `Basic ${Buffer.from('demo-service:demo-service-secret').toString('base64')}` },
      body: new URLSearchParams({ grant_type: 'client_credentials', resource: AUDIENCE, scope }),
    });
    assert.equal(res.status, 200, await res.clone().text());
    return ((await res.json()) as { access_token: string }).access_token;
  }

  /** GET with curl, as storage clients do (XrdHttp maps the header only when spelled `Authorization`). */
  async function get(path: string, token?: string): Promise<{ status: number; body: string }> {
    const { stdout } = await run('curl', ['-s', '-w', '\n%{http_code}', ...(token ? ['-H', `Authorization: Bearer ${token}`] : []), `http://127.0.0.1:${httpPort}${path}`]);
    const cut = stdout.lastIndexOf('\n');
    return { status: Number(stdout.slice(cut + 1)), body: stdout.slice(0, cut) };
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fedgate-xrootd-'));
    // XRootD refuses to run as root: it runs as nobody, who must reach these files.
    await chmod(dir, 0o755);
    await mkdir(join(dir, 'data', 'store', 'cms', 'out'), { recursive: true });
    await mkdir(join(dir, 'data', 'store', 'atlas'), { recursive: true });
    await writeFile(join(dir, 'data', 'store', 'cms', 'run1.root'), 'cms data\n');
    await writeFile(join(dir, 'data', 'store', 'atlas', 'run1.root'), 'atlas data\n');
    await mkdir(join(dir, 'admin'));
    await mkdir(join(dir, 'cache', 'scitokens'), { recursive: true });
    await run('chmod', ['-R', 'a+rwX', dir]);

    server = await startServer({ env: { ISSUER } });
    const { view } = await server.fedgate.dataSources.create(
      { name: 'xrd', audience: AUDIENCE, kind: 'storage', storage: { basePath: '/store' } },
      { actor: 'cli', via: 'cli' },
    );
    const bundle = onboardingBundle(ISSUER, view);
    assert.ok(bundle.snippets.xrootd, 'a storage data source gets a scitokens.cfg');
    await writeFile(join(dir, 'scitokens.cfg'), bundle.snippets.xrootd);

    // fedgate's published keys, as scitokens-cpp caches what it fetched (jwks, next_update, expires).
    const jwks = await (await fetch(`${server.issuer}/jwks`)).json();
    const now = Math.floor(Date.now() / 1000);
    const db = new DatabaseSync(join(dir, 'cache', 'scitokens', 'scitokens_cpp.sqllite'));
    db.exec('CREATE TABLE IF NOT EXISTS keycache (issuer text UNIQUE PRIMARY KEY NOT NULL, keys text NOT NULL)');
    db.prepare('INSERT INTO keycache VALUES (?, ?)').run(ISSUER, JSON.stringify({ jwks, next_update: now + 3600, expires: now + 86400 }));
    db.close();
    await run('chmod', ['-R', 'a+rwX', join(dir, 'cache')]);

    const rootPort = await freePort();
    httpPort = await freePort();
    await writeFile(join(dir, 'xrootd.cfg'), [
      'all.role server',
      'all.export /store',
      `oss.localroot ${join(dir, 'data')}`,
      `xrd.port ${rootPort}`,
      `xrd.protocol XrdHttp:${httpPort} libXrdHttp.so`,
      'http.header2cgi Authorization authz',
      'ofs.authorize 1',
      'scitokens.trace all',
      `ofs.authlib libXrdAccSciTokens.so config=${join(dir, 'scitokens.cfg')}`,
      `all.adminpath ${join(dir, 'admin')}`,
      `all.pidpath ${join(dir, 'admin')}`,
      '',
    ].join('\n'));
    const xrootdArgs = ['xrootd', '-c', join(dir, 'xrootd.cfg'), '-l', join(dir, 'xrootd.log'), '-n', 'fedgate'];
    // XRootD refuses to run as root.
    const [command, ...args] = process.getuid?.() === 0 ? ['setpriv', '--reuid', NOBODY, '--regid', NOBODY, '--clear-groups', ...xrootdArgs] : xrootdArgs;
    xrootd = spawn(command!, args, { env: env(), stdio: 'ignore', cwd: dir });
    await within(15_000, async () => ((await get('/store/cms/run1.root').catch(() => undefined))?.status ?? 0) > 0);
  });

  after(async () => {
    xrootd?.kill('SIGTERM');
    await server?.cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  it('issues storage paths relative to the base path, and the onboarding bundle says base_path = /store', async () => {
    const token = await storageToken('storage.read:/store/cms storage.create:/store/cms/out');
    const { payload } = decodeJwt(token);
    assert.equal(payload.iss, ISSUER);
    assert.equal(payload.aud, AUDIENCE);
    assert.equal(payload.scope, 'storage.read:/cms storage.create:/cms/out');
    assert.match(await readFile(join(dir, 'scitokens.cfg'), 'utf8'), /^\[Issuer xrd\]\nissuer = https:\/\/fedgate\.test\nbase_path = \/store$/m);
  });

  it('scitokens-cpp verifies the token and lists its access under /store', async () => {
    const token = await storageToken('storage.read:/store/cms');
    const { stdout } = await run('scitokens-list-access', [token, ISSUER, AUDIENCE], { env: env() });
    assert.match(stdout, /read/i);
    assert.match(stdout, /\/cms/);
    const allowed = await run('scitokens-test-access', [token, ISSUER, AUDIENCE, 'read', '/cms/run1.root'], { env: env() });
    assert.match(allowed.stdout, /Access test successful/);
    await assert.rejects(run('scitokens-test-access', [token, ISSUER, AUDIENCE, 'read', '/atlas/run1.root'], { env: env() }));
  });

  it('XRootD serves what the token allows at /store/<path> and refuses the rest', async () => {
    const token = await storageToken('storage.read:/store/cms');
    const ok = await get('/store/cms/run1.root', token);
    assert.equal(ok.status, 200);
    assert.equal(ok.body, 'cms data\n');
    assert.equal((await get('/store/atlas/run1.root', token)).status, 403, 'outside the token\'s path');
    assert.equal((await get('/store/cms/run1.root')).status, 403, 'no token');
    const other = await storageToken('storage.read:/store/atlas');
    assert.equal((await get('/store/atlas/run1.root', other)).status, 200);
    assert.equal((await get('/store/cms/run1.root', other)).status, 403);
  });
});
