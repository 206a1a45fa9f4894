import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Browser, freePort, loginThroughPages, rawRequest, startServer, type TestServer } from '../support/harness.ts';

const MODULES = '/usr/lib/apache2/modules';

/**
 * Debian's Apache with mod_auth_openidc as a relying party of fedgate, with
 * the settings the README gives: a web application signs alice in through
 * fedgate and sees her claims.
 */
describe('Apache mod_auth_openidc against fedgate', () => {
  let server: TestServer;
  let dir: string;
  let apache: ChildProcess | undefined;
  let apachePort: number;
  const secret = 'apache-rp-secret-0123456789';

  before(async () => {
    apachePort = await freePort();
    const app = `http://127.0.0.1:${apachePort}`;
    server = await startServer({
      configure: (config) => {
        config.clients.push({
          clientId: 'apache-rp', clientSecret: secret, name: 'Apache test application', applicationType: 'web',
          grantTypes: ['authorization_code'], redirectUris: [`${app}/private/redirect_uri`], postLogoutRedirectUris: [], consentRequired: true,
        });
      },
    });
    dir = await mkdtemp(join(tmpdir(), 'fedgate-apache-'));
    // Apache's workers run as an unprivileged user: the document root must be readable to them.
    await chmod(dir, 0o755);
    await mkdir(join(dir, 'htdocs', 'private'), { recursive: true });
    await writeFile(join(dir, 'htdocs', 'private', 'index.html'), 'private page\n');
    await chmod(join(dir, 'htdocs'), 0o755);
    await chmod(join(dir, 'htdocs', 'private'), 0o755);
    await chmod(join(dir, 'htdocs', 'private', 'index.html'), 0o644);
    await writeFile(join(dir, 'httpd.conf'), [
      'ServerName 127.0.0.1',
      `Listen 127.0.0.1:${apachePort}`,
      `PidFile ${dir}/httpd.pid`,
      `ErrorLog ${dir}/error.log`,
      'LogLevel warn auth_openidc:info',
      `DefaultRuntimeDir ${dir}`,
      'User nobody',
      'Group nogroup',
      ...['mpm_event', 'authn_core', 'authz_core', 'authz_user', 'dir', 'mime', 'headers', 'auth_openidc'].map((m) => `LoadModule ${m}_module ${MODULES}/mod_${m}.so`),
      'TypesConfig /etc/mime.types',
      `DocumentRoot ${dir}/htdocs`,
      'DirectoryIndex index.html',
      // The README's settings.
      `OIDCProviderMetadataURL ${server.issuer}/.well-known/openid-configuration`,
      'OIDCClientID apache-rp',
      `OIDCClientSecret ${secret}`,
      `OIDCRedirectURI ${app}/private/redirect_uri`,
      'OIDCCryptoPassphrase test-only-passphrase-0123456789',
      'OIDCScope "openid profile email"',
      'OIDCPKCEMethod S256',
      'OIDCRemoteUserClaim preferred_username',
      '<Location /private>',
      '  AuthType openid-connect',
      '  Require valid-user',
      '  Header always set X-Remote-User "expr=%{REMOTE_USER}"',
      '  Header always set X-Email "%{OIDC_CLAIM_email}e"',
      '</Location>',
      '',
    ].join('\n'));
    apache = spawn('/usr/sbin/apache2', ['-f', join(dir, 'httpd.conf'), '-DFOREGROUND'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    apache.stdout!.on('data', (c: Buffer) => { output += c.toString(); });
    apache.stderr!.on('data', (c: Buffer) => { output += c.toString(); });
    const deadline = Date.now() + 15_000;
    for (;;) {
      const up = await fetch(`${app}/`).then(() => true, () => false);
      if (up) break;
      if (apache.exitCode !== null || Date.now() > deadline) throw new Error(`apache did not start: ${output} ${await readFile(join(dir, 'error.log'), 'utf8').catch(() => '')}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  });

  after(async () => {
    if (apache && apache.exitCode === null) {
      const exited = new Promise((resolve) => apache!.once('exit', resolve));
      apache.kill('SIGTERM');
      await exited;
    }
    await server?.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('signs alice in to a protected location and hands her claims to the application', async () => {
    const browser = new Browser();
    const app = `http://127.0.0.1:${apachePort}`;
    // What a browser's navigation sends (mod_auth_openidc answers 401 to what looks like a script's request).
    const navigation = { accept: 'text/html,application/xhtml+xml', 'sec-fetch-mode': 'navigate', 'sec-fetch-dest': 'document', 'user-agent': 'Mozilla/5.0 (fedgate test)' };
    // Sent with node:http: fetch always says Sec-Fetch-Mode: cors, which mod_auth_openidc rightly answers with 401.
    const start = await rawRequest(app, '/private/', { headers: navigation });
    assert.equal(start.status, 302, `${start.body}\n${await readFile(join(dir, 'error.log'), 'utf8')}`);
    browser.adoptCookies((start.headers['set-cookie'] as string[] | undefined) ?? []);
    const authorization = new URL(String(start.headers.location));
    assert.equal(authorization.origin + authorization.pathname, `${server.issuer}/auth`);
    assert.equal(authorization.searchParams.get('code_challenge_method'), 'S256');
    const callback = await loginThroughPages(browser, authorization, `${app}/private/redirect_uri`, { username: 'alice', password: 'alice-password' });
    // The same browser: mod_auth_openidc ties its state to the User-Agent (OIDCStateInputHeaders).
    const redeemed = await browser.request(callback, { headers: { 'user-agent': navigation['user-agent'] } });
    assert.equal(redeemed.status, 302, `${await redeemed.text()}\n${await readFile(join(dir, 'error.log'), 'utf8')}`);
    const page = await browser.request(new URL(redeemed.headers.get('location')!, app), { headers: { 'user-agent': navigation['user-agent'] } });
    assert.equal(page.status, 200, await readFile(join(dir, 'error.log'), 'utf8'));
    assert.equal(page.headers.get('x-remote-user'), 'alice');
    assert.equal(page.headers.get('x-email'), 'alice@fedgate.demo');
    assert.equal(await page.text(), 'private page\n');
  });
});
