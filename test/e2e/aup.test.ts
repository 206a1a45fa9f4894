import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as oidc from 'openid-client';
import {
  adminApi, adminToken, approveOnDevicePage, authorizationCodeFlow, Browser, formAction, hiddenInput, pkceAuthorizationUrl, rp, startServer, type TestServer,
} from '../support/harness.ts';

/**
 * The Acceptable Use Policy: asked after login and before consent, again
 * when its version changes, recorded on the account (admin API), and no
 * grant issues a token to a user who has not accepted the current version.
 */
const PORTAL_REDIRECT = 'http://localhost:3000/callback';
const ORCHESTRATOR = 'https://orchestrator.demo';
const EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const AT = 'urn:ietf:params:oauth:token-type:access_token';

describe('the acceptable use policy', () => {
  let server: TestServer;
  let version = '1';
  const alice = new Browser();

  before(async () => {
    server = await startServer({
      redis: true,
      configure: (config) => {
        config.aup = { version, text: 'Use the platform for research only.\n\nReport incidents.', url: 'https://example.org/aup' };
      },
    });
  });
  after(() => server.cleanup());

  const token = async (client: string, secret: string | undefined, params: Record<string, string>) => {
    const res = await fetch(`${server.issuer}/token`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        ...(secret ? { authorization: `Basic ${Buffer.from(`${client}:${secret}`).toString('base64')}` } : {}),
      },
      body: new URLSearchParams(secret ? params : { ...params, client_id: client }),
    });
    return { status: res.status, body: await res.json() as { access_token?: string; refresh_token?: string; error?: string; error_description?: string } };
  };
  const bump = async (to: string) => {
    version = to;
    server = await server.restart();
  };

  it('shows the policy after login and before consent; declining gets no code', async () => {
    const portal = await rp(server.issuer, 'demo-portal', 'demo-portal-secret');
    const { url } = await pkceAuthorizationUrl(portal, { redirect_uri: PORTAL_REDIRECT, scope: 'openid', state: 's' });
    const browser = new Browser();
    const start = await browser.follow(url, () => false);
    const login = await start.res.text();
    const afterLogin = await browser.request(new URL(formAction(login, '/login'), start.url), { form: { username: 'bob', password: 'bob-password', csrf: hiddenInput(login, 'csrf') } });
    const step = await browser.follow(new URL(afterLogin.headers.get('location')!, start.url), (u) => u.href.startsWith(PORTAL_REDIRECT));
    const page = await step.res.text();
    assert.match(page, /Acceptable use policy/);
    assert.match(page, /Use the platform for research only\./);
    assert.match(page, /href="https:\/\/example.org\/aup"/);
    assert.doesNotMatch(page, /Allow access/);
    const forged = await browser.request(new URL(formAction(page, '/aup'), step.url), { form: { csrf: 'x'.repeat(43), version: '1' } });
    assert.equal(forged.status, 403);
    const declined = await browser.request(new URL(formAction(page, '/abort'), step.url), { form: { csrf: hiddenInput(page, 'csrf') } });
    const back = await browser.follow(new URL(declined.headers.get('location')!, step.url), (u) => u.href.startsWith(PORTAL_REDIRECT));
    assert.equal(back.url.searchParams.get('error'), 'access_denied');
    const bob = (await server.fedgate.accounts.findByUsername('bob'))!;
    assert.equal(bob.aup, undefined);
  });

  let refreshToken: string;
  let pendingCode: { code: string; verifier: string };
  let deviceCode: string;
  let aliceToken: string;

  it('records the acceptance (admin API: aup {version, acceptedAt}), then tokens are issued', async () => {
    const portal = await rp(server.issuer, 'demo-portal', 'demo-portal-secret');
    const tokens = await authorizationCodeFlow(portal, {
      redirectUri: PORTAL_REDIRECT, scope: 'openid offline_access compute.read', resource: ORCHESTRATOR, username: 'alice', password: 'alice-password', browser: alice,
    });
    refreshToken = tokens.refresh_token!;
    aliceToken = tokens.access_token;
    const admin = await adminToken(server.issuer);
    const view = await (await fetch(`${adminApi(server.issuer)}/accounts/alice`, { headers: { authorization: `Bearer ${admin}` } })).json() as { aup: { version: string; acceptedAt: string } };
    assert.equal(view.aup.version, '1');
    assert.ok(Math.abs(Date.parse(view.aup.acceptedAt) - Date.now()) < 60_000);
    const events = await server.fedgate.audit.recent(20);
    const aliceId = (await server.fedgate.accounts.findByUsername('alice'))!.id;
    assert.ok(events.some((e) => e.type === 'aup.accepted' && e.actor === aliceId));
    const bobView = await (await fetch(`${adminApi(server.issuer)}/accounts/bob`, { headers: { authorization: `Bearer ${admin}` } })).json() as { aup: unknown };
    assert.equal(bobView.aup, null);

    // Artifacts issued under version 1, redeemed after the change.
    const { url, verifier } = await pkceAuthorizationUrl(portal, { redirect_uri: PORTAL_REDIRECT, scope: 'openid', state: 'later' });
    const step = await alice.follow(url, (u) => u.href.startsWith(PORTAL_REDIRECT));
    pendingCode = { code: step.url.searchParams.get('code')!, verifier };
    assert.ok(pendingCode.code, 'a session and grant: straight back with a code');
    const cli = await rp(server.issuer, 'demo-cli');
    const device = await oidc.initiateDeviceAuthorization(cli, { scope: 'openid' });
    await approveOnDevicePage(new Browser(), device.verification_uri, device.user_code, { username: 'alice', password: 'alice-password' });
    deviceCode = device.device_code;
  });

  it('after a version change, refuses every grant until accepted again: code, refresh, device code, token exchange', async () => {
    await bump('2');
    const reason = 'the acceptable use policy version 2 has not been accepted';
    const code = await token('demo-portal', 'demo-portal-secret', { grant_type: 'authorization_code', code: pendingCode.code, code_verifier: pendingCode.verifier, redirect_uri: PORTAL_REDIRECT });
    assert.equal(code.status, 400);
    assert.equal(code.body.error, 'invalid_grant');
    assert.equal(code.body.error_description, reason);
    const refreshed = await token('demo-portal', 'demo-portal-secret', { grant_type: 'refresh_token', refresh_token: refreshToken });
    assert.equal(refreshed.status, 400);
    assert.deepEqual([refreshed.body.error, refreshed.body.error_description], ['invalid_grant', reason]);
    const device = await token('demo-cli', undefined, { grant_type: 'urn:ietf:params:oauth:grant-type:device_code', device_code: deviceCode });
    assert.equal(device.status, 400);
    assert.deepEqual([device.body.error, device.body.error_description], ['invalid_grant', reason]);
    const own = await token('demo-portal', 'demo-portal-secret', { grant_type: 'client_credentials', resource: ORCHESTRATOR, scope: 'compute.read' });
    assert.equal(own.status, 200, 'a client\'s own token is no user\'s');
    const exchanged = await token('demo-portal', 'demo-portal-secret', {
      grant_type: EXCHANGE, subject_token: aliceToken, subject_token_type: AT, actor_token: own.body.access_token!, actor_token_type: AT, audience: ORCHESTRATOR,
    });
    assert.equal(exchanged.status, 400);
    assert.equal(exchanged.body.error, 'invalid_grant');
    assert.match(exchanged.body.error_description!, /acceptable use policy version 2 has not been accepted/);
  });

  it('asks a signed-in user again ("has changed"), and issues tokens once accepted', async () => {
    const portal = await rp(server.issuer, 'demo-portal', 'demo-portal-secret');
    const { url } = await pkceAuthorizationUrl(portal, { redirect_uri: PORTAL_REDIRECT, scope: 'openid', state: 's2' });
    const step = await alice.follow(url, (u) => u.href.startsWith(PORTAL_REDIRECT));
    const page = await step.res.text();
    assert.match(page, /The acceptable use policy has changed/);
    assert.equal(hiddenInput(page, 'version'), '2');
    const tokens = await authorizationCodeFlow(portal, {
      redirectUri: PORTAL_REDIRECT, scope: 'openid offline_access compute.read', resource: ORCHESTRATOR, username: 'alice', password: 'alice-password', browser: alice,
    });
    assert.ok(tokens.access_token);
    assert.equal((await server.fedgate.accounts.findByUsername('alice'))!.aup?.version, '2');
    const refreshed = await token('demo-portal', 'demo-portal-secret', { grant_type: 'refresh_token', refresh_token: tokens.refresh_token! });
    assert.equal(refreshed.status, 200, JSON.stringify(refreshed.body));
  });
});
