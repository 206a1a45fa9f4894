import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createInitialAccessToken } from '../../src/admin/routes.ts';
import { approveOnDevicePage, Browser, decodeJwt, freePort, loginThroughPages, startServer, type TestServer } from '../support/harness.ts';
import { OidcAgent } from '../support/oidc-agent.ts';

/**
 * oidc-agent 4.2 (Debian's oidc-agent-cli), the researchers' own client,
 * against fedgate: nothing here is a reimplementation of what it sends.
 */
describe('oidc-agent against fedgate', () => {
  let server: TestServer;
  let agent: OidcAgent;
  const alice = { username: 'alice', password: 'alice-password' };

  before(async () => {
    server = await startServer({ redis: true });
    agent = await OidcAgent.start();
  });
  after(async () => {
    await agent?.stop();
    await server?.cleanup();
  });

  /** oidc-gen with the device flow for demo-cli (public: oidc-agent sends `Basic base64("demo-cli:")`), approved as alice. */
  async function generateWithDeviceFlow(name: string, extra: string[], client = ['--client-id=demo-cli', '--client-secret=']): Promise<void> {
    const gen = agent.run('oidc-gen', [
      `--iss=${server.issuer}`, ...client, '--flow=device',
      '--pw-env', '--no-url-call', '--prompt=cli', '--confirm-default', ...extra, name,
    ]);
    const [, userCode] = await gen.waitFor(/enter the code: ([A-Z]{4}-[A-Z]{4})/);
    const last = await approveOnDevicePage(new Browser(), `${server.issuer}/device`, userCode!, alice);
    assert.match(last, /signed in/i);
    const result = await gen.done;
    assert.equal(result.code, 0, `oidc-gen failed: ${result.stdout.slice(-500)}${result.stderr}\n${server.logs.lines.filter((l) => l.includes("refused")).join("\n")}`);
  }

  async function token(args: string[]): Promise<string> {
    const result = await agent.run('oidc-token', args).done;
    assert.equal(result.code, 0, `oidc-token ${args.join(' ')} failed: ${result.stdout}${result.stderr}`);
    return result.stdout.trim();
  }

  it('generates an account with the device flow of the public demo-cli, gets and force-refreshes tokens', async () => {
    await generateWithDeviceFlow('device', ['--scope=openid profile offline_access wlcg.groups']);
    const first = await token(['device']);
    const userinfo = await fetch(`${server.issuer}/me`, { headers: { authorization: `Bearer ${first}` } });
    assert.equal(userinfo.status, 200, await userinfo.clone().text());
    assert.equal((await userinfo.json() as { preferred_username: string }).preferred_username, 'alice');
    const forced = await token(['--force-new', 'device']);
    assert.notEqual(forced, first, 'a forced refresh issues a new access token');
    const again = await fetch(`${server.issuer}/me`, { headers: { authorization: `Bearer ${forced}` } });
    assert.equal(again.status, 200);
  });

  it('generates an account with the authorization code flow on a loopback port (PKCE, oidc-agent\'s own redirect server)', async () => {
    const port = await freePort();
    const redirect = `http://localhost:${port}/callback`;
    const gen = agent.run('oidc-gen', [
      `--iss=${server.issuer}`, '--client-id=demo-cli', '--client-secret=', '--flow=code', `--redirect-uri=${redirect}`,
      '--scope=openid profile offline_access', '--pw-env', '--no-url-call', '--prompt=cli', '--confirm-default', 'code',
    ]);
    const [url] = await gen.waitFor(/http:\/\/127\.0\.0\.1:\d+\/auth\?\S+/);
    const authorization = new URL(url);
    assert.equal(authorization.searchParams.get('code_challenge_method'), 'S256');
    const back = await loginThroughPages(new Browser(), authorization, `http://localhost:${port}/`, { ...alice, consent: 'approve' });
    assert.ok(back.searchParams.get('code'), back.href);
    // The browser's last step: oidc-agent's loopback server receives the code and redeems it.
    const received = await fetch(back);
    assert.equal(received.status, 200, await received.clone().text());
    const result = await gen.done;
    assert.equal(result.code, 0, `oidc-gen failed: ${result.stdout.slice(-500)}${result.stderr}`);
    const accessToken = await token(['code']);
    const userinfo = await fetch(`${server.issuer}/me`, { headers: { authorization: `Bearer ${accessToken}` } });
    assert.equal((await userinfo.json() as { preferred_username: string }).preferred_username, 'alice');
  });

  it('asks a storage token with --aud and a narrower path with -s', async () => {
    await generateWithDeviceFlow('storage', [
      '--scope=openid offline_access storage.read:/store/cms', '--aud=https://storage.demo',
    ]);
    // The audience named at generation holds for the account's later tokens (oidc-agent sends it only then).
    const later = decodeJwt(await token(['--force-new', 'storage'])).payload;
    assert.equal(later.aud, 'https://storage.demo');
    assert.equal(later.scope, 'storage.read:/store/cms');
    const storage = decodeJwt(await token(['--aud=https://storage.demo', 'storage'])).payload;
    assert.equal(storage.aud, 'https://storage.demo');
    assert.equal(storage.scope, 'storage.read:/store/cms');
    const narrower = decodeJwt(await token(['--aud=https://storage.demo', '-s', 'storage.read:/store/cms/run1', 'storage'])).payload;
    assert.equal(narrower.aud, 'https://storage.demo');
    assert.equal(narrower.scope, 'storage.read:/store/cms/run1');
  });

  it('registers its own client with an initial access token (oidc-gen defaults: private-use redirect, capability scopes)', async () => {
    const { token: initialAccessToken } = await createInitialAccessToken(server.fedgate.provider(), 600);
    await generateWithDeviceFlow('registered', ['--scope=openid offline_access storage.read:/store/cms'], [`--at=${initialAccessToken}`]);
    const storage = decodeJwt(await token(['--aud=https://storage.demo', 'registered'])).payload;
    assert.equal(storage.aud, 'https://storage.demo');
    assert.equal(storage.scope, 'storage.read:/store/cms');
    assert.notEqual(storage.client_id, 'demo-cli');
  });
});
