import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Browser, hiddenInput, pkceAuthorizationUrl, rp, startServer, type TestServer } from '../support/harness.ts';

const CLI_REDIRECT = 'http://127.0.0.1:8765/callback';

/**
 * Password login throttling over the real Redis: parallel guesses, and the
 * client address behind a TLS-terminating proxy (trustProxy, trustedProxies).
 */
describe('login throttling', () => {
  let server: TestServer;

  before(async () => {
    server = await startServer({
      redis: true,
      configure: (config) => {
        config.trustProxy = true;
        // The tests connect from loopback: that is the proxy.
        config.trustedProxies = ['127.0.0.1', '::1', '10.0.0.0/8'];
        config.login.maxFailures = 3;
      },
    });
  });
  after(() => server.cleanup());

  /** A login page in a fresh browser; returns a function posting the login form from `forwardedFor`. */
  const loginForm = async (forwardedFor?: string) => {
    const cli = await rp(server.issuer, 'demo-cli');
    const { url } = await pkceAuthorizationUrl(cli, { redirect_uri: CLI_REDIRECT, scope: 'openid' });
    const browser = new Browser();
    const headers = forwardedFor ? { 'x-forwarded-for': forwardedFor } : undefined;
    const { res, url: loginUrl } = await browser.follow(url, () => false);
    const csrf = hiddenInput(await res.text(), 'csrf');
    return (username: string, password: string) => browser.request(new URL(`${loginUrl.pathname}/login`, loginUrl), {
      form: { username, password, csrf }, ...(headers ? { headers } : {}),
    });
  };

  it('lets no more parallel guesses through than the limit', async () => {
    const attempt = await loginForm('198.51.100.1');
    const answers = await Promise.all(Array.from({ length: 12 }, () => attempt('bob', 'guess')));
    const statuses = answers.map((r) => r.status);
    assert.equal(statuses.filter((s) => s === 401).length, server.config.login.maxFailures, `checked passwords: ${statuses.join(' ')}`);
    assert.equal(statuses.filter((s) => s === 429).length, 12 - server.config.login.maxFailures);
    assert.equal((await attempt('bob', 'bob-password')).status, 429, 'the right password waits out the lockout too');
  });

  it('takes the right-most untrusted X-Forwarded-For address, for the audit and the address lockout', async () => {
    // The client writes the left part; the proxies (10.0.0.0/8, then loopback) append the rest.
    const client = '203.0.113.9';
    const chain = (spoofed: string) => `${spoofed}, ${client}, 10.1.2.3`;
    const attempt = await loginForm(chain('6.6.6.6'));
    assert.equal((await attempt('nobody-1', 'x')).status, 401);
    await server.fedgate.audit.flush();
    const failed = (await server.fedgate.audit.recent(20)).find((e) => e.type === 'login.failed' && e.actor === 'username:nobody-1');
    assert.equal(failed?.ip, client, 'the address the last untrusted hop connected from, not what the client wrote');

    // Changing the spoofed part does not escape the address limit (4 × maxFailures failures, any usernames).
    const limit = server.config.login.maxFailures * 4;
    for (let i = 2; i <= limit; i += 1) {
      const next = await loginForm(chain(`6.6.6.${i}`));
      assert.equal((await next(`nobody-${i}`, 'x')).status, 401, `attempt ${i}`);
    }
    const locked = await loginForm(chain('7.7.7.7'));
    assert.equal((await locked('alice', 'alice-password')).status, 429);
    // Another client behind the same proxies is not affected.
    const other = await loginForm('6.6.6.6, 203.0.113.10, 10.1.2.3');
    assert.equal((await other('nobody-x', 'x')).status, 401);
  });
});
