import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer as createHttpsServer, request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { bearer, nginx, send, startFixture, type Fixture } from './fixture.ts';

const run = promisify(execFile);

/** A self-signed certificate and key made with openssl: PEM files and the DER bytes. */
async function makeCertificate(dir: string, name: string): Promise<{ der: Buffer; pem: Buffer; key: Buffer; thumbprint: string }> {
  const key = join(dir, `${name}.key`);
  const pem = join(dir, `${name}.pem`);
  const der = join(dir, `${name}.der`);
  await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', pem, '-subj', `/CN=${name}`, '-days', '2']);
  await run('openssl', ['x509', '-in', pem, '-outform', 'DER', '-out', der]);
  const bytes = await readFile(der);
  return { der: bytes, pem: await readFile(pem), key: await readFile(key), thumbprint: createHash('sha256').update(bytes).digest('base64url') };
}

const clientCert = (der: Buffer) => `:${der.toString('base64')}:`;
const ath = (token: string) => createHash('sha256').update(token).digest('base64url');

interface ProofKey {
  privateKey: CryptoKey;
  jwk: JWK;
  jkt: string;
  alg: string;
}

async function proofKey(alg: 'ES256' | 'Ed25519' = 'ES256'): Promise<ProofKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const jwk = await exportJWK(publicKey);
  return { privateKey, jwk, jkt: await calculateJwkThumbprint(jwk), alg };
}

interface ProofOptions {
  htm: string;
  htu: string;
  token: string;
  iat?: number;
  jti?: string;
  ath?: string;
  typ?: string;
  jwk?: JWK;
}

function proof(key: ProofKey, options: ProofOptions): Promise<string> {
  const claims: Record<string, unknown> = {
    htm: options.htm, htu: options.htu, iat: options.iat ?? Math.floor(Date.now() / 1000), jti: options.jti ?? randomUUID(), ath: options.ath ?? ath(options.token),
  };
  return new SignJWT(claims).setProtectedHeader({ alg: key.alg, typ: options.typ ?? 'dpop+jwt', jwk: options.jwk ?? key.jwk }).sign(key.privateKey);
}

describe('DPoP-bound tokens (RFC 9449)', () => {
  let f: Fixture;
  let key: ProofKey;
  let token: string;
  const htu = 'https://data.example/store/cms/file';
  const forwarded = { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'data.example' };

  before(async () => {
    f = await startFixture();
    f.pdp.rules = [{ subject: '/cms', domain: 'data', path: '/store/cms', action: '*' }];
    key = await proofKey();
    token = await f.sign({ cnf: { jkt: key.jkt } });
  });
  after(() => f.close());

  const ask = (headers: Record<string, string | string[]>, method = 'GET') =>
    send(f.url, '/authz?service=data', { headers: { ...nginx(method, '/store/cms/file?x=1'), ...forwarded, ...headers } });

  const assertDpopRefusal = (res: Awaited<ReturnType<typeof send>>, error: string, description?: RegExp) => {
    assert.equal(res.status, 401, res.text);
    assert.equal(res.json().error, error);
    assert.match(String(res.headers['www-authenticate']), new RegExp(`^DPoP realm="fedgate", algs="ES256 EdDSA", error="${error}", error_description="`));
    if (description) assert.match(res.json().error_description, description);
  };

  it('accepts a valid proof (htu without the query), once', async () => {
    const dpop = await proof(key, { htm: 'GET', htu, token });
    const res = await ask({ authorization: `DPoP ${token}`, dpop });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.headers['x-fedgate-user'], 'alice');
    assertDpopRefusal(await ask({ authorization: `DPoP ${token}`, dpop }), 'invalid_dpop_proof', /already used/);
  });

  it('accepts Ed25519 proofs, and an htu differing only in normalisation', async () => {
    const ed = await proofKey('Ed25519');
    const edToken = await f.sign({ cnf: { jkt: ed.jkt } });
    const res = await ask({ authorization: `DPoP ${edToken}`, dpop: await proof(ed, { htm: 'GET', htu: 'HTTPS://Data.Example:443/store/%63ms/file', token: edToken }) });
    assert.equal(res.status, 200, res.text);
  });

  it('refuses a missing proof and more than one', async () => {
    assertDpopRefusal(await ask({ authorization: `DPoP ${token}` }), 'invalid_dpop_proof', /required/);
    const two = [await proof(key, { htm: 'GET', htu, token }), await proof(key, { htm: 'GET', htu, token })];
    assertDpopRefusal(await ask({ authorization: `DPoP ${token}`, dpop: two }), 'invalid_dpop_proof', /exactly one/);
  });

  it('refuses a proof for another method, URL or token', async () => {
    assertDpopRefusal(await ask({ authorization: `DPoP ${token}`, dpop: await proof(key, { htm: 'POST', htu, token }) }), 'invalid_dpop_proof', /htm/);
    assertDpopRefusal(await ask({ authorization: `DPoP ${token}`, dpop: await proof(key, { htm: 'GET', htu: 'https://data.example/store/cms/other', token }) }), 'invalid_dpop_proof', /htu/);
    assertDpopRefusal(await ask({ authorization: `DPoP ${token}`, dpop: await proof(key, { htm: 'GET', htu: 'http://data.example/store/cms/file', token }) }), 'invalid_dpop_proof', /htu/);
    assertDpopRefusal(await ask({ authorization: `DPoP ${token}`, dpop: await proof(key, { htm: 'GET', htu, token, ath: ath('another token') }) }), 'invalid_dpop_proof', /ath/);
  });

  it('refuses stale proofs, proofs of another type and proofs with a private or symmetric key', async () => {
    const old = Math.floor(Date.now() / 1000) - 120;
    assertDpopRefusal(await ask({ authorization: `DPoP ${token}`, dpop: await proof(key, { htm: 'GET', htu, token, iat: old }) }), 'invalid_dpop_proof', /iat/);
    assertDpopRefusal(await ask({ authorization: `DPoP ${token}`, dpop: await proof(key, { htm: 'GET', htu, token, typ: 'JWT' }) }), 'invalid_dpop_proof', /typ/);
    const privateJwk = await exportJWK(key.privateKey);
    assertDpopRefusal(await ask({ authorization: `DPoP ${token}`, dpop: await proof(key, { htm: 'GET', htu, token, jwk: privateJwk }) }), 'invalid_dpop_proof', /public jwk/);
    const secret = new TextEncoder().encode('a shared secret of thirty-two bytes!');
    const hs = await new SignJWT({ htm: 'GET', htu, iat: Math.floor(Date.now() / 1000), jti: randomUUID(), ath: ath(token) })
      .setProtectedHeader({ alg: 'HS256', typ: 'dpop+jwt', jwk: { kty: 'oct', k: Buffer.from(secret).toString('base64url') } as JWK }).sign(secret);
    assertDpopRefusal(await ask({ authorization: `DPoP ${token}`, dpop: hs }), 'invalid_dpop_proof', /algorithm/);
  });

  it('refuses a proof signed by a key other than the bound one (invalid_token)', async () => {
    const other = await proofKey();
    assertDpopRefusal(await ask({ authorization: `DPoP ${token}`, dpop: await proof(other, { htm: 'GET', htu, token }) }), 'invalid_token', /bound/);
  });

  it('refuses a DPoP-bound token presented as a bearer token, even with a valid proof', async () => {
    const res = await ask({ ...bearer(token), dpop: await proof(key, { htm: 'GET', htu, token }) });
    assertDpopRefusal(res, 'invalid_token', /DPoP scheme/);
  });

  it('refuses an unbound token presented with the DPoP scheme', async () => {
    const plain = await f.sign();
    assertDpopRefusal(await ask({ authorization: `DPoP ${plain}`, dpop: await proof(key, { htm: 'GET', htu, token: plain }) }), 'invalid_token', /not DPoP-bound/);
  });

  it('checks proofs at the proxy against the URL the client called', async () => {
    const url = `${f.url}/api/data/store/cms/file?version=2`;
    const htuProxy = `${f.url}/api/data/store/cms/file`;
    const ok = await send(f.url, '/api/data/store/cms/file?version=2', { headers: { authorization: `DPoP ${token}`, dpop: await proof(key, { htm: 'GET', htu: htuProxy, token }) } });
    assert.equal(ok.status, 200, ok.text);
    const received = f.upstream.received.at(-1)!;
    assert.equal(received.url, '/base/store/cms/file?version=2');
    assert.equal(received.headers.authorization, `DPoP ${token}`, 'the data service forwards the token');
    assert.ok(received.headers.dpop, 'and its proof');
    const wrong = await send(f.url, '/api/data/store/cms/file', { headers: { authorization: `DPoP ${token}`, dpop: await proof(key, { htm: 'GET', htu: url.replace('/file', '/other'), token }) } });
    assert.equal(wrong.status, 401);
    assert.equal(wrong.json().error, 'invalid_dpop_proof');
  });

  it('binds opaque tokens too (jkt on the stored token)', async () => {
    const client = await f.provider.Client.find('demo-cli');
    const at = new f.provider.AccessToken({ client: client!, accountId: f.users.alice.id, grantId: 'g', gty: 'authorization_code', scope: 'storage.read:/', aud: 'https://storage.demo', jkt: key.jkt });
    const value = await at.save();
    assertDpopRefusal(await ask(bearer(value)), 'invalid_token', /DPoP scheme/);
    const res = await ask({ authorization: `DPoP ${value}`, dpop: await proof(key, { htm: 'GET', htu, token: value }) });
    assert.equal(res.status, 200, res.text);
  });

  it('lets no error escape to the app boundary', () => {
    assert.deepEqual(f.escaped, []);
  });
});

describe('certificate-bound tokens (RFC 8705)', () => {
  let trusted: Fixture;
  let untrusted: Fixture;
  let dir: string;
  let one: Awaited<ReturnType<typeof makeCertificate>>;
  let two: Awaited<ReturnType<typeof makeCertificate>>;
  let server: Awaited<ReturnType<typeof makeCertificate>>;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fedgate-certs-'));
    [one, two, server] = await Promise.all([makeCertificate(dir, 'client-one'), makeCertificate(dir, 'client-two'), makeCertificate(dir, 'localhost')]);
    trusted = await startFixture({ configure: (config) => { config.trustedProxies = ['10.1.2.3', '127.0.0.0/8']; } });
    untrusted = await startFixture({ configure: (config) => { config.trustedProxies = ['10.0.0.0/8', '::1']; } });
    for (const f of [trusted, untrusted]) f.pdp.rules = [{ subject: '/cms', domain: 'data', path: '/store/cms', action: '*' }];
  });
  after(async () => {
    await trusted.close();
    await untrusted.close();
    await rm(dir, { recursive: true, force: true });
  });

  const ask = (f: Fixture, token: string, extra: Record<string, string> = {}) =>
    send(f.url, '/authz?service=data', { headers: { ...nginx('GET', '/store/cms/x'), ...bearer(token), ...extra } });

  it('accepts the bound certificate from a trusted proxy\'s Client-Cert header (RFC 9440)', async () => {
    const token = await trusted.sign({ cnf: { 'x5t#S256': one.thumbprint } });
    const res = await ask(trusted, token, { 'client-cert': clientCert(one.der) });
    assert.equal(res.status, 200, res.text);
  });

  it('refuses another certificate, none, and a malformed header', async () => {
    const token = await trusted.sign({ cnf: { 'x5t#S256': one.thumbprint } });
    const cases: Array<Record<string, string>> = [{ 'client-cert': clientCert(two.der) }, {}, { 'client-cert': one.der.toString('base64') }, { 'client-cert': ':bm90IGEgY2VydGlmaWNhdGU=:' }];
    for (const extra of cases) {
      const res = await ask(trusted, token, extra);
      assert.equal(res.status, 401, JSON.stringify(extra).slice(0, 40));
      assert.equal(res.json().error, 'invalid_token');
      assert.match(String(res.headers['www-authenticate']), /^Bearer realm="fedgate", error="invalid_token"/);
    }
  });

  it('ignores the header from an address that is not a trusted proxy, and logs a warning without the value', async () => {
    const token = await untrusted.sign({ cnf: { 'x5t#S256': one.thumbprint } });
    const header = clientCert(one.der);
    const res = await ask(untrusted, token, { 'client-cert': header });
    assert.equal(res.status, 401);
    assert.match(res.json().error_description, /none was presented/);
    const warning = untrusted.logs.lines.map((l) => JSON.parse(l)).find((l) => l.level === 'warn' && /not a trusted proxy/.test(l.msg));
    assert.ok(warning, 'a warning is logged');
    assert.equal(warning.peer, '127.0.0.1');
    assert.ok(!untrusted.logs.text.includes(one.der.toString('base64').slice(0, 40)), 'the header value is not logged');
  });

  it('reads the certificate of a TLS connection fedgate terminates itself', async () => {
    const tls = createHttpsServer({ key: server.key, cert: server.pem, requestCert: true, rejectUnauthorized: false }, trusted.app.callback());
    await new Promise<void>((resolve) => tls.listen(0, '127.0.0.1', resolve));
    const { port } = tls.address() as AddressInfo;
    const token = await trusted.sign({ cnf: { 'x5t#S256': two.thumbprint } });
    const call = (cert: typeof one) => new Promise<number>((resolve, reject) => {
      const req = httpsRequest({
        host: '127.0.0.1', port, path: '/authz?service=data', rejectUnauthorized: false, key: cert.key, cert: cert.pem, agent: false,
        // A header naming another certificate loses against the TLS connection's own.
        headers: { ...nginx('GET', '/store/cms/x'), ...bearer(token), 'client-cert': clientCert(one.der) },
      }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode!));
      });
      req.on('error', reject);
      req.end();
    });
    try {
      assert.equal(await call(two), 200);
      assert.equal(await call(one), 401);
    } finally {
      tls.closeAllConnections();
      await new Promise<void>((resolve) => tls.close(() => resolve()));
    }
  });
});
