import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as oidc from 'openid-client';
import { authorizationCodeFlow, Browser, pkceAuthorizationUrl, decodeJwt, hiddenInput, loginThroughPages, rp, startServer, type TestServer } from '../support/harness.ts';

// A native client's loopback redirect on a port it picked at run time (RFC 8252 §7.3).
const CLI_REDIRECT = 'http://127.0.0.1:49152/callback';

describe('authorization code + PKCE, consent, refresh rotation', () => {
  let server: TestServer;
  let cli: oidc.Configuration;
  let portal: oidc.Configuration;

  before(async () => {
    server = await startServer({ redis: true });
    cli = await rp(server.issuer, 'demo-cli');
    portal = await rp(server.issuer, 'demo-portal', 'demo-portal-secret');
  });
  after(() => server.cleanup());

  it('logs alice in through the login and consent pages and issues verified ID and access tokens', async () => {
    const tokens = await authorizationCodeFlow(cli, {
      redirectUri: CLI_REDIRECT, scope: 'openid profile email groups offline_access', username: 'alice', password: 'alice-password',
    });
    // openid-client has verified the ID token's signature (against the JWKS), issuer, audience and nonce/state.
    const claims = tokens.claims()!;
    assert.equal(claims.iss, server.issuer);
    assert.equal(claims.aud, 'demo-cli');
    assert.equal(decodeJwt(tokens.id_token!).header.alg, 'ES256');
    assert.ok(tokens.refresh_token, 'offline_access yields a refresh token');
    const userinfo = await oidc.fetchUserInfo(cli, tokens.access_token, claims.sub);
    assert.equal(userinfo.preferred_username, 'alice');
    assert.equal(userinfo.email, 'alice@fedgate.demo');
    assert.deepEqual(userinfo.groups, ['/cms', '/cms/production']);
  });

  it('does not ask a web client for consent again for what was already granted', async () => {
    const browser = new Browser();
    const redirectUri = 'http://localhost:3000/callback';
    await authorizationCodeFlow(portal, { redirectUri, scope: 'openid profile', username: 'alice', password: 'alice-password', browser });
    // Same browser (session), same scopes: straight back to the client, no page in between.
    // (Native clients are asked every time: their redirect can be claimed by any local app, RFC 8252 §8.6.)
    const { url } = await pkceAuthorizationUrl(portal, { redirect_uri: redirectUri, scope: 'openid profile' });
    const { url: landed } = await browser.follow(url, (u) => u.href.startsWith(redirectUri));
    assert.ok(landed.href.startsWith(redirectUri), `expected redirect to client, got ${landed.href}`);
    assert.ok(landed.searchParams.get('code'));
  });

  it('completes consent even when the grant it extends disappeared meanwhile', async () => {
    const browser = new Browser();
    const redirectUri = 'http://localhost:3000/callback';
    await authorizationCodeFlow(portal, { redirectUri, scope: 'openid', username: 'bob', password: 'bob-password', browser });
    // More scopes than granted: a consent interaction that extends the existing grant.
    const { url, verifier } = await pkceAuthorizationUrl(portal, { redirect_uri: redirectUri, scope: 'openid email' });
    const { res, url: consentUrl } = await browser.follow(url, (u) => u.href.startsWith(redirectUri));
    const page = await res.text();
    assert.match(page, /Allow access/);
    const interaction = await server.store.get<{ grantId?: string }>(`oidc:Interaction:${consentUrl.pathname.split('/').pop()}`);
    assert.ok(interaction?.grantId, 'the interaction extends a grant');
    await server.store.delete(`oidc:Grant:${interaction.grantId}`);
    const confirmed = await browser.request(new URL(`${consentUrl.pathname}/confirm`, consentUrl), { form: { csrf: hiddenInput(page, 'csrf') } });
    assert.equal(confirmed.status, 303);
    // The new grant lacks what the deleted one held (openid), so consent is asked once more, then the flow completes.
    const callback = await loginThroughPages(browser, new URL(confirmed.headers.get('location')!, consentUrl), redirectUri, { username: 'bob', password: 'bob-password' });
    const tokens = await oidc.authorizationCodeGrant(portal, callback, { pkceCodeVerifier: verifier });
    assert.equal((await oidc.fetchUserInfo(portal, tokens.access_token, tokens.claims()!.sub)).email, 'bob@fedgate.demo');
  });

  it('rotates refresh tokens and revokes the whole grant when a rotated one is replayed', async () => {
    const tokens = await authorizationCodeFlow(cli, {
      redirectUri: CLI_REDIRECT, scope: 'openid offline_access', username: 'bob', password: 'bob-password',
    });
    const first = tokens.refresh_token!;
    const second = await oidc.refreshTokenGrant(cli, first);
    assert.ok(second.refresh_token && second.refresh_token !== first, 'a new refresh token on every use');
    const third = await oidc.refreshTokenGrant(cli, second.refresh_token!);
    assert.ok(third.access_token);

    // Replaying the first (already rotated) token is refused ...
    await assert.rejects(oidc.refreshTokenGrant(cli, first), (err: oidc.ResponseBodyError) => err.error === 'invalid_grant');
    // ... and takes the newest refresh token and the access tokens of the grant down with it.
    await assert.rejects(oidc.refreshTokenGrant(cli, third.refresh_token!), (err: oidc.ResponseBodyError) => err.error === 'invalid_grant');
    const introspection = await oidc.tokenIntrospection(portal, third.access_token);
    assert.equal(introspection.active, false);
  });

  it('issues RFC 9068 JWT access tokens for a resource server, in its token profile', async () => {
    const storage = await authorizationCodeFlow(portal, {
      redirectUri: 'http://localhost:3000/callback', scope: 'openid wlcg.groups storage.read:/store/cms storage.modify:/store/cms/user',
      resource: 'https://storage.demo', username: 'alice', password: 'alice-password',
    });
    const { header, payload } = decodeJwt(storage.access_token);
    assert.equal(header.typ, 'at+jwt');
    assert.equal(payload.aud, 'https://storage.demo');
    assert.equal(payload['wlcg.ver'], '1.0');
    assert.deepEqual(payload['wlcg.groups'], ['/cms', '/cms/production']);
    assert.equal(payload.scope, 'wlcg.groups storage.read:/store/cms storage.modify:/store/cms/user');
    assert.equal(payload.client_id, 'demo-portal');

    const sync = await authorizationCodeFlow(portal, {
      redirectUri: 'http://localhost:3000/callback', scope: 'openid sync.read', resource: 'https://sync.demo', username: 'alice', password: 'alice-password',
    });
    assert.deepEqual(decodeJwt(sync.access_token).payload.eduperson_entitlement, [
      'urn:geant:fedgate.demo:group:cms#fedgate.demo',
      'urn:geant:fedgate.demo:group:cms:production#fedgate.demo',
    ]);
    const ml = await authorizationCodeFlow(portal, {
      redirectUri: 'http://localhost:3000/callback', scope: 'openid ml.inference', resource: 'https://ml.demo', username: 'bob', password: 'bob-password',
    });
    assert.deepEqual(decodeJwt(ml.access_token).payload.groups, ['/atlas', '/ml-users']);
  });

  it('refuses a public client without PKCE', async () => {
    const url = oidc.buildAuthorizationUrl(cli, { redirect_uri: CLI_REDIRECT, scope: 'openid' });
    const res = await new Browser().request(url);
    assert.equal(res.status, 303);
    const location = new URL(res.headers.get('location')!);
    assert.ok(location.href.startsWith(CLI_REDIRECT));
    assert.equal(location.searchParams.get('error'), 'invalid_request');
    assert.match(location.searchParams.get('error_description')!, /PKCE/);
  });

  it('refuses an unregistered redirect URI with an error page, never redirecting there', async () => {
    const url = oidc.buildAuthorizationUrl(cli, {
      redirect_uri: 'https://attacker.example/callback', scope: 'openid', code_challenge: 'x'.repeat(43), code_challenge_method: 'S256',
    });
    const res = await new Browser().request(url);
    assert.equal(res.status, 400);
    assert.equal(res.headers.get('location'), null);
    const page = await res.text();
    assert.match(page, /invalid_redirect_uri/);
    assert.doesNotMatch(page, /at \w+ \(|node_modules/, 'no stack trace');
  });

  it('rejects a replayed authorization code', async () => {
    const { url, verifier } = await pkceAuthorizationUrl(cli, { redirect_uri: CLI_REDIRECT, scope: 'openid' });
    const callback = await loginThroughPages(new Browser(), url, CLI_REDIRECT, { username: 'bob', password: 'bob-password' });
    const tokens = await oidc.authorizationCodeGrant(cli, callback, { pkceCodeVerifier: verifier, idTokenExpected: true });
    await assert.rejects(
      oidc.authorizationCodeGrant(cli, callback, { pkceCodeVerifier: verifier }),
      (err: oidc.ResponseBodyError) => err.error === 'invalid_grant' && err.status === 400,
    );
    // RFC 6749 §4.1.2: a replayed code revokes the tokens issued from it.
    const introspection = await oidc.tokenIntrospection(portal, tokens.access_token);
    assert.equal(introspection.active, false);
  });

  it('reports access_denied to the client when the user denies consent', async () => {
    const { url } = await pkceAuthorizationUrl(cli, { redirect_uri: CLI_REDIRECT, scope: 'openid email' });
    const callback = await loginThroughPages(new Browser(), url, CLI_REDIRECT, { username: 'bob', password: 'bob-password', consent: 'deny' });
    assert.equal(callback.searchParams.get('error'), 'access_denied');
  });

  it('shows an error on a wrong password, and a forged form without the CSRF token is refused', async () => {
    const { url } = await pkceAuthorizationUrl(cli, { redirect_uri: CLI_REDIRECT, scope: 'openid' });
    const browser = new Browser();
    const { res, url: loginUrl } = await browser.follow(url, () => false);
    const page = await res.text();
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-security-policy')!, /default-src 'none'/);
    const csrf = hiddenInput(page, 'csrf');
    const wrong = await browser.request(new URL(`${loginUrl.pathname}/login`, loginUrl), { form: { username: 'alice', password: 'nope', csrf } });
    assert.equal(wrong.status, 401);
    assert.match(await wrong.text(), /username or password is not correct/);
    const unknown = await browser.request(new URL(`${loginUrl.pathname}/login`, loginUrl), { form: { username: 'nobody', password: 'nope', csrf } });
    assert.match(await unknown.text(), /username or password is not correct/, 'same answer for unknown users');
    const forged = await browser.request(new URL(`${loginUrl.pathname}/login`, loginUrl), { form: { username: 'alice', password: 'alice-password', csrf: 'forged' } });
    assert.equal(forged.status, 403);
    const events = await server.fedgate.audit.recent(50);
    assert.ok(events.some((e) => e.type === 'login.failed' && e.actor === 'username:alice' && e.detail?.reason === 'bad_credentials'));
  });

  it('never writes passwords, codes or tokens into the logs', async () => {
    const { url, verifier } = await pkceAuthorizationUrl(cli, { redirect_uri: CLI_REDIRECT, scope: 'openid offline_access', prompt: 'consent' });
    const callback = await loginThroughPages(new Browser(), url, CLI_REDIRECT, { username: 'alice', password: 'alice-password' });
    const tokens = await oidc.authorizationCodeGrant(cli, callback, { pkceCodeVerifier: verifier });
    await server.fedgate.audit.flush();
    const logs = server.logs.text;
    assert.match(logs, /audit login success/, 'the flow was logged');
    for (const secret of ['alice-password', 'bob-password', 'admin-password', callback.searchParams.get('code')!, verifier, tokens.access_token, tokens.refresh_token!, tokens.id_token!.split('.')[2]!]) {
      assert.ok(!logs.includes(secret), `a secret leaked into the logs: ${secret.slice(0, 6)}...`);
    }
  });

  it('locks a username out after repeated failures', async () => {
    const { url } = await pkceAuthorizationUrl(cli, { redirect_uri: CLI_REDIRECT, scope: 'openid' });
    const browser = new Browser();
    const { res, url: loginUrl } = await browser.follow(url, () => false);
    const csrf = hiddenInput(await res.text(), 'csrf');
    const attempt = (password: string) => browser.request(new URL(`${loginUrl.pathname}/login`, loginUrl), { form: { username: 'admin', password, csrf } });
    for (let i = 0; i < server.config.login.maxFailures; i += 1) assert.equal((await attempt('wrong')).status, 401);
    const locked = await attempt('admin-password');
    assert.equal(locked.status, 429, 'even the right password waits out the lockout');
    await server.store.delete(`login-failures:user:${(await import('node:crypto')).createHash('sha256').update('admin').digest('base64url')}`);
  });
});
