import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import Koa, { type Context } from 'koa';
import { Accounts, type Account } from '../../../src/accounts/accounts.ts';
import { loadConfig, type Config } from '../../../src/config/index.ts';
import type { FederationHooks } from '../../../src/federation/types.ts';
import { createX509Bridge, normaliseDn, type X509Bridge } from '../../../src/federation/x509/index.ts';
import { Audit, type StoredAuditEvent } from '../../../src/observability/audit.ts';
import { createLogger } from '../../../src/observability/logger.ts';
import { MemoryStore } from '../../../src/store/index.ts';
import { LogCapture } from '../../support/harness.ts';
import { ALICE_DN, BASE, makeTestPki, type TestPki } from './fixture.ts';
import type { Issued } from './pki.ts';

/** Records what the bridge asks of the rest of fedgate; `current` is the signed-in account. */
class FakeHooks implements FederationHooks {
  readonly logins: Array<{ uid: string; account: string; amr: string }> = [];
  current: Account | undefined;
  /** Interactions that are gone. */
  readonly gone = new Set<string>();

  async finishLogin(ctx: Context, uid: string, account: Account, amr: string): Promise<void> {
    if (this.gone.has(uid)) throw Object.assign(new Error('interaction session not found'), { status: 400, expose: true });
    this.logins.push({ uid, account: account.id, amr });
    ctx.redirect(`/interaction/${uid}/done`);
  }

  async currentAccount(): Promise<Account | undefined> {
    return this.current;
  }
}

interface TestApp {
  url: string;
  bridge: X509Bridge;
  hooks: FakeHooks;
  accounts: Accounts;
  audit: Audit;
  logs: LogCapture;
  server: Server;
  close(): Promise<void>;
}

async function startApp(t: TestPki, configure: (config: Config) => void): Promise<TestApp> {
  const config = await loadConfig({});
  config.trustedProxies = ['127.0.0.1'];
  config.x509 = { ...config.x509, enabled: true, trustAnchorsDir: t.anchors, reloadSeconds: 0 };
  configure(config);
  const logs = new LogCapture();
  const logger = createLogger('info', logs);
  const store = new MemoryStore();
  const accounts = new Accounts(store);
  const audit = new Audit(store, logger, 1000);
  const hooks = new FakeHooks();
  const bridge = await createX509Bridge({ config, logger, audit, accounts, hooks });
  const app = new Koa();
  app.silent = true;
  app.use(bridge.routes);
  // What the RFC 8705 wiring will call, exposed for the test.
  app.use(async (ctx, next) => {
    if (ctx.path !== '/mtls-hooks') return next();
    ctx.body = {
      pem: bridge.clientCertificatePem(ctx) ?? null,
      authorized: bridge.certificateAuthorized(ctx),
      subjectMatches: bridge.certificateSubjectMatches(ctx, 'tls_client_auth_subject_dn', String(ctx.query.dn ?? '')),
      emailMatches: bridge.certificateSubjectMatches(ctx, 'tls_client_auth_san_email', 'nobody@example.org'),
    };
  });
  const server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`, bridge, hooks, accounts, audit, logs, server,
    async close() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await bridge.close();
    },
  };
}

const escaped = (cert: Issued) => encodeURIComponent(cert.pem);
const sf = (cert: Issued) => `:${cert.der.toString('base64')}:`;
const nginx = (cert: Issued) => ({ 'x-ssl-client-cert': escaped(cert) });

async function get(app: TestApp, path: string, headers: Record<string, string> = {}) {
  const res = await fetch(`${app.url}${path}`, { headers, redirect: 'manual' });
  const text = await res.text();
  return { status: res.status, text, headers: res.headers, json: () => JSON.parse(text) as Record<string, unknown> };
}

async function lastAudit(app: TestApp): Promise<StoredAuditEvent> {
  return (await app.audit.recent(1))[0]!;
}

describe('/x509/login and /x509/link', () => {
  let t: TestPki;
  let app: TestApp;
  let alice: Account;
  const ALICE = normaliseDn(ALICE_DN);
  const INTERMEDIATE = `${BASE}/CN=Test Intermediate CA`;

  before(async () => {
    t = await makeTestPki();
    app = await startApp(t, () => {});
    alice = await app.accounts.create({ username: 'alice' });
    await app.accounts.link(alice.id, { type: 'x509', issuer: INTERMEDIATE, subject: ALICE });
  });
  after(async () => {
    await app.close();
    await t.pki.cleanup();
  });

  describe('login', () => {
    it('logs in the linked account from nginx\'s header and hands over to the interaction', async () => {
      const res = await get(app, '/x509/login?interaction=uid-1', nginx(t.alice));
      assert.equal(res.status, 302, res.text);
      assert.equal(res.headers.get('location'), '/interaction/uid-1/done');
      assert.deepEqual(app.hooks.logins.at(-1), { uid: 'uid-1', account: alice.id, amr: 'x509' });
      const event = await lastAudit(app);
      assert.equal(event.type, 'login');
      assert.equal(event.outcome, 'success');
      assert.equal(event.actor, alice.id);
      assert.deepEqual(event.detail, { method: 'x509', subject: ALICE, issuer: INTERMEDIATE, source: 'header:x-ssl-client-cert' });
    });

    it('logs in with a proxy chain in Envoy\'s header, and with RFC 9440 Client-Cert and its chain', async () => {
      const chain = [t.proxy2, t.proxy1, t.alice, t.intermediate].map((c) => c.pem).join('');
      const xfcc = `By=spiffe://edge;Cert="${encodeURIComponent(t.root.pem)}",By=spiffe://fedgate;Cert="${escaped(t.proxy2)}";Chain="${encodeURIComponent(chain)}";Subject="${ALICE_DN}/CN=1001/CN=1002"`;
      const envoy = await get(app, '/x509/login?interaction=uid-2', { 'x-forwarded-client-cert': xfcc });
      assert.equal(envoy.status, 302, envoy.text);
      assert.equal(app.hooks.logins.at(-1)?.account, alice.id);
      assert.equal((await lastAudit(app)).detail?.proxies, 2);

      const rfc = await get(app, '/x509/login?interaction=uid-3', { 'client-cert': sf(t.proxy1), 'client-cert-chain': `${sf(t.alice)}, ${sf(t.intermediate)}` });
      assert.equal(rfc.status, 302, rfc.text);
      assert.equal(app.hooks.logins.at(-1)?.uid, 'uid-3');
    });

    it('refuses a certificate linked to no account, saying how to link it', async () => {
      const res = await get(app, '/x509/login?interaction=uid-4', nginx(t.bob));
      assert.equal(res.status, 403);
      assert.match(res.text, /<h1>Certificate not linked<\/h1>/);
      assert.match(res.text, /not linked to any account/);
      assert.match(res.text, /link this certificate to your account from your account page/);
      assert.match(res.text, /<a href="http:\/\/localhost:\d+\/interaction\/uid-4">Sign in another way<\/a>/);
      assert.match(res.text, /CN=Bob/);
      assert.match(String(res.headers.get('content-security-policy')), /default-src 'none'/);
      const event = await lastAudit(app);
      assert.deepEqual([event.type, event.outcome, event.detail?.reason, event.detail?.subject], ['login.failed', 'failure', 'not_linked', `${BASE}/CN=Bob`]);
    });

    it('refuses expired, revoked, untrusted and badly constrained certificates, as a page or as JSON', async () => {
      const cases: Array<[Issued[], string, RegExp]> = [
        [[t.expired], 'expired', /expired on 2021-01-01/],
        [[t.revoked], 'revoked', /has been revoked/],
        [[t.mallory], 'untrusted', /not issued by a trusted CA/],
        [[t.carol], 'revocation_unknown', /CRL of .*Stale CA expired/],
        [[t.serverOnly], 'constraint_violation', /client authentication/],
        [[t.independent, t.alice], 'invalid_proxy', /proxy policy/],
      ];
      for (const [chain, reason, message] of cases) {
        const headers = { 'client-cert': sf(chain[0]!), ...(chain.length > 1 ? { 'client-cert-chain': chain.slice(1).map(sf).join(', ') } : {}) };
        const page = await get(app, '/x509/login?interaction=uid-5', headers);
        assert.equal(page.status, 403, reason);
        assert.match(page.text, message);
        assert.match(page.text, new RegExp(`<code>${reason}</code>`));
        const event = await lastAudit(app);
        assert.deepEqual([event.type, event.detail?.reason], ['login.failed', reason]);
        const json = await get(app, '/x509/login?interaction=uid-5', { ...headers, accept: 'application/json' });
        assert.equal(json.status, 403);
        assert.equal(json.json().error, 'access_denied');
        assert.equal(json.json().reason, reason);
      }
      assert.equal(app.hooks.logins.filter((l) => l.uid === 'uid-5').length, 0);
    });

    it('answers a malformed header with 400, never 500', async () => {
      const cases: Array<Record<string, string>> = [
        { 'x-ssl-client-cert': 'garbage' },
        { 'x-ssl-client-cert': '%E0%A4%A' },
        { 'client-cert': ':bm90IGEgY2VydGlmaWNhdGU=:' },
        { 'x-forwarded-client-cert': 'Cert="%ZZ' },
        { 'client-cert': sf(t.alice), 'client-cert-chain': ':!!:' },
      ];
      for (const headers of cases) {
        const page = await get(app, '/x509/login?interaction=uid-6', headers);
        assert.equal(page.status, 400, JSON.stringify(headers));
        assert.match(page.text, /Unreadable certificate/);
        const json = await get(app, '/x509/login?interaction=uid-6', { ...headers, accept: 'application/json' });
        assert.deepEqual([json.status, json.json().error, json.json().reason], [400, 'invalid_request', 'malformed']);
      }
      assert.equal((await lastAudit(app)).detail?.reason, 'malformed');
    });

    it('asks for a certificate when none came, and for an interaction when none is named', async () => {
      const none = await get(app, '/x509/login?interaction=uid-7');
      assert.equal(none.status, 400);
      assert.match(none.text, /No client certificate was presented/);
      assert.equal((await lastAudit(app)).detail?.reason, 'no_certificate');
      for (const query of ['', '?interaction=', '?interaction=a/b', '?interaction=x&interaction=y']) {
        const res = await get(app, `/x509/login${query}`, nginx(t.alice));
        assert.equal(res.status, 400, query);
        assert.match(res.text, /no interaction/);
      }
    });

    it('says so when the interaction is gone', async () => {
      app.hooks.gone.add('uid-gone');
      const res = await get(app, '/x509/login?interaction=uid-gone', nginx(t.alice));
      assert.equal(res.status, 400);
      assert.match(res.text, /expired or was started in another browser/);
      assert.equal((await lastAudit(app)).detail?.reason, 'interaction');
    });

    it('refuses the certificate of a disabled account', async () => {
      const dora = await app.accounts.create({ username: 'dora' });
      await app.accounts.link(dora.id, { type: 'x509', issuer: `${BASE}/CN=Client CA`, subject: `${BASE}/CN=Dave` });
      await app.accounts.setDisabled(dora.id, true);
      const res = await get(app, '/x509/login?interaction=uid-8', { 'client-cert': sf(t.dave), 'client-cert-chain': sf(t.clientCa) });
      assert.equal(res.status, 403);
      assert.equal((await lastAudit(app)).detail?.reason, 'account_disabled');
    });
  });

  describe('link', () => {
    let carl: Account;
    before(async () => {
      carl = await app.accounts.create({ username: 'carl', name: 'Carl Linker' });
    });

    it('needs a signed-in account', async () => {
      app.hooks.current = undefined;
      const res = await get(app, '/x509/link', nginx(t.bob));
      assert.equal(res.status, 403);
      assert.match(res.text, /Sign in first/);
      const event = await lastAudit(app);
      assert.deepEqual([event.type, event.detail?.reason], ['identity.link_refused', 'not_signed_in']);
    });

    it('links the certificate to the signed-in account, after which it logs in', async () => {
      app.hooks.current = carl;
      const res = await get(app, '/x509/link', nginx(t.bob));
      assert.equal(res.status, 200, res.text);
      assert.match(res.text, /<h1>Certificate linked<\/h1>/);
      assert.match(res.text, /Carl Linker/);
      const event = await lastAudit(app);
      assert.deepEqual([event.type, event.outcome, event.actor, event.detail?.subject], ['identity.linked', 'success', carl.id, `${BASE}/CN=Bob`]);
      assert.equal((await app.accounts.findByIdentity('x509', `${BASE}/CN=Test Root CA`, `${BASE}/CN=Bob`))?.id, carl.id);

      app.hooks.current = await app.accounts.findById(carl.id);
      const again = await get(app, '/x509/link', nginx(t.bob));
      assert.equal(again.status, 200);
      assert.match(again.text, /already linked/);

      const login = await get(app, '/x509/login?interaction=uid-9', nginx(t.bob));
      assert.equal(login.status, 302);
      assert.equal(app.hooks.logins.at(-1)?.account, carl.id);
    });

    it('refuses a certificate linked to another account', async () => {
      app.hooks.current = carl;
      const res = await get(app, '/x509/link', nginx(t.alice));
      assert.equal(res.status, 409);
      assert.match(res.text, /already linked to another account/);
      const event = await lastAudit(app);
      assert.deepEqual([event.type, event.outcome, event.detail?.reason], ['identity.link_refused', 'failure', 'identity_taken']);
      assert.equal((await app.accounts.findByIdentity('x509', INTERMEDIATE, ALICE))?.id, alice.id);
    });

    it('refuses a certificate that does not validate', async () => {
      app.hooks.current = carl;
      const res = await get(app, '/x509/link', { ...nginx(t.revoked), accept: 'application/json' });
      assert.equal(res.status, 403);
      assert.equal(res.json().reason, 'revoked');
      assert.equal((await lastAudit(app)).detail?.reason, 'revoked');
    });
  });

  it('answers 404 and 405 under /x509/, and leaves other paths alone', async () => {
    assert.equal((await get(app, '/x509/nothing')).status, 404);
    const post = await fetch(`${app.url}/x509/login?interaction=x`, { method: 'POST', headers: nginx(t.alice) });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get('allow'), 'GET');
    assert.equal((await get(app, '/elsewhere')).status, 404);
  });

  it('verifies chains given as PEM text, DER or a list of either', () => {
    const fromPem = app.bridge.verifyCertificate(t.proxy1.pem + t.alice.pem);
    assert.ok(fromPem.ok);
    assert.equal(fromPem.subject, ALICE);
    assert.ok(app.bridge.verifyCertificate([t.proxy1.der, t.alice.pem]).ok);
    assert.ok(app.bridge.verifyCertificate(t.bob.der).ok);
    const expired = app.bridge.verifyCertificate(t.expired.pem);
    assert.equal(expired.ok ? 'ok' : expired.reason, 'expired');
    assert.equal(app.bridge.trustAnchors?.anchors.length, 3);
  });

  it('serves oidc-provider\'s features.mTLS hooks from the same extraction', async () => {
    const ok = (await get(app, `/mtls-hooks?dn=${encodeURIComponent('CN=Bob,DC=fedgate-test,DC=org')}`, nginx(t.bob))).json();
    assert.match(String(ok.pem), /^-----BEGIN CERTIFICATE-----\n/);
    assert.equal(ok.pem, t.bob.pem.replace(/\r/g, ''));
    assert.equal(ok.authorized, true);
    assert.equal(ok.subjectMatches, true);
    assert.equal(ok.emailMatches, false);
    const bad = (await get(app, '/mtls-hooks?dn=CN=Bob', nginx(t.revoked))).json();
    assert.deepEqual([bad.authorized, bad.subjectMatches], [false, false]);
    const none = (await get(app, '/mtls-hooks')).json();
    assert.deepEqual(none, { pem: null, authorized: false, subjectMatches: false, emailMatches: false });
  });
});

describe('certificate headers from an address that is not a trusted proxy', () => {
  let t: TestPki;
  let app: TestApp;

  before(async () => {
    t = await makeTestPki();
    app = await startApp(t, (config) => { config.trustedProxies = ['10.0.0.0/8']; });
    const alice = await app.accounts.create({ username: 'alice' });
    await app.accounts.link(alice.id, { type: 'x509', issuer: `${BASE}/CN=Test Intermediate CA`, subject: normaliseDn(ALICE_DN) });
  });
  after(async () => {
    await app.close();
    await t.pki.cleanup();
  });

  it('are ignored (no certificate), and logged without their value', async () => {
    const res = await get(app, '/x509/login?interaction=uid-1', { ...nginx(t.alice), 'client-cert': sf(t.alice) });
    assert.equal(res.status, 400);
    assert.match(res.text, /No client certificate was presented/);
    assert.equal(app.hooks.logins.length, 0);
    const warning = app.logs.lines.map((l) => JSON.parse(l)).find((l) => l.level === 'warn' && /not a trusted proxy/.test(l.msg));
    assert.ok(warning);
    assert.deepEqual(warning.headers, ['client-cert', 'x-ssl-client-cert']);
    assert.ok(!app.logs.text.includes(t.alice.der.toString('base64').slice(0, 40)));
  });
});

describe('just-in-time accounts (x509.jit)', () => {
  let t: TestPki;
  let app: TestApp;

  before(async () => {
    t = await makeTestPki();
    app = await startApp(t, (config) => { config.x509.jit = true; });
    await app.accounts.create({ username: 'bob' });
  });
  after(async () => {
    await app.close();
    await t.pki.cleanup();
  });

  it('creates and links an account named after the CN at first login, and reuses it', async () => {
    const first = await get(app, '/x509/login?interaction=uid-1', nginx(t.alice));
    assert.equal(first.status, 302, first.text);
    const account = await app.accounts.findByIdentity('x509', `${BASE}/CN=Test Intermediate CA`, normaliseDn(ALICE_DN));
    assert.ok(account);
    assert.deepEqual([account.username, account.name, account.email], ['alice.emile', 'Alice Émile', 'alice@example.org']);
    assert.equal(app.hooks.logins.at(-1)?.account, account.id);
    const events = await app.audit.recent(2);
    assert.deepEqual(events.map((e) => e.type), ['login', 'identity.linked']);
    assert.equal(events[1]!.detail?.jit, true);

    assert.equal((await get(app, '/x509/login?interaction=uid-2', nginx(t.alice))).status, 302);
    assert.equal(app.hooks.logins.at(-1)?.account, account.id);
    assert.equal((await app.accounts.list()).length, 2);
  });

  it('picks a free username', async () => {
    assert.equal((await get(app, '/x509/login?interaction=uid-3', nginx(t.bob))).status, 302);
    const account = await app.accounts.findByIdentity('x509', `${BASE}/CN=Test Root CA`, `${BASE}/CN=Bob`);
    assert.equal(account?.username, 'bob-2');
  });

  it('still refuses certificates that do not validate', async () => {
    assert.equal((await get(app, '/x509/login?interaction=uid-4', nginx(t.expired))).status, 403);
    assert.equal((await app.accounts.list()).length, 3);
  });
});

describe('assembly', () => {
  it('refuses to start on an unreadable trust anchor directory', async () => {
    const config = await loadConfig({});
    config.x509 = { ...config.x509, enabled: true, trustAnchorsDir: '/nonexistent/fedgate-anchors', reloadSeconds: 0 };
    const logger = createLogger('silent');
    const store = new MemoryStore();
    await assert.rejects(
      createX509Bridge({ config, logger, audit: new Audit(store, logger, 10), accounts: new Accounts(store), hooks: new FakeHooks() }),
      /x509\.trustAnchorsDir: cannot read \/nonexistent\/fedgate-anchors \(ENOENT\)/,
    );
  });

  it('passes every request on when X.509 login is disabled, and still reads certificates for RFC 8705', async () => {
    const config = await loadConfig({});
    config.trustedProxies = ['127.0.0.1'];
    const logger = createLogger('silent');
    const store = new MemoryStore();
    const bridge = await createX509Bridge({ config, logger, audit: new Audit(store, logger, 10), accounts: new Accounts(store), hooks: new FakeHooks() });
    const app = new Koa();
    app.use(bridge.routes);
    app.use((ctx) => { ctx.body = `next ${bridge.clientCertificatePem(ctx) ? 'with' : 'without'} certificate`; });
    const server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const res = await fetch(`http://127.0.0.1:${port}/x509/login?interaction=x`, { headers: { 'client-cert': ':AQID:' } });
      assert.equal(await res.text(), 'next without certificate');
      assert.equal(bridge.trustAnchors, undefined);
      const refused = bridge.verifyCertificate('-----BEGIN CERTIFICATE-----\nAQID\n-----END CERTIFICATE-----\n');
      assert.equal(refused.ok, false);
      assert.equal(bridge.verifyCertificate('nothing').ok, false);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await bridge.close();
    }
  });
});
