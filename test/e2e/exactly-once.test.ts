/**
 * One-time artifacts are used once, even by two requests at the same
 * instant, on one replica or on two (real Redis): of each pair at most one
 * gets tokens, the other is refused with `invalid_grant`, and what a loser
 * of a refresh token, code or device code race sets off is what a
 * sequential reuse sets off: the whole grant is revoked, tokens issued to
 * the winner included. The same holds when a refresh meets the revocation
 * of its own token, and for initial access tokens.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Client, Provider } from 'oidc-provider';
import * as oidc from 'openid-client';
import { createInitialAccessToken } from '../../src/admin/routes.ts';
import { approveOnDevicePage, Browser, loginThroughPages, pkceAuthorizationUrl, rp, startReplicas, type TestServer } from '../support/harness.ts';

const PAIRS = 100;
/** Pairs prepared ahead of racing them (codes live a minute). */
const BATCH = 10;
const REDIRECT = 'http://127.0.0.1/callback';
const ALICE = { username: 'alice', password: 'alice-password' };

interface TokenAnswer {
  status: number;
  body: { error?: string; access_token?: string; refresh_token?: string };
}

async function token(issuer: string, params: Record<string, string>): Promise<TokenAnswer> {
  const res = await fetch(`${issuer}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ client_id: 'demo-cli', ...params }),
  });
  return { status: res.status, body: await res.json() as TokenAnswer['body'] };
}

describe('exactly-once use of one-time artifacts (real Redis, two replicas)', () => {
  let a: TestServer;
  let b: TestServer;
  let cli: oidc.Configuration;
  const browser = new Browser();

  before(async () => {
    [a, b] = await startReplicas();
    cli = await rp(a.issuer, 'demo-cli');
    // One sign-in; every later authorization only passes the consent page.
    await newCode();
  });
  after(async () => {
    await b?.stop();
    await a?.cleanup();
  });

  /** A fresh authorization code (a fresh grant) through the login and consent pages, and its PKCE verifier. */
  async function newCode(): Promise<{ code: string; verifier: string }> {
    const { url, verifier } = await pkceAuthorizationUrl(cli, { redirect_uri: REDIRECT, scope: 'openid offline_access', prompt: 'consent' });
    const callback = await loginThroughPages(browser, url, REDIRECT, ALICE);
    return { code: callback.searchParams.get('code')!, verifier };
  }

  const redeem = (issuer: string, c: { code: string; verifier: string }) =>
    token(issuer, { grant_type: 'authorization_code', code: c.code, code_verifier: c.verifier, redirect_uri: REDIRECT });

  async function newRefreshToken(): Promise<string> {
    const answer = await redeem(a.issuer, await newCode());
    assert.equal(answer.status, 200);
    return answer.body.refresh_token!;
  }

  /*
   * The races need hundreds of fresh grants: walking the pages for each
   * costs more than the whole race. These make the same artifacts the
   * pages lead to, through oidc-provider's own models on the real store
   * (what its authorization and device endpoints do); the sequential test
   * below and the first artifact of each race come from the pages.
   */
  const offline = 'openid offline_access';
  async function mintGrant(): Promise<{ provider: Provider; client: Client; grantId: string; accountId: string }> {
    const provider = a.fedgate.provider();
    const client = (await provider.Client.find('demo-cli'))!;
    const accountId = (await a.fedgate.accounts.findByUsername('alice'))!.id;
    const grant = new provider.Grant({ accountId, clientId: 'demo-cli' });
    grant.addOIDCScope(offline);
    return { provider, client, accountId, grantId: await grant.save() };
  }
  async function mintCode(): Promise<{ code: string; verifier: string }> {
    const { provider, client, accountId, grantId } = await mintGrant();
    const verifier = oidc.randomPKCECodeVerifier();
    const code = new provider.AuthorizationCode({
      accountId, client, grantId, gty: 'authorization_code', scope: offline, redirectUri: REDIRECT, authTime: Math.floor(Date.now() / 1000),
      codeChallenge: await oidc.calculatePKCECodeChallenge(verifier), codeChallengeMethod: 'S256',
    });
    return { code: await code.save(), verifier };
  }
  async function mintRefreshToken(): Promise<string> {
    const { provider, client, accountId, grantId } = await mintGrant();
    return new provider.RefreshToken({ accountId, client, grantId, scope: offline, gty: 'authorization_code', rotations: 0, authTime: Math.floor(Date.now() / 1000) }).save();
  }
  async function mintApprovedDeviceCode(): Promise<string> {
    const { provider, client, accountId, grantId } = await mintGrant();
    return new provider.DeviceCode({
      accountId, client, grantId, scope: offline, params: { client_id: 'demo-cli', scope: offline }, authTime: Math.floor(Date.now() / 1000),
      userCode: `${Math.random().toString(36).slice(2, 10)}`, deviceInfo: { ip: '127.0.0.1', ua: 'test' },
    }).save();
  }

  async function newApprovedDeviceCode(): Promise<string> {
    const device = await oidc.initiateDeviceAuthorization(cli, { scope: offline });
    const last = await approveOnDevicePage(browser, device.verification_uri, device.user_code, ALICE);
    assert.match(last, /signed in/i);
    return device.device_code;
  }

  /** Every token a pair got is dead: refresh tokens refused, access tokens refused at userinfo. */
  async function assertFamilyRevoked(answers: TokenAnswer[]): Promise<void> {
    for (const { body } of answers) {
      if (body.refresh_token) {
        const again = await token(a.issuer, { grant_type: 'refresh_token', refresh_token: body.refresh_token });
        assert.equal(again.status, 400, 'the winner\'s refresh token went with the grant');
        assert.equal(again.body.error, 'invalid_grant');
      }
      if (body.access_token) {
        const info = await fetch(`${b.issuer}/me`, { headers: { authorization: `Bearer ${body.access_token}` } });
        assert.equal(info.status, 401, 'the winner\'s access token went with the grant');
      }
    }
  }

  /**
   * Races two uses of each of `PAIRS` artifacts (one to `first`, one to
   * `second`): the first artifact from `real` (the pages), the others from
   * `mint`, prepared in batches.
   */
  async function race<T>(real: () => Promise<T>, mint: () => Promise<T>, use: (issuer: string, artifact: T) => Promise<TokenAnswer>, second: () => string): Promise<void> {
    for (let done = 0; done < PAIRS; done += BATCH) {
      const artifacts = await Promise.all(Array.from({ length: BATCH }, (_, i) => (done + i === 0 ? real() : mint())));
      for (const artifact of artifacts) {
        const answers = await Promise.all([use(a.issuer, artifact), use(second(), artifact)]);
        const ok = answers.filter((x) => x.status === 200);
        assert.ok(ok.length <= 1, `two concurrent uses both got tokens: ${JSON.stringify(answers.map((x) => x.status))}`);
        for (const refused of answers.filter((x) => x.status !== 200)) {
          assert.equal(refused.status, 400);
          assert.equal(refused.body.error, 'invalid_grant');
        }
        await assertFamilyRevoked(answers);
      }
    }
  }

  const useRefresh = (issuer: string, refreshToken: string) => token(issuer, { grant_type: 'refresh_token', refresh_token: refreshToken });
  const useDeviceCode = (issuer: string, deviceCode: string) => token(issuer, { grant_type: 'urn:ietf:params:oauth:grant-type:device_code', device_code: deviceCode });

  for (const [where, second] of [['on one replica', () => a.issuer], ['across two replicas', () => b.issuer]] as const) {
    it(`refresh tokens: ${PAIRS} concurrent pairs ${where}`, async () => {
      await race(newRefreshToken, mintRefreshToken, useRefresh, second);
    });

    it(`authorization codes: ${PAIRS} concurrent pairs ${where}`, async () => {
      await race(newCode, mintCode, redeem, second);
    });

    it(`device codes: ${PAIRS} concurrent pairs ${where}`, async () => {
      await race(newApprovedDeviceCode, mintApprovedDeviceCode, useDeviceCode, second);
    });
  }

  it('a sequential reuse of a refresh token still revokes the family', async () => {
    const first = await useRefresh(a.issuer, await newRefreshToken());
    assert.equal(first.status, 200);
    const rt = first.body.refresh_token!;
    const next = await useRefresh(b.issuer, rt);
    assert.equal(next.status, 200, 'one use of a fresh refresh token succeeds');
    const reuse = await useRefresh(a.issuer, rt);
    assert.equal(reuse.status, 400);
    assert.equal(reuse.body.error, 'invalid_grant');
    await assertFamilyRevoked([next]);
  });

  it(`a refresh racing the revocation of its own token leaves nothing alive (${PAIRS} pairs, two replicas)`, async () => {
    for (let i = 0; i < PAIRS; i++) {
      const rt = i === 0 ? await newRefreshToken() : await mintRefreshToken();
      const [refreshed, revoked] = await Promise.all([
        useRefresh(a.issuer, rt),
        fetch(`${b.issuer}/token/revocation`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({ client_id: 'demo-cli', token: rt, token_type_hint: 'refresh_token' }),
        }),
      ]);
      assert.equal(revoked.status, 200);
      if (refreshed.status !== 200) assert.equal(refreshed.body.error, 'invalid_grant');
      await assertFamilyRevoked([refreshed]);
    }
  });

  it('a pushed authorization request is used by one of two concurrent authorizations on two replicas', async () => {
    // demo-portal, a web client: a native one (demo-cli) is asked for consent every time, before the request is used.
    const portalRedirect = 'http://localhost:3000/callback';
    const portal = await rp(a.issuer, 'demo-portal', 'demo-portal-secret');
    await loginThroughPages(browser, (await pkceAuthorizationUrl(portal, { redirect_uri: portalRedirect, scope: 'openid' })).url, portalRedirect, ALICE);
    for (let i = 0; i < 20; i++) {
      const { url } = await pkceAuthorizationUrl(portal, { redirect_uri: portalRedirect, scope: 'openid' });
      const pushed = await fetch(`${a.issuer}/request`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from('demo-portal:demo-portal-secret').toString('base64')}` },
        body: url.searchParams.toString(),
      });
      assert.equal(pushed.status, 201);
      const { request_uri: requestUri } = await pushed.json() as { request_uri: string };
      // The session's grant covers openid: each authorization answers at once.
      const authorize = (issuer: string) => browser.request(`${issuer}/auth?${new URLSearchParams({ client_id: 'demo-portal', request_uri: requestUri })}`);
      const answers = await Promise.all([authorize(a.issuer), authorize(b.issuer)]);
      const locations = answers.map((r) => new URL(r.headers.get('location') ?? '/', a.issuer));
      const withCode = locations.filter((l) => l.href.startsWith(portalRedirect) && l.searchParams.has('code'));
      assert.equal(withCode.length, 1, `exactly one authorization answers with a code: ${answers.map((r) => `${r.status} ${r.headers.get('location')}`).join(', ')}`);
      const refused = locations.find((l) => !l.searchParams.has('code'))!;
      assert.equal(refused.searchParams.get('error'), 'invalid_request_uri', `the other is refused: ${refused}`);
    }
  });

  it('an initial access token registers one client, of concurrent registrations on two replicas', async () => {
    for (let i = 0; i < 20; i++) {
      const { token: iat } = await createInitialAccessToken(a.fedgate.provider(), 600);
      const register = (issuer: string) => fetch(`${issuer}/reg`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${iat}` },
        body: JSON.stringify({ grant_types: ['client_credentials'], response_types: [], redirect_uris: [], token_endpoint_auth_method: 'client_secret_basic' }),
      });
      const answers = await Promise.all([register(a.issuer), register(b.issuer)]);
      assert.deepEqual(answers.map((r) => r.status).sort(), [201, 401]);
      const refused = answers.find((r) => r.status === 401)!;
      assert.equal((await refused.json() as { error: string }).error, 'invalid_token');
      assert.match(refused.headers.get('www-authenticate') ?? '', /error="invalid_token"/);
      assert.equal((await register(b.issuer)).status, 401, 'used up');
    }
  });

  it('an initial access token whose registration failed can be used again', async () => {
    const { token: iat } = await createInitialAccessToken(a.fedgate.provider(), 600);
    const register = (body: unknown) => fetch(`${a.issuer}/reg`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${iat}` },
      body: JSON.stringify(body),
    });
    const bad = await register({ grant_types: ['client_credentials'], response_types: [], redirect_uris: [], token_endpoint_auth_method: 'no-such-method' });
    assert.equal(bad.status, 400);
    assert.equal((await register({ grant_types: ['client_credentials'], response_types: [], redirect_uris: [], token_endpoint_auth_method: 'client_secret_basic' })).status, 201);
  });
});
