import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { X509Certificate } from 'node:crypto';
import * as oidc from 'openid-client';
import { adminApi, adminToken, authorizationCodeFlow, Browser, decodeJwt, formAction, hiddenInput, loginThroughPages, pkceAuthorizationUrl, rp, startServer, type TestServer } from '../support/harness.ts';
import { makeTestPki, type TestPki } from '../federation/x509/fixture.ts';

/**
 * Self-registration (`registration.accounts.enabled`): a person asks for an
 * account on a form linked from the login page; an administrator approves
 * it through the admin API, and the account is created (audited).
 */
describe('self-registration', () => {
  let server: TestServer;
  let admin: string;
  const person = new Browser();

  let pki: TestPki;

  before(async () => {
    pki = await makeTestPki();
    server = await startServer({
      redis: true,
      configure: (config) => {
        // Certificates behind a trusted proxy's header; no just-in-time accounts.
        config.trustedProxies = ['127.0.0.1'];
        config.x509 = { ...config.x509, enabled: true, trustAnchorsDir: pki.anchors, jit: false };
      },
    });
    admin = await adminToken(server.issuer);
  });
  after(async () => {
    await server.cleanup();
    await pki.pki.cleanup();
  });

  const api = async (token: string, path: string, method = 'GET', body?: unknown) => {
    const res = await fetch(`${adminApi(server.issuer)}${path}`, {
      method, headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) }, ...(body ? { body: JSON.stringify(body) } : {}),
    });
    return { status: res.status, body: await res.json() as Record<string, unknown> & { registrations?: Array<Record<string, unknown>> } };
  };
  const register = async (browser: Browser, fields: Record<string, string>) => {
    const form = await (await browser.request(`${server.issuer}/account/register`)).text();
    return browser.request(new URL(formAction(form, '/account/register'), server.issuer), { form: { csrf: hiddenInput(form, 'csrf'), ...fields } });
  };

  it('links the form from the login page', async () => {
    const portal = await rp(server.issuer, 'demo-portal', 'demo-portal-secret');
    const { url } = await pkceAuthorizationUrl(portal, { redirect_uri: 'http://localhost:3000/callback', scope: 'openid', state: 's' });
    const login = await new Browser().follow(url, () => false);
    assert.match(await login.res.text(), /<a href="\/account\/register">Request an account<\/a>/);
  });

  it('files a request with a reason; refuses forged, incomplete and repeated forms', async () => {
    const forged = await person.request(`${server.issuer}/account/register`, { form: { csrf: 'x'.repeat(43), username: 'dora', password: 'dora-password-123', reason: 'x' } });
    assert.equal(forged.status, 403);
    const short = await register(person, { username: 'dora', password: 'short', reason: 'PhD on ATLAS' });
    assert.equal(short.status, 400);
    assert.match(await short.text(), /at least 12 characters/);
    const bad = await register(person, { username: 'dora smith', password: 'dora-password-123', reason: 'PhD on ATLAS' });
    assert.equal(bad.status, 400);
    const res = await register(person, { username: 'dora', name: 'Dora Explorer', email: 'dora@example.org', password: 'dora-password-123', reason: 'PhD on ATLAS' });
    assert.equal(res.status, 200);
    assert.match(await res.text(), /Account requested/);
    const twice = await register(new Browser(), { username: 'Dora', password: 'other-password-123', reason: 'again' });
    assert.equal(twice.status, 409, 'one pending request per username, any case');
    const events = await server.fedgate.audit.recent(10);
    assert.ok(events.some((e) => e.type === 'registration.requested' && e.target === 'dora'));
  });

  it('lists registrations to administrators only, without password hashes', async () => {
    const list = await api(admin, '/registrations');
    assert.equal(list.status, 200);
    const [dora] = list.body.registrations!;
    assert.equal(dora!.username, 'dora');
    assert.equal(dora!.reason, 'PhD on ATLAS');
    assert.equal(dora!.status, 'pending');
    assert.ok(!JSON.stringify(list.body).includes('argon2'), 'no password hash on the wire');
    const bob = await adminToken(server.issuer, { username: 'bob', password: 'bob-password' });
    const refused = await api(bob, '/registrations');
    assert.equal(refused.status, 403, 'a group manager decides no registrations');
    assert.equal((await api(bob, `/registrations/${dora!.id as string}/approve`, 'POST', {})).status, 403);
  });

  it('creates the account on approval (audited with the administrator), who then signs in with the chosen password', async () => {
    const [dora] = (await api(admin, '/registrations?q=dora')).body.registrations!;
    const approved = await api(admin, `/registrations/${dora!.id as string}/approve`, 'POST', {});
    assert.equal(approved.status, 200, JSON.stringify(approved.body));
    assert.equal(approved.body.status, 'approved');
    const account = (await server.fedgate.accounts.findByUsername('dora'))!;
    assert.equal(approved.body.accountId, account.id);
    assert.equal(account.name, 'Dora Explorer');
    assert.equal(account.email, 'dora@example.org');
    const adminId = (await server.fedgate.accounts.findByUsername('admin'))!.id;
    const events = await server.fedgate.audit.recent(10);
    assert.ok(events.some((e) => e.type === 'account.created' && e.actor === adminId && e.target === account.id));
    assert.ok(events.some((e) => e.type === 'registration.approved' && e.actor === adminId));
    assert.equal((await api(admin, `/registrations/${dora!.id as string}/approve`, 'POST', {})).status, 409, 'decided once');
    const cli = await rp(server.issuer, 'demo-cli');
    const tokens = await authorizationCodeFlow(cli, { redirectUri: 'http://127.0.0.1:50000/callback', scope: 'openid', username: 'dora', password: 'dora-password-123' });
    assert.ok(tokens.access_token);
  });

  it('rejects: no account; a taken username cannot be approved', async () => {
    assert.equal((await register(new Browser(), { username: 'eve', password: 'eve-password-1234', reason: 'curious' })).status, 200);
    assert.equal((await register(new Browser(), { username: 'alice', password: 'alice-password-1234', reason: 'me' })).status, 200, 'the same answer for a taken username');
    const pending = (await api(admin, '/registrations')).body.registrations!;
    const eve = pending.find((r) => r.username === 'eve')!;
    const rejected = await api(admin, `/registrations/${eve.id as string}/reject`, 'POST', { reason: 'not a member of any collaboration' });
    assert.equal(rejected.status, 200);
    assert.equal(rejected.body.decisionReason, 'not a member of any collaboration');
    assert.equal(await server.fedgate.accounts.findByUsername('eve'), undefined);
    const alice = pending.find((r) => r.username === 'alice')!;
    assert.equal((await api(admin, `/registrations/${alice.id as string}/approve`, 'POST', {})).status, 409);
    assert.equal((await api(admin, '/registrations?status=rejected')).body.registrations!.length, 1);
  });

  it('offers a first certificate sign-in the form (no password); on approval the certificate signs in to the new account', async () => {
    const certHeader = `:${new X509Certificate(pki.bob.pem).raw.toString('base64')}:`;
    const portal = await rp(server.issuer, 'demo-portal', 'demo-portal-secret');
    const { url } = await pkceAuthorizationUrl(portal, { redirect_uri: 'http://localhost:3000/callback', scope: 'openid' });
    const browser = new Browser();
    const login = await (await browser.follow(url, () => false)).res.text();
    const certLink = new URL(/<a href="([^"]*\/x509\/login\?interaction=[^"]*)"/.exec(login)![1]!.replace(/&amp;/g, '&'));
    const first = await browser.request(new URL(`${server.issuer}${certLink.pathname}${certLink.search}`), { headers: { 'client-cert': certHeader } });
    assert.equal(first.status, 303);
    assert.equal(first.headers.get('location'), '/account/register');
    const form = await (await browser.request(`${server.issuer}/account/register`)).text();
    assert.match(form, /certificate: \/DC=org\/DC=fedgate-test\/CN=Bob/);
    assert.doesNotMatch(form, /name="password"/);
    const sent = await browser.request(new URL(formAction(form, '/account/register'), server.issuer), {
      form: { csrf: hiddenInput(form, 'csrf'), username: 'robert', name: 'Robert', reason: 'grid user' },
    });
    assert.equal(sent.status, 200, (await sent.text()).slice(0, 300));
    const robert = (await api(admin, '/registrations?q=robert')).body.registrations![0]!;
    const identity = robert.identity as { type: string; subject: string };
    assert.deepEqual([identity.type, identity.subject], ['x509', '/DC=org/DC=fedgate-test/CN=Bob']);
    assert.equal((await api(admin, `/registrations/${robert.id as string}/approve`, 'POST', {})).status, 200);
    const account = (await server.fedgate.accounts.findByUsername('robert'))!;
    assert.equal(account.identities[0]?.subject, '/DC=org/DC=fedgate-test/CN=Bob');
    assert.equal(account.passwordHash, undefined);
    // The same certificate now signs in to robert's account.
    const again = await pkceAuthorizationUrl(portal, { redirect_uri: 'http://localhost:3000/callback', scope: 'openid' });
    const fresh = new Browser();
    const page = await (await fresh.follow(again.url, () => false)).res.text();
    const link = new URL(/<a href="([^"]*\/x509\/login\?interaction=[^"]*)"/.exec(page)![1]!.replace(/&amp;/g, '&'));
    const signedIn = await fresh.request(new URL(`${server.issuer}${link.pathname}${link.search}`), { headers: { 'client-cert': certHeader } });
    assert.equal(signedIn.status, 303);
    const callback = await loginThroughPages(fresh, new URL(signedIn.headers.get('location')!, server.issuer), 'http://localhost:3000/callback', { username: 'unused', password: 'unused' });
    const tokens = await oidc.authorizationCodeGrant(portal, callback, { pkceCodeVerifier: again.verifier });
    assert.equal(decodeJwt(tokens.id_token!).payload.sub, account.id);
  });

  it('is off unless configured', async () => {
    const off = await startServer({ configure: (config) => { config.registration.accounts.enabled = false; } });
    try {
      assert.equal((await new Browser().request(`${off.issuer}/account/register`)).status, 404);
      const res = await new Browser().request(`${off.issuer}/account/register`, { form: { csrf: 'x', username: 'x' } });
      assert.equal(res.status, 404);
    } finally {
      await off.cleanup();
    }
  });
});
