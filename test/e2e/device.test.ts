import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as oidc from 'openid-client';
import { approveOnDevicePage, Browser, formAction, hiddenInput, rp, startServer, type TestServer } from '../support/harness.ts';

describe('device authorization grant (RFC 8628)', () => {
  let server: TestServer;
  let cli: oidc.Configuration;

  before(async () => {
    server = await startServer({ redis: true });
    cli = await rp(server.issuer, 'demo-cli');
  });
  after(() => server.cleanup());

  it('lets alice approve a CLI on the user-code page while the CLI polls for tokens', async () => {
    const device = await oidc.initiateDeviceAuthorization(cli, { scope: 'openid profile offline_access' });
    assert.match(device.user_code, /^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$/);
    assert.equal(device.verification_uri, `${server.issuer}/device`);
    const polling = oidc.pollDeviceAuthorizationGrant(cli, { ...device, interval: 1 });
    const last = await approveOnDevicePage(new Browser(), device.verification_uri, device.user_code, { username: 'alice', password: 'alice-password' });
    assert.match(last, /signed in/i);
    const tokens = await polling;
    assert.equal(tokens.claims()?.preferred_username ?? (await oidc.fetchUserInfo(cli, tokens.access_token, tokens.claims()!.sub)).preferred_username, 'alice');
    assert.ok(tokens.refresh_token, 'offline_access on the device flow gives a refresh token');
  });

  it('gives the admin an admin API token as the README walkthrough asks for it (scope=openid fedgate.admin, resource=<issuer>/admin/api)', async () => {
    const resource = `${server.issuer}/admin/api`;
    const device = await oidc.initiateDeviceAuthorization(cli, { scope: 'openid fedgate.admin', resource });
    const polling = oidc.pollDeviceAuthorizationGrant(cli, { ...device, interval: 1 });
    await approveOnDevicePage(new Browser(), device.verification_uri, device.user_code, { username: 'admin', password: 'admin-password' });
    const tokens = await polling;
    assert.equal(tokens.scope, 'fedgate.admin');
    const accounts = await fetch(`${server.issuer}/admin/api/accounts`, { headers: { authorization: `Bearer ${tokens.access_token}` } });
    assert.equal(accounts.status, 200);
  });

  it('rejects a wrong user code on the page without a server error', async () => {
    const browser = new Browser();
    const input = await browser.request(`${server.issuer}/device`);
    const page = await input.text();
    const res = await browser.request(new URL(formAction(page, '/device'), server.issuer), { form: { xsrf: hiddenInput(page, 'xsrf'), user_code: 'BCDF-GHJK' } });
    assert.ok(res.status >= 400 && res.status < 500, `status ${res.status}`);
    assert.match(await res.text(), /not valid or has expired/);
  });

  it('tells a polling client authorization_pending, then access_denied when the user aborts', async () => {
    const device = await oidc.initiateDeviceAuthorization(cli, { scope: 'openid' });
    const poll = () => fetch(`${server.issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:device_code', device_code: device.device_code, client_id: 'demo-cli' }),
    });
    const pending = await poll();
    assert.equal(pending.status, 400);
    assert.equal((await pending.json() as { error: string }).error, 'authorization_pending');

    const last = await approveOnDevicePage(new Browser(), device.verification_uri, device.user_code, { username: 'bob', password: 'bob-password' }, 'deny');
    assert.match(last, /sign-in request was cancelled/i);

    const denied = await poll();
    assert.equal(denied.status, 400);
    assert.equal((await denied.json() as { error: string }).error, 'access_denied');
  });
});
