import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { freePort, rawRequest, startServer, type TestServer } from '../support/harness.ts';

/** Lines at warn or above that a request wrote (by its request id). */
const loud = (server: TestServer, requestId: string) =>
  server.logs.lines.filter((l) => l.includes(requestId) && /"level":"(warn|error|fatal)"/.test(l));

/**
 * What oidc-provider's own routes answer to requests a browser (or an
 * attacker) makes out of turn, and the pages it renders itself.
 */
describe('oidc-provider pages and their edges', () => {
  let server: TestServer;

  before(async () => {
    server = await startServer();
  });
  after(() => server.cleanup());

  it('answers device verification requests without a session with 4xx and one warning, no stack', async () => {
    const form = { 'content-type': 'application/x-www-form-urlencoded' };
    const asks: Array<[string, string, Record<string, string>?, string?]> = [
      ['GET', '/device/anything'], ['GET', '/device/auth'], ['HEAD', '/device/auth'],
      ['POST', '/device', form, 'user_code=ABCD-EFGH'], ['POST', '/device', form, 'xsrf=forged&user_code=ABCD-EFGH&confirm=yes'],
    ];
    for (const [method, path, headers, body] of asks) {
      const res = await rawRequest(server.issuer, path, { method, headers: { accept: 'text/html', ...headers }, ...(body ? { body } : {}) });
      assert.ok(res.status >= 400 && res.status < 500, `${method} ${path}: ${res.status}`);
      const requestId = String(res.headers['x-request-id']);
      const lines = loud(server, requestId);
      assert.equal(lines.length, 1, `${method} ${path}: ${lines.join('\n')}`);
      assert.match(lines[0]!, /"level":"warn"/);
      assert.doesNotMatch(lines[0]!, /stack/);
    }
  });

  it('sends its auto-submitting pages (device, logout) unframeable, with the script allowed by hash', async () => {
    for (const path of ['/device?user_code=ABCD-EFGH', '/session/end']) {
      const res = await rawRequest(server.issuer, path, { headers: { accept: 'text/html' } });
      assert.equal(res.status, 200, `${path}: ${res.body.slice(0, 200)}`);
      assert.match(res.body, /document\.forms\[0\]\.submit\(\)/, 'the auto-submitting form');
      assert.equal(res.headers['x-frame-options'], 'DENY', path);
      const csp = String(res.headers['content-security-policy']);
      assert.match(csp, /frame-ancestors 'none'/, path);
      const script = /<script>([^]*?)<\/script>/.exec(res.body)![1]!;
      assert.ok(csp.includes(`'sha256-${createHash('sha256').update(script).digest('base64')}'`), `${path}: the inline script is allowed (${csp})`);
    }
  });

  it('logs bytes after a request on a keep-alive connection below error level', async () => {
    const url = new URL(server.issuer);
    const before = server.logs.lines.length;
    await new Promise<void>((resolve, reject) => {
      const socket = connect(Number(url.port), url.hostname, () => socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGARBAGE\x00\x01 nonsense\r\n\r\n'));
      socket.on('error', reject);
      socket.on('close', () => resolve());
      socket.resume();
    });
    await new Promise((r) => setTimeout(r, 100));
    const errors = server.logs.lines.slice(before).filter((l) => /"level":"(error|fatal)"/.test(l));
    assert.deepEqual(errors, []);
  });
});

describe('an https issuer asked over plain HTTP', () => {
  let server: TestServer;
  let origin: string;

  before(async () => {
    const port = await freePort();
    origin = `http://127.0.0.1:${port}`;
    server = await startServer({ port, env: { ISSUER: `https://127.0.0.1:${port}` } });
  });
  after(() => server.cleanup());

  it('answers the login page with a clear 400 page, not a 500', async () => {
    const query = new URLSearchParams({
      client_id: 'demo-cli', response_type: 'code', redirect_uri: 'http://127.0.0.1:8765/callback', scope: 'openid',
      code_challenge: 'a'.repeat(43), code_challenge_method: 'S256',
    });
    const auth = await rawRequest(origin, `/auth?${query}`, { headers: { accept: 'text/html' } });
    assert.equal(auth.status, 303);
    const cookie = ((auth.headers['set-cookie'] ?? []) as string[]).map((c) => c.split(';')[0]).join('; ');
    const page = await rawRequest(origin, String(auth.headers.location), { headers: { accept: 'text/html', cookie } });
    assert.equal(page.status, 400);
    assert.match(page.body, /must be opened over HTTPS/);
    assert.match(page.body, /X-Forwarded-Proto/);
    const lines = loud(server, String(page.headers['x-request-id']));
    assert.equal(lines.length, 1, lines.join('\n'));
    assert.match(lines[0]!, /"level":"warn"/);
  });
});
