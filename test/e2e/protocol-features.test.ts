import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { calculateJwkThumbprint, exportJWK, generateKeyPair } from 'jose';
import * as oidc from 'openid-client';
import { authorizationCodeFlow, Browser, pkceAuthorizationUrl, decodeJwt, formAction, hiddenInput, loginThroughPages, rp, startServer, type TestServer } from '../support/harness.ts';

describe('discovery, DPoP, PAR, logout and artifact lifetimes', () => {
  let server: TestServer;
  let service: oidc.Configuration;
  let portal: oidc.Configuration;

  before(async () => {
    server = await startServer({ redis: true });
    service = await rp(server.issuer, 'demo-service', 'demo-service-secret');
    portal = await rp(server.issuer, 'demo-portal', 'demo-portal-secret');
  });
  after(() => server.cleanup());

  it('advertises every supported capability in discovery', async () => {
    const meta = portal.serverMetadata();
    for (const endpoint of ['authorization_endpoint', 'token_endpoint', 'userinfo_endpoint', 'jwks_uri', 'introspection_endpoint', 'revocation_endpoint',
      'device_authorization_endpoint', 'registration_endpoint', 'pushed_authorization_request_endpoint', 'end_session_endpoint'] as const) {
      assert.ok(meta[endpoint]?.startsWith(server.issuer), endpoint);
    }
    assert.deepEqual(meta.code_challenge_methods_supported, ['S256']);
    assert.deepEqual(meta.response_types_supported, ['code']);
    assert.deepEqual(meta.grant_types_supported?.slice().sort(), ['authorization_code', 'client_credentials', 'refresh_token', 'urn:ietf:params:oauth:grant-type:device_code', 'urn:ietf:params:oauth:grant-type:token-exchange']);
    assert.ok(meta.dpop_signing_alg_values_supported?.includes('ES256'));
    assert.ok(meta.scopes_supported?.includes('offline_access'));
  });

  it('binds access tokens to a DPoP key (RFC 9449)', async () => {
    const keyPair = await generateKeyPair('ES256', { extractable: true });
    const DPoP = oidc.getDPoPHandle(service, keyPair);
    const tokens = await oidc.clientCredentialsGrant(service, { resource: 'https://storage.demo', scope: 'storage.read:/' }, { DPoP });
    assert.equal(tokens.token_type.toLowerCase(), 'dpop');
    const cnf = decodeJwt(tokens.access_token).payload.cnf as { jkt: string };
    assert.equal(cnf.jkt, await calculateJwkThumbprint(await exportJWK(keyPair.publicKey)));
  });

  it('accepts pushed authorization requests (RFC 9126)', async () => {
    const verifier = oidc.randomPKCECodeVerifier();
    const url = await oidc.buildAuthorizationUrlWithPAR(portal, {
      redirect_uri: 'http://localhost:3000/callback', scope: 'openid', code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256',
    });
    assert.match(url.searchParams.get('request_uri')!, /^urn:ietf:params:oauth:request_uri:/);
    const callback = await loginThroughPages(new Browser(), url, 'http://localhost:3000/callback', { username: 'alice', password: 'alice-password' });
    const tokens = await oidc.authorizationCodeGrant(portal, callback, { pkceCodeVerifier: verifier });
    assert.ok(tokens.id_token);
  });

  it('signs out through RP-initiated logout and returns to a registered post-logout URI', async () => {
    const browser = new Browser();
    const tokens = await authorizationCodeFlow(portal, { redirectUri: 'http://localhost:3000/callback', scope: 'openid', username: 'bob', password: 'bob-password', browser });
    const endSession = oidc.buildEndSessionUrl(portal, { id_token_hint: tokens.id_token!, post_logout_redirect_uri: 'http://localhost:3000/', state: 'bye' });
    const confirm = await browser.request(endSession);
    assert.equal(confirm.status, 200);
    const page = await confirm.text();
    assert.match(page, /Sign out of/);
    const res = await browser.request(new URL(formAction(page, '/session/end/confirm'), server.issuer), { form: { xsrf: hiddenInput(page, 'xsrf'), logout: 'yes' } });
    assert.equal(res.status, 303);
    const location = new URL(res.headers.get('location')!);
    assert.equal(`${location.origin}${location.pathname}`, 'http://localhost:3000/');
    assert.equal(location.searchParams.get('state'), 'bye');
    // The session is gone: a new authorization request asks for a login again.
    const { url: again } = await pkceAuthorizationUrl(portal, { redirect_uri: 'http://localhost:3000/callback', scope: 'openid' });
    const { res: loginPage } = await browser.follow(again, (u) => u.href.startsWith('http://localhost:3000/'));
    assert.match(await loginPage.text(), /name="password"/);
    const events = await server.fedgate.audit.recent(50);
    assert.ok(events.some((e) => e.type === 'logout'));
  });

  it('stores every artifact with the lifetime of its token', async () => {
    const opaque = await oidc.clientCredentialsGrant(service, {});
    const ttl = await server.store.ttl(`oidc:ClientCredentials:${opaque.access_token}`);
    assert.ok(ttl !== undefined && ttl > 3500 && ttl <= 3600, `ttl ${ttl} (the WLCG default of one hour)`);
    const device = await oidc.initiateDeviceAuthorization(await rp(server.issuer, 'demo-cli'), { scope: 'openid' });
    const deviceTtl = await server.store.ttl(`oidc:DeviceCode:${device.device_code}`);
    assert.ok(deviceTtl !== undefined && deviceTtl > 500 && deviceTtl <= 600, `device code ttl ${deviceTtl}`);
  });
});
