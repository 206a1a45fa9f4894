import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { Browser, startServer, type TestServer } from '../support/harness.ts';

const FORM = { 'content-type': 'application/x-www-form-urlencoded' };
const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;

describe('bad input gets a standard 4xx error, never a 500', () => {
  let server: TestServer;
  const post = (path: string, body: string, headers: Record<string, string> = FORM) =>
    fetch(`${server.issuer}${path}`, { method: 'POST', headers, body });

  before(async () => {
    server = await startServer();
  });
  after(async () => {
    // Nothing above may have produced a server error.
    assert.doesNotMatch(server.logs.text, /"level":"error"/);
    await server.cleanup();
  });

  const expectOAuthError = async (res: Response, status: number, error: string) => {
    assert.equal(res.status, status);
    const body = await res.json() as { error: string; error_description?: string };
    assert.equal(body.error, error);
    assert.doesNotMatch(JSON.stringify(body), /node_modules|\.js:\d+|at async/);
  };

  it('token endpoint: unknown grant types, missing parameters and malformed bodies', async () => {
    const auth = { ...FORM, authorization: basic('demo-service', 'demo-service-secret') };
    await expectOAuthError(await post('/token', 'grant_type=password&username=a&password=b', auth), 400, 'unsupported_grant_type');
    await expectOAuthError(await post('/token', '', auth), 400, 'invalid_request');
    await expectOAuthError(await post('/token', 'grant_type=authorization_code', { ...FORM, authorization: basic('demo-portal', 'demo-portal-secret') }), 400, 'invalid_request');
    await expectOAuthError(await post('/token', '%%%garbage=%E0%A4%A', auth), 400, 'invalid_request');
    await expectOAuthError(await post('/token', '{"grant_type":"client_credentials"}', { 'content-type': 'application/json', authorization: basic('demo-service', 'demo-service-secret') }), 400, 'invalid_request');
    await expectOAuthError(await post('/token', 'grant_type=client_credentials', { ...FORM, authorization: 'Basic !!!notbase64' }), 400, 'invalid_request');
    await expectOAuthError(await post('/token', 'grant_type=client_credentials&resource=not-a-uri', auth), 400, 'invalid_target');
  });

  it('token endpoint: replayed, forged and foreign codes and refresh tokens', async () => {
    const portal = { ...FORM, authorization: basic('demo-portal', 'demo-portal-secret') };
    await expectOAuthError(await post('/token', 'grant_type=authorization_code&code=forged&redirect_uri=http://localhost:3000/callback', portal), 400, 'invalid_grant');
    await expectOAuthError(await post('/token', 'grant_type=refresh_token&refresh_token=forged', portal), 400, 'invalid_grant');
    await expectOAuthError(await post('/token', 'grant_type=urn:ietf:params:oauth:grant-type:device_code&device_code=forged&client_id=demo-cli'), 400, 'invalid_grant');
  });

  it('oversized bodies are refused', async () => {
    const huge = `grant_type=client_credentials&scope=${'a'.repeat(2 * 1024 * 1024)}`;
    const res = await post('/token', huge, { ...FORM, authorization: basic('demo-service', 'demo-service-secret') });
    assert.ok(res.status === 413 || res.status === 400, `status ${res.status}`);
    const login = await post('/interaction/abc/login', `username=${'a'.repeat(64 * 1024)}`);
    assert.ok(login.status >= 400 && login.status < 500, `status ${login.status}`);
  });

  it('oversized headers are refused with 431', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const url = new URL(`${server.issuer}/.well-known/openid-configuration`);
      const req = httpRequest({ hostname: url.hostname, port: url.port, path: url.pathname, headers: { 'x-filler': 'a'.repeat(32 * 1024) } }, (res) => {
        res.resume();
        resolve(res.statusCode!);
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(status, 431);
  });

  it('authorization endpoint: unknown clients and bad parameters get an error page', async () => {
    const browser = new Browser();
    for (const query of [
      'client_id=unknown&response_type=code&redirect_uri=http://127.0.0.1/callback&scope=openid',
      'client_id=demo-cli&response_type=token&redirect_uri=http://127.0.0.1/callback&scope=openid',
      'response_type=code',
      'client_id=demo-cli&response_type=code&redirect_uri=javascript:alert(1)&scope=openid',
      `client_id=demo-cli&response_type=code&redirect_uri=http://127.0.0.1/callback&scope=${encodeURIComponent('<script>')}`,
    ]) {
      const res = await browser.request(`${server.issuer}/auth?${query}`);
      assert.ok(res.status === 400 || res.status === 303, `${query}: status ${res.status}`);
      if (res.status === 303) {
        const location = new URL(res.headers.get('location')!);
        assert.equal(location.origin, 'http://127.0.0.1', 'errors only go to a registered redirect URI');
        // Errors for response_type=token travel in the fragment (its default response mode).
        const params = location.hash ? new URLSearchParams(location.hash.slice(1)) : location.searchParams;
        assert.ok(params.get('error'), query);
      } else {
        const page = await res.text();
        assert.doesNotMatch(page, /<script>/, 'reflected input is escaped');
      }
    }
  });

  it('interaction pages: unknown or expired interactions get an error page', async () => {
    const browser = new Browser();
    for (const path of ['/interaction/unknown', '/interaction/%00%ff', `/interaction/${'x'.repeat(5000)}`]) {
      const res = await browser.request(`${server.issuer}${path}`);
      assert.equal(res.status, 400, path);
      assert.match(await res.text(), /expired or was opened in another browser/);
    }
    const post = await browser.request(`${server.issuer}/interaction/unknown/login`, { form: { username: 'alice', password: 'alice-password', csrf: 'x' } });
    assert.equal(post.status, 400);
  });

  it('introspection and revocation: unauthenticated callers and garbage tokens', async () => {
    await expectOAuthError(await post('/token/introspection', 'token=abc'), 400, 'invalid_request');
    const intro = await post('/token/introspection', 'token=abc', { ...FORM, authorization: basic('demo-portal', 'demo-portal-secret') });
    assert.equal(intro.status, 200);
    assert.deepEqual(await intro.json(), { active: false });
    const revoke = await post('/token/revocation', 'token=abc', { ...FORM, authorization: basic('demo-portal', 'demo-portal-secret') });
    assert.equal(revoke.status, 200, 'RFC 7009 §2.2: invalid tokens do not cause an error');
  });

  it('userinfo: missing, forged and audience-bound tokens get RFC 6750 errors', async () => {
    const missing = await fetch(`${server.issuer}/me`);
    assert.equal(missing.status, 401);
    assert.match(missing.headers.get('www-authenticate')!, /^Bearer /);
    const forged = await fetch(`${server.issuer}/me`, { headers: { authorization: 'Bearer forged' } });
    assert.equal(forged.status, 401);
    assert.match(forged.headers.get('www-authenticate')!, /error="invalid_token"/);
  });

  it('unknown paths and methods are 404/405 in JSON or HTML, not 500', async () => {
    const json = await fetch(`${server.issuer}/no/such/path`, { headers: { accept: 'application/json' } });
    assert.equal(json.status, 404);
    assert.match(json.headers.get('x-request-id') ?? '', /^[0-9a-f-]{36}$/, 'failures carry a request id to quote');
    assert.equal((await fetch(`${server.issuer}/healthz`)).headers.get('x-request-id'), null);
    const method = await fetch(`${server.issuer}/healthz`, { method: 'DELETE' });
    assert.equal(method.status, 405);
    const jwks = await fetch(`${server.issuer}/jwks`, { method: 'POST' });
    assert.ok(jwks.status === 404 || jwks.status === 405, `status ${jwks.status}`);
  });
});
