import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { Agent, request as httpsRequest, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Koa, { type Context } from 'koa';
import { Accounts, type Account } from '../../../src/accounts/accounts.ts';
import { loadConfig, type Config } from '../../../src/config/index.ts';
import type { FederationHooks } from '../../../src/federation/types.ts';
import { createX509Bridge, MTLS_SERVER_FILE, normaliseDn, selfSignedServerCertificate, type X509Bridge } from '../../../src/federation/x509/index.ts';
import { Audit } from '../../../src/observability/audit.ts';
import { createLogger } from '../../../src/observability/logger.ts';
import { MemoryStore } from '../../../src/store/index.ts';
import { ALICE_DN, BASE, makeTestPki, type TestPki } from './fixture.ts';
import type { Issued } from './pki.ts';

class Hooks implements FederationHooks {
  readonly logins: string[] = [];
  async finishLogin(ctx: Context, uid: string, account: Account): Promise<void> {
    this.logins.push(account.id);
    ctx.redirect(`/interaction/${uid}/done`);
  }
  async currentAccount(): Promise<Account | undefined> {
    return undefined;
  }
}

interface Answer {
  status: number;
  body: string;
  serverCert: X509Certificate;
}

/** A GET over TLS presenting `cert` (its PEM, with the chain appended) and `key`. */
function tlsGet(port: number, path: string, client?: { cert: string; key: string }, options: { ca?: string; headers?: Record<string, string> } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({
      host: '127.0.0.1', port, path, agent: false, headers: options.headers,
      ...(options.ca ? { ca: options.ca, servername: 'localhost' } : { rejectUnauthorized: false }),
      ...(client ? { cert: client.cert, key: client.key } : {}),
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const peer = (res.socket as import('node:tls').TLSSocket).getPeerX509Certificate?.();
        resolve({ status: res.statusCode!, body: Buffer.concat(chunks).toString('utf8'), serverCert: peer! });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

const presenting = (leaf: Issued, ...chain: Issued[]) => ({ cert: [leaf, ...chain].map((c) => c.pem).join(''), key: leaf.key });

/** The CA names the server asks for, as `openssl s_client` prints them. */
function acceptableCas(port: number): Promise<string> {
  return new Promise((resolve) => {
    const child = execFile('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-tls1_2'], { timeout: 5000 }, (_err, stdout) => resolve(stdout));
    child.stdin?.end();
  });
}

describe('the mTLS listener', () => {
  let t: TestPki;
  let keysDir: string;
  let config: Config;
  let bridge: X509Bridge;
  let server: Server;
  let port: number;
  let accounts: Accounts;
  const hooks = new Hooks();
  let alice: Account;

  before(async () => {
    t = await makeTestPki();
    keysDir = await mkdtemp(join(tmpdir(), 'fedgate-mtls-keys-'));
    config = await loadConfig({});
    config.keysDir = keysDir;
    config.trustedProxies = ['127.0.0.1'];
    config.x509 = { ...config.x509, enabled: true, trustAnchorsDir: t.anchors, reloadSeconds: 0 };
    const store = new MemoryStore();
    const logger = createLogger('silent');
    accounts = new Accounts(store);
    alice = await accounts.create({ username: 'alice' });
    await accounts.link(alice.id, { type: 'x509', issuer: `${BASE}/CN=Test Intermediate CA`, subject: normaliseDn(ALICE_DN) });
    bridge = await createX509Bridge({ config, logger, audit: new Audit(store, logger, 1000), accounts, hooks });
    const app = new Koa();
    app.use(bridge.routes);
    server = await bridge.listen(app.callback(), 0, '127.0.0.1');
    port = (server.address() as AddressInfo).port;
  });
  after(async () => {
    await bridge.close();
    await rm(keysDir, { recursive: true, force: true });
    await t.pki.cleanup();
  });

  it('makes a self-signed server certificate for the issuer\'s host in the keys directory, once', async () => {
    const file = join(keysDir, MTLS_SERVER_FILE);
    const text = await readFile(file, 'utf8');
    assert.match(text, /-----BEGIN PRIVATE KEY-----/);
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    const cert = new X509Certificate(text);
    assert.equal(cert.checkHost('localhost'), 'localhost');
    assert.equal(cert.ca, false);
    // A TLS client that trusts exactly this certificate accepts the connection (valid encoding, SAN, signature).
    const res = await tlsGet(port, '/x509/login?interaction=uid-0', presenting(t.alice), { ca: cert.toString() });
    assert.equal(res.status, 302);
    assert.equal(res.serverCert.fingerprint256, cert.fingerprint256);
    // A second listener reuses the pair.
    const again = await bridge.listen(new Koa().callback(), 0, '127.0.0.1');
    assert.equal((await readFile(file, 'utf8')), text);
    await new Promise<void>((resolve) => again.close(() => resolve()));
  });

  it('logs in with the certificate of the TLS connection', async () => {
    const res = await tlsGet(port, '/x509/login?interaction=uid-1', presenting(t.alice));
    assert.equal(res.status, 302, res.body);
    assert.equal(hooks.logins.at(-1), alice.id);
  });

  it('logs in with an RFC 3820 proxy chain sent in the handshake', async () => {
    const before = hooks.logins.length;
    const res = await tlsGet(port, '/x509/login?interaction=uid-2', presenting(t.proxy2, t.proxy1, t.alice, t.intermediate));
    assert.equal(res.status, 302, res.body);
    assert.equal(hooks.logins.length, before + 1);
    assert.equal(hooks.logins.at(-1), alice.id);
  });

  it('logs in with a legacy Globus proxy sent in the handshake', async () => {
    const before = hooks.logins.length;
    const res = await tlsGet(port, '/x509/login?interaction=uid-2', presenting(t.legacy, t.alice, t.intermediate));
    assert.equal(res.status, 302, res.body);
    assert.equal(hooks.logins.length, before + 1);
  });

  it('keeps the chain for later requests on the same connection', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1, rejectUnauthorized: false, ...presenting(t.legacy, t.alice, t.intermediate) });
    try {
      const get = (uid: string) => new Promise<{ status: number; reused: boolean }>((resolve, reject) => {
        const req = httpsRequest({ host: '127.0.0.1', port, path: `/x509/login?interaction=${uid}`, agent }, (res) => {
          res.resume();
          res.on('end', () => resolve({ status: res.statusCode!, reused: req.reusedSocket }));
        });
        req.on('error', reject);
        req.end();
      });
      assert.deepEqual(await get('uid-k1'), { status: 302, reused: false });
      assert.deepEqual(await get('uid-k2'), { status: 302, reused: true });
    } finally {
      agent.destroy();
    }
  });

  it('keeps an intermediate the client sends that is not in the trust directory (nodejs/node#65579)', async () => {
    // Client CA is not an anchor: only the handshake brings it. node's own verification succeeds on this chain, which used to drop it.
    const json = { headers: { accept: 'application/json' } };
    const dave = await tlsGet(port, '/x509/login?interaction=uid-i1', presenting(t.dave, t.clientCa), json);
    assert.equal(dave.status, 403, dave.body);
    assert.equal(JSON.parse(dave.body).reason, 'not_linked', 'the chain validated: Dave is merely linked to no account');
    // A certificate that CA revoked is refused as revoked (not as untrusted).
    const rex = await t.pki.issue(t.clientCa, 'rex', `${BASE}/CN=Rex Revoked`);
    await t.pki.revoke(t.clientCa, rex);
    await writeFile(join(t.anchors, 'client-ca.crl.pem'), await t.pki.crl(t.clientCa));
    try {
      assert.equal(await bridge.reloadTrustAnchors(), true);
      const revoked = await tlsGet(port, '/x509/login?interaction=uid-i2', presenting(rex, t.clientCa), json);
      assert.equal(JSON.parse(revoked.body).reason, 'revoked', revoked.body);
      const again = await tlsGet(port, '/x509/login?interaction=uid-i3', presenting(t.dave, t.clientCa), json);
      assert.equal(JSON.parse(again.body).reason, 'not_linked', again.body);
    } finally {
      await unlink(join(t.anchors, 'client-ca.crl.pem'));
      await bridge.reloadTrustAnchors();
    }
  });

  it('does not believe certificate headers, even from a trusted proxy address', async () => {
    const before = hooks.logins.length;
    const headers = { 'x-ssl-client-cert': encodeURIComponent(t.alice.pem), 'client-cert': `:${t.alice.der.toString('base64')}:`, accept: 'application/json' };
    const res = await tlsGet(port, '/x509/login?interaction=uid-h1', undefined, { headers });
    assert.equal(res.status, 400, res.body);
    assert.equal(JSON.parse(res.body).reason, 'no_certificate');
    assert.equal(hooks.logins.length, before);
  });

  it('answers a refused certificate, or none, with a page instead of a TLS alert', async () => {
    const none = await tlsGet(port, '/x509/login?interaction=uid-3');
    assert.equal(none.status, 400);
    assert.match(none.body, /No client certificate was presented/);
    const mallory = await tlsGet(port, '/x509/login?interaction=uid-3', presenting(t.mallory));
    assert.equal(mallory.status, 403);
    assert.match(mallory.body, /not issued by a trusted CA/);
    const expired = await tlsGet(port, '/x509/login?interaction=uid-3', presenting(t.expired));
    assert.equal(expired.status, 403);
    assert.match(expired.body, /expired/);
  });

  it('believes the TLS connection over a header, even from a trusted proxy address', async () => {
    const res = await tlsGet(port, '/x509/login?interaction=uid-4', presenting(t.mallory), { headers: { 'x-ssl-client-cert': encodeURIComponent(t.alice.pem) } });
    assert.equal(res.status, 403);
  });

  it('names the trust anchors as acceptable CAs, and follows reloads', async () => {
    const cas = await acceptableCas(port);
    assert.match(cas, /Acceptable client certificate CA names/);
    assert.match(cas, /CN ?= ?Test Root CA/);
    assert.match(cas, /CN ?= ?Test Intermediate CA/);
    assert.doesNotMatch(cas, /Client CA/);
    await writeFile(join(t.anchors, 'client-ca.pem'), t.clientCa.pem);
    assert.equal(await bridge.reloadTrustAnchors(), true);
    assert.match(await acceptableCas(port), /CN ?= ?Client CA/);
  });

  it('builds login links to itself', () => {
    assert.equal(bridge.loginUrl('a b'), `https://localhost:${port}/x509/login?interaction=a%20b`);
    assert.equal(bridge.linkUrl(), `https://localhost:${port}/x509/link`);
  });
});

describe('the mTLS listener with a configured server certificate', () => {
  let t: TestPki;
  let dir: string;

  before(async () => {
    t = await makeTestPki();
    dir = await mkdtemp(join(tmpdir(), 'fedgate-mtls-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
    await t.pki.cleanup();
  });

  it('serves the configured certificate and key', async () => {
    const server = await t.pki.issue(t.root, 'server', `${BASE}/CN=localhost`, {
      extensions: ['basicConstraints = critical,CA:FALSE', 'keyUsage = critical,digitalSignature', 'extendedKeyUsage = serverAuth', 'subjectAltName = DNS:localhost'],
    });
    const config = await loadConfig({});
    config.keysDir = dir;
    config.x509 = { ...config.x509, enabled: true, trustAnchorsDir: t.anchors, reloadSeconds: 0, tlsCertFile: server.certFile, tlsKeyFile: server.keyFile, publicUrl: 'https://cert.example.org/' };
    const logger = createLogger('silent');
    const store = new MemoryStore();
    const bridge = await createX509Bridge({ config, logger, audit: new Audit(store, logger, 100), accounts: new Accounts(store), hooks: new Hooks() });
    const app = new Koa();
    app.use(bridge.routes);
    const listener = await bridge.listen(app.callback(), 0, '127.0.0.1');
    try {
      const { port } = listener.address() as AddressInfo;
      const res = await tlsGet(port, '/x509/login?interaction=uid', presenting(t.bob), { ca: t.root.pem });
      assert.equal(res.status, 403, 'bob is linked to no account'); // the connection itself verified against the configured chain
      assert.equal(res.serverCert.fingerprint256, new X509Certificate(server.pem).fingerprint256);
      assert.equal(bridge.loginUrl('u'), 'https://cert.example.org/x509/login?interaction=u');
    } finally {
      await bridge.close();
    }
  });

  it('makes valid self-signed certificates for names and addresses', async () => {
    const named = new X509Certificate((await selfSignedServerCertificate('id.example.org')).cert);
    assert.equal(named.checkHost('id.example.org'), 'id.example.org');
    assert.ok(named.verify(named.publicKey));
    assert.equal(named.subject, 'CN=id.example.org');
    const ip = new X509Certificate((await selfSignedServerCertificate('192.0.2.1')).cert);
    assert.equal(ip.checkIP('192.0.2.1'), '192.0.2.1');
    assert.ok(ip.validToDate.getTime() - Date.now() > 300 * 86_400_000);
  });
});
