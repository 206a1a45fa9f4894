import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Browser, formAction, hiddenInput, loginThroughPages, startServer, type TestServer } from '../support/harness.ts';

/** The account page: sign-in through fedgate's own authorization endpoint, linked identities, unlinking. */
describe('the account page', () => {
  let server: TestServer;
  let browser: Browser;

  before(async () => {
    server = await startServer();
    browser = new Browser();
  });
  after(() => server.cleanup());

  it('signs the user in through the authorization endpoint (no consent) and shows the account', async () => {
    const first = await browser.request(`${server.issuer}/account`);
    assert.equal(first.status, 302);
    const auth = new URL(first.headers.get('location')!, server.issuer);
    assert.equal(auth.pathname, '/auth');
    assert.equal(auth.searchParams.get('client_id'), 'fedgate-account');
    const callback = await loginThroughPages(browser, auth, `${server.issuer}/account/callback`, { username: 'alice', password: 'alice-password' });
    assert.ok(callback.searchParams.get('code'));
    const back = await browser.request(callback);
    assert.equal(back.status, 302);
    assert.equal(back.headers.get('location'), '/account');
    const code = await server.fedgate.provider().AuthorizationCode.find(callback.searchParams.get('code')!);
    assert.equal(code, undefined, 'the callback withdraws the code it does not need');
    const page = await browser.request(`${server.issuer}/account`);
    assert.equal(page.status, 200);
    const text = await page.text();
    assert.match(text, /Alice Researcher/);
    assert.match(text, /\/cms\/production/);
    assert.match(text, /No identity is linked yet/);
  });

  it('refuses a callback whose state this browser did not start', async () => {
    const res = await new Browser().request(`${server.issuer}/account/callback?code=x&state=forged`);
    assert.equal(res.status, 400);
  });

  it('lists linked identities and unlinks one, with an audit event', async () => {
    const alice = (await server.fedgate.accounts.findByUsername('alice'))!;
    await server.fedgate.accounts.link(alice.id, { type: 'x509', issuer: '/C=CH/O=Test CA', subject: '/C=CH/O=Test/CN=Alice' });
    const page = await (await browser.request(`${server.issuer}/account`)).text();
    assert.match(page, /\/C=CH\/O=Test\/CN=Alice/);
    const forged = await browser.request(`${server.issuer}/account/unlink`, { form: { csrf: 'x'.repeat(43), type: 'x509', issuer: '/C=CH/O=Test CA', subject: '/C=CH/O=Test/CN=Alice' } });
    assert.equal(forged.status, 403, 'a form without the CSRF token is refused');
    const res = await browser.request(new URL(formAction(page, '/account/unlink'), server.issuer), {
      form: { csrf: hiddenInput(page, 'csrf'), type: 'x509', issuer: '/C=CH/O=Test CA', subject: '/C=CH/O=Test/CN=Alice' },
    });
    assert.equal(res.status, 303);
    assert.equal((await server.fedgate.accounts.findById(alice.id))!.identities.length, 0);
    assert.equal(await server.fedgate.accounts.findByIdentity('x509', '/C=CH/O=Test CA', '/C=CH/O=Test/CN=Alice'), undefined);
    const events = await server.fedgate.audit.recent(5);
    assert.ok(events.some((e) => e.type === 'identity.unlinked' && e.actor === alice.id));
    assert.equal((await new Browser().request(`${server.issuer}/account/unlink`, { form: { csrf: 'y' } })).status, 403);
  });
});
