/**
 * A refresh that is refused for what it asks (a resource or scope the grant
 * does not cover) leaves the refresh token as it was: the next, correct
 * refresh works (issue 15: the refused refresh used to consume the token, so
 * the next use counted as a reuse and revoked the grant).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type * as oidc from 'openid-client';
import { authorizationCodeFlow, Browser, rp, startServer, type TestServer } from '../support/harness.ts';

const REDIRECT = 'http://127.0.0.1/callback';

describe('a refused refresh does not use up the refresh token', () => {
  let server: TestServer;
  let cli: oidc.Configuration;
  const browser = new Browser();

  before(async () => {
    server = await startServer({ redis: true });
    cli = await rp(server.issuer, 'demo-cli');
  });
  after(() => server.cleanup());

  async function refresh(refreshToken: string, extra: Record<string, string> = {}): Promise<{ status: number; body: { error?: string; refresh_token?: string; access_token?: string } }> {
    const res = await fetch(`${server.issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ client_id: 'demo-cli', grant_type: 'refresh_token', refresh_token: refreshToken, ...extra }),
    });
    return { status: res.status, body: await res.json() as { error?: string } };
  }

  async function refreshToken(resource?: string, scope = 'openid offline_access'): Promise<string> {
    const tokens = await authorizationCodeFlow(cli, {
      redirectUri: REDIRECT, scope, username: 'alice', password: 'alice-password', browser, ...(resource ? { resource } : {}),
    });
    assert.ok(tokens.refresh_token);
    return tokens.refresh_token;
  }

  for (const [what, extra, error] of [
    ['a resource the grant does not cover', { resource: 'https://ml.demo' }, 'invalid_target'],
    ['a resource no server knows', { resource: 'https://nowhere.example' }, 'invalid_target'],
    ['a scope the grant does not hold', { scope: 'openid offline_access email' }, 'invalid_scope'],
  ] as const) {
    it(`refuses ${what} and the token still works`, async () => {
      const rt = await refreshToken();
      const refused = await refresh(rt, extra);
      assert.equal(refused.status, 400);
      assert.equal(refused.body.error, error);
      const next = await refresh(rt);
      assert.equal(next.status, 200, `the next refresh works: ${JSON.stringify(next.body)}`);
      assert.ok(next.body.refresh_token && next.body.refresh_token !== rt, 'and rotates the token as usual');
      assert.equal((await refresh(next.body.refresh_token)).status, 200, 'the grant was not revoked');
    });
  }

  it('refuses another resource for a token issued for one, and the token still works for its own', async () => {
    const rt = await refreshToken('https://storage.demo', 'openid offline_access storage.read:/store/cms');
    const refused = await refresh(rt, { resource: 'https://sync.demo' });
    assert.equal(refused.status, 400);
    assert.equal(refused.body.error, 'invalid_target');
    const next = await refresh(rt, { resource: 'https://storage.demo' });
    assert.equal(next.status, 200, JSON.stringify(next.body));
    const [, payload] = next.body.access_token!.split('.');
    assert.equal(JSON.parse(Buffer.from(payload!, 'base64url').toString()).aud, 'https://storage.demo');
  });
});
