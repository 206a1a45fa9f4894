import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createInitialAccessToken } from '../../src/admin/routes.ts';
import * as oidc from 'openid-client';
import { approveOnDevicePage, Browser, decodeJwt, loginThroughPages, pkceAuthorizationUrl, rp, startServer, type TestServer } from '../support/harness.ts';

const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;

/**
 * What oidc-agent, INDIGO IAM clients and the WLCG tooling send, on the
 * wire: an empty-secret Basic header for a public client, `audience`
 * instead of `resource`, narrower storage paths at refresh.
 */
describe('the dialects of standard clients', () => {
  let server: TestServer;

  before(async () => {
    server = await startServer({ redis: true });
  });
  after(() => server.cleanup());

  async function post(path: string, form: Record<string, string>, authorization?: string): Promise<{ status: number; body: Record<string, unknown>; headers: Headers }> {
    const res = await fetch(`${server.issuer}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json', ...(authorization ? { authorization } : {}) },
      body: new URLSearchParams(form),
    });
    return { status: res.status, body: await res.json() as Record<string, unknown>, headers: res.headers };
  }

  /** The device flow of demo-cli as oidc-agent runs it: `Basic base64("demo-cli:")` on every request. */
  async function deviceTokens(form: Record<string, string>, auth = basic('demo-cli', '')): Promise<Record<string, unknown>> {
    const device = await post('/device/auth', form, auth);
    assert.equal(device.status, 200, JSON.stringify(device.body));
    await approveOnDevicePage(new Browser(), `${server.issuer}/device`, device.body.user_code as string, { username: 'alice', password: 'alice-password' });
    const tokens = await post('/token', { grant_type: DEVICE_GRANT, device_code: device.body.device_code as string }, auth);
    assert.equal(tokens.status, 200, JSON.stringify(tokens.body));
    return tokens.body;
  }

  it('takes an empty-secret Basic header of a public client as no client authentication, on device, token and refresh', async () => {
    const tokens = await deviceTokens({ scope: 'openid offline_access' });
    const refreshed = await post('/token', { grant_type: 'refresh_token', refresh_token: tokens.refresh_token as string }, basic('demo-cli', ''));
    assert.equal(refreshed.status, 200, JSON.stringify(refreshed.body));
    assert.ok(refreshed.body.access_token);
  });

  it('still refuses an empty secret for a confidential client, and a Basic header naming another client than client_id', async () => {
    const confidential = await post('/token', { grant_type: 'client_credentials' }, basic('demo-service', ''));
    assert.ok(confidential.status === 400 || confidential.status === 401, String(confidential.status));
    assert.match(String(confidential.body.error), /invalid_request|invalid_client/);
    assert.equal(confidential.body.access_token, undefined);
    const mismatch = await post('/device/auth', { client_id: 'demo-portal', scope: 'openid' }, basic('demo-cli', ''));
    assert.equal(mismatch.status, 400);
    assert.equal(mismatch.body.device_code, undefined);
    const unknown = await post('/device/auth', { scope: 'openid' }, basic('no-such-client', ''));
    assert.ok(unknown.status >= 400 && unknown.status < 500);
  });

  it('reads audience as the resource indicator, and refuses audience and resource that disagree', async () => {
    const service = basic('demo-service', 'demo-service-secret');
    const byAudience = await post('/token', { grant_type: 'client_credentials', audience: 'https://storage.demo', scope: 'storage.read:/data' }, service);
    assert.equal(byAudience.status, 200, JSON.stringify(byAudience.body));
    assert.equal(decodeJwt(byAudience.body.access_token as string).payload.aud, 'https://storage.demo');
    const both = await post('/token', { grant_type: 'client_credentials', audience: 'https://storage.demo', resource: 'https://storage.demo', scope: 'storage.read:/data' }, service);
    assert.equal(both.status, 200);
    const disagree = await post('/token', { grant_type: 'client_credentials', audience: 'https://ml.demo', resource: 'https://storage.demo' }, service);
    assert.equal(disagree.status, 400);
    assert.equal(disagree.body.error, 'invalid_target');
    assert.match(String(disagree.body.error_description), /audience and resource/);
    const unknown = await post('/token', { grant_type: 'client_credentials', audience: 'https://nowhere.example' }, service);
    assert.equal(unknown.body.error, 'invalid_target');
    const page = await fetch(`${server.issuer}/auth?client_id=demo-cli&response_type=code&scope=openid&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcallback&audience=https%3A%2F%2Fml.demo&resource=https%3A%2F%2Fstorage.demo`, { redirect: 'manual' });
    assert.equal(page.status, 400);
    assert.match(await page.text(), /invalid_target/);
  });

  it('reads audience as the resource indicator at the authorization endpoint too (code flow)', async () => {
    const portal = await rp(server.issuer, 'demo-portal', 'demo-portal-secret');
    const redirectUri = 'http://localhost:3000/callback';
    const state = oidc.randomState();
    const { url, verifier } = await pkceAuthorizationUrl(portal, { redirect_uri: redirectUri, scope: 'openid storage.read:/store/cms', audience: 'https://storage.demo', state });
    const callback = await loginThroughPages(new Browser(), url, redirectUri, { username: 'alice', password: 'alice-password' });
    const tokens = await oidc.authorizationCodeGrant(portal, callback, { pkceCodeVerifier: verifier, expectedState: state });
    const claims = decodeJwt(tokens.access_token).payload;
    assert.equal(claims.aud, 'https://storage.demo');
    assert.equal(claims.scope, 'storage.read:/store/cms');
  });

  it('names a resource server at the token request only when the grant was for any WLCG service, and says why not otherwise', async () => {
    // Capability scopes without a resource: the grant is for the WLCG "any" audience.
    const tokens = await deviceTokens({ scope: 'openid offline_access storage.read:/store/cms' });
    assert.equal(decodeJwt(tokens.access_token as string).payload.aud, 'https://wlcg.cern.ch/jwt/v1/any');
    const refresh = await post('/token', { grant_type: 'refresh_token', refresh_token: tokens.refresh_token as string, audience: 'https://storage.demo' }, basic('demo-cli', ''));
    assert.equal(refresh.status, 200, JSON.stringify(refresh.body));
    const storage = decodeJwt(refresh.body.access_token as string).payload;
    assert.equal(storage.aud, 'https://storage.demo');
    assert.equal(storage.scope, 'storage.read:/store/cms');
    // A server that accepts none of the granted scopes.
    const ml = await post('/token', { grant_type: 'refresh_token', refresh_token: refresh.body.refresh_token as string, audience: 'https://ml.demo' }, basic('demo-cli', ''));
    assert.equal(ml.status, 400);
    assert.equal(ml.body.error, 'invalid_target');
    assert.match(String(ml.body.error_description), /no scope that https:\/\/ml\.demo accepts/);

    // The same with the body as curl sends it (colons unencoded), at the device code redemption.
    const raw = await post('/device/auth', { scope: 'openid offline_access storage.read:/store/cms' }, basic('demo-cli', ''));
    await approveOnDevicePage(new Browser(), `${server.issuer}/device`, raw.body.user_code as string, { username: 'alice', password: 'alice-password' });
    const redeemed = await fetch(`${server.issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic('demo-cli', '') },
      body: `grant_type=urn:ietf:params:oauth:grant-type:device_code&device_code=${raw.body.device_code as string}&audience=https://storage.demo`,
    });
    assert.equal(redeemed.status, 200);
    const first = await redeemed.json() as { access_token: string; refresh_token: string };
    assert.equal(decodeJwt(first.access_token).payload.aud, 'https://storage.demo');
    // Named at the first redemption, the service stays the grant's: a plain refresh is for it too.
    const again = await post('/token', { grant_type: 'refresh_token', refresh_token: first.refresh_token }, basic('demo-cli', ''));
    assert.equal(again.status, 200, JSON.stringify(again.body));
    const againJwt = decodeJwt(again.body.access_token as string).payload;
    assert.equal(againJwt.aud, 'https://storage.demo');
    assert.equal(againJwt.scope, 'storage.read:/store/cms');

    // A grant for one server is not widened to another.
    const forStorage = await deviceTokens({ scope: 'openid offline_access storage.read:/store/cms', resource: 'https://storage.demo' });
    const other = await post('/token', { grant_type: 'refresh_token', refresh_token: forStorage.refresh_token as string, resource: 'https://orchestrator.demo' }, basic('demo-cli', ''));
    assert.equal(other.status, 400);
    assert.equal(other.body.error, 'invalid_target');
    assert.match(String(other.body.error_description), /grant is for https:\/\/storage\.demo/);
    // The refusal came before the refresh token was used: it still works.
    const still = await post('/token', { grant_type: 'refresh_token', refresh_token: forStorage.refresh_token as string }, basic('demo-cli', ''));
    assert.equal(still.status, 200, JSON.stringify(still.body));
  });

  it('narrows a granted storage path at refresh, never widens it, and stores nothing narrowed or widened', async () => {
    const tokens = await deviceTokens({ scope: 'openid offline_access storage.read:/store/cms', resource: 'https://storage.demo' });
    const auth = basic('demo-cli', '');
    const narrowed = await post('/token', { grant_type: 'refresh_token', refresh_token: tokens.refresh_token as string, scope: 'storage.read:/store/cms/run1' }, auth);
    assert.equal(narrowed.status, 200, JSON.stringify(narrowed.body));
    const jwt = decodeJwt(narrowed.body.access_token as string).payload;
    assert.equal(jwt.scope, 'storage.read:/store/cms/run1');
    assert.equal(jwt.aud, 'https://storage.demo');
    assert.equal(narrowed.body.scope, 'storage.read:/store/cms/run1');

    for (const wider of ['storage.read:/store', 'storage.read:/store/cms/../atlas', 'storage.create:/store/cms/run1', 'storage.read:/store/cmsx', 'storage.read:/store/cms//run1', 'storage.read:/store/cms/%2e%2e/atlas']) {
      const refused = await post('/token', { grant_type: 'refresh_token', refresh_token: narrowed.body.refresh_token as string, scope: wider }, auth);
      assert.equal(refused.status, 400, wider);
      assert.equal(refused.body.error, 'invalid_scope', wider);
    }
    // A refusal of oidc-provider's own scope check comes before the token is used (oidc-provider checks
    // scopes first); the rotated refresh token keeps the grant's own scope.
    const plain = await post('/token', { grant_type: 'refresh_token', refresh_token: narrowed.body.refresh_token as string }, auth);
    assert.equal(plain.status, 200, JSON.stringify(plain.body));
    assert.equal(decodeJwt(plain.body.access_token as string).payload.scope, 'storage.read:/store/cms');
    const introspected = await post('/token/introspection', { token: plain.body.refresh_token as string }, basic('demo-portal', 'demo-portal-secret'));
    assert.equal(introspected.body.active, true);
    assert.equal(introspected.body.scope, 'openid offline_access storage.read:/store/cms');
  });

  it('answers userinfo for the token issued with openid, and says why a resource server\'s JWT is refused there', async () => {
    const plain = await deviceTokens({ scope: 'openid profile offline_access' });
    const ok = await fetch(`${server.issuer}/me`, { headers: { authorization: `Bearer ${plain.access_token as string}` } });
    assert.equal(ok.status, 200);
    const storage = await deviceTokens({ scope: 'openid offline_access storage.read:/store/cms', resource: 'https://storage.demo' });
    const refused = await fetch(`${server.issuer}/me`, { headers: { authorization: `Bearer ${storage.access_token as string}` } });
    assert.equal(refused.status, 401);
    const challenge = refused.headers.get('www-authenticate') ?? '';
    assert.match(challenge, /^Bearer realm="[^"]+", error="invalid_token", error_description="this access token is a JWT for https:\/\/storage\.demo/);
    assert.match((await refused.json() as { error_description: string }).error_description, /without a resource/);
  });

  it('logs a refused request with its error and description at info level', async () => {
    const before = server.logs.lines.length;
    const refused = await post('/token', { grant_type: 'refresh_token', refresh_token: 'not-a-refresh-token' }, basic('demo-cli', ''));
    assert.equal(refused.body.error, 'invalid_grant');
    const line = server.logs.lines.slice(before).map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((l) => l.msg === 'request refused' && l.error === 'invalid_grant');
    assert.ok(line, 'a log line for the refusal');
    assert.equal(line.level, 'info');
    assert.equal(line.client, 'demo-cli');
    assert.equal(line.route, 'token');
    assert.equal(typeof line.error_description, 'string');
    assert.doesNotMatch(JSON.stringify(line), /not-a-refresh-token/);
  });

  async function register(metadata: Record<string, unknown>): Promise<{ status: number; body: Record<string, unknown> }> {
    const { token } = await createInitialAccessToken(server.fedgate.provider(), 600);
    const res = await fetch(`${server.issuer}/reg`, {
      method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(metadata),
    });
    return { status: res.status, body: await res.json() as Record<string, unknown> };
  }

  it('registers what oidc-gen sends: a private-use scheme redirect (as a native client) and capability scopes, which then bound the client', async () => {
    // oidc-gen's registration, byte for byte in substance (it says "web").
    const registered = await register({
      application_type: 'web', client_name: 'oidc-agent:test', response_types: [],
      grant_types: ['refresh_token', DEVICE_GRANT],
      scope: 'openid offline_access storage.read:/store/cms',
      redirect_uris: ['http://localhost:4242', 'http://localhost:8080', 'edu.kit.data.oidc-agent:/redirect'],
    });
    assert.equal(registered.status, 201, JSON.stringify(registered.body));
    assert.equal(registered.body.application_type, 'native');
    assert.equal(registered.body.scope, 'openid offline_access storage.read:/store/cms');
    assert.equal(registered.body.resource_scope, undefined);
    const read = await fetch(registered.body.registration_client_uri as string, { headers: { authorization: `Bearer ${registered.body.registration_access_token as string}` } });
    assert.equal((await read.json() as { scope: string }).scope, 'openid offline_access storage.read:/store/cms');

    // The registered capability scopes bound what the client obtains (alice could read /store/cms/** anyway).
    const auth = basic(registered.body.client_id as string, registered.body.client_secret as string);
    const tokens = await deviceTokens({ scope: 'openid offline_access storage.read:/store/cms/run2 storage.create:/store/cms', resource: 'https://storage.demo' }, auth);
    assert.equal(decodeJwt(tokens.access_token as string).payload.scope, 'storage.read:/store/cms/run2');
  });

  it('refuses at registration a capability scope no resource server accepts, and a private-use redirect beside a web one', async () => {
    const unknown = await register({ grant_types: [DEVICE_GRANT], response_types: [], scope: 'openid storage.delete:/store', redirect_uris: ['edu.kit.data.oidc-agent:/redirect'] });
    assert.equal(unknown.status, 400);
    assert.equal(unknown.body.error, 'invalid_client_metadata');
    assert.match(String(unknown.body.error_description), /storage\.delete:\/store is not accepted by any resource server/);
    const mixed = await register({ redirect_uris: ['https://app.example/cb', 'edu.kit.data.oidc-agent:/redirect'] });
    assert.equal(mixed.status, 400);
    assert.equal(mixed.body.error, 'invalid_redirect_uri');
    const noDot = await register({ redirect_uris: ['myapp:/cb'] });
    assert.equal(noDot.status, 400);
  });
});
