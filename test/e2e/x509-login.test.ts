import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as oidc from 'openid-client';
import { Agent, fetch as undiciFetch } from 'undici';
import { adminToken as obtainAdminToken, Browser, decodeJwt, formAction, loginThroughPages, pkceAuthorizationUrl, rawRequest, rp, startServer, type TestServer } from '../support/harness.ts';
import { makeTestPki, type TestPki } from '../federation/x509/fixture.ts';

const PORTAL_REDIRECT = 'http://localhost:3000/callback';

/** An HTTPS request to the mTLS listener presenting a client certificate. */
function mtls(port: number, path: string, cert: { pem: string; key: string } | undefined, init: { method?: string; headers?: Record<string, string>; body?: string } = {}) {
  return new Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }>((resolve, reject) => {
    const req = httpsRequest({
      host: '127.0.0.1', port, path, method: init.method ?? 'GET', headers: init.headers ?? {},
      ...(cert ? { cert: cert.pem, key: cert.key } : {}),
      rejectUnauthorized: false, // fedgate's listener certificate is self-signed in the test
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end(init.body);
  });
}

/** An admin token of the demo administrator (admin API). */
let adminTokenValue: string | undefined;
async function adminTokenFor(issuer: string): Promise<string> {
  adminTokenValue ??= await obtainAdminToken(issuer);
  return adminTokenValue;
}

/** RFC 9440 Client-Cert: the DER as a structured-field byte sequence. */
const clientCertHeader = (pem: string) => `:${new X509Certificate(pem).raw.toString('base64')}:`;

/**
 * Certificate login through the whole of fedgate: linking a certificate on the
 * account page, signing in with it (behind a trusted proxy's header, and on
 * fedgate's own mTLS listener), and RFC 8705 clients with certificate-bound
 * tokens that the gateway checks.
 */
/** A self-signed certificate and key made with openssl (the PKI's working directory). */
async function makeSelfSigned(pki: TestPki): Promise<{ pem: string; key: string }> {
  const keyFile = join(pki.pki.dir, 'self-signed.key');
  const certFile = join(pki.pki.dir, 'self-signed.pem');
  await pki.pki.openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '2', '-subj', '/CN=self-signed robot');
  return { pem: await readFile(certFile, 'utf8'), key: await readFile(keyFile, 'utf8') };
}

describe('X.509 certificate login and mTLS clients', () => {
  let selfSigned: { pem: string; key: string };
  let pki: TestPki;
  let server: TestServer;
  let mtlsPort: number;

  before(async () => {
    pki = await makeTestPki();
    server = await startServer({
      configure: (config) => {
        config.trustedProxies = ['127.0.0.1'];
        config.x509 = { ...config.x509, enabled: true, trustAnchorsDir: pki.anchors, mtlsPort: 0 };
        config.clients.push({
          clientId: 'mtls-robot', name: 'Certificate robot', applicationType: 'web', grantTypes: ['client_credentials'],
          redirectUris: [], postLogoutRedirectUris: [], consentRequired: false,
          tokenEndpointAuthMethod: 'tls_client_auth', tlsClientAuthSubjectDn: '/DC=org/DC=fedgate-test/CN=Bob', certificateBoundAccessTokens: true,
        });
        config.clients.push({
          clientId: 'mtls-admin', name: 'Certificate admin robot', applicationType: 'web', grantTypes: ['client_credentials'],
          redirectUris: [], postLogoutRedirectUris: [], consentRequired: false, scopes: ['fedgate.admin'],
          tokenEndpointAuthMethod: 'tls_client_auth', tlsClientAuthSubjectDn: '/DC=org/DC=fedgate-test/CN=Bob', certificateBoundAccessTokens: true,
        });
      },
    });
    mtlsPort = (server.fedgate.mtlsServer()!.address() as { port: number }).port;
    // A self-signed client (RFC 8705 §2.2): registered with its certificate in a JWK Set, through dynamic registration.
    selfSigned = await makeSelfSigned(pki);
  });
  after(async () => {
    await server.cleanup();
    await pki.pki.cleanup();
  });

  it('links a certificate on the account page and signs in with it', async () => {
    const browser = new Browser();
    const first = await browser.request(`${server.issuer}/account`);
    await browser.request(await loginThroughPages(browser, new URL(first.headers.get('location')!, server.issuer), `${server.issuer}/account/callback`, { username: 'alice', password: 'alice-password' }));
    const account = await (await browser.request(`${server.issuer}/account`)).text();
    const link = formAction(account.replace(/<a href="([^"]*\/x509\/link[^"]*)"/, '<form action="$1"'), '/x509/link');
    // The proxy in front (127.0.0.1, trusted) passes the browser's certificate on.
    const linkPath = new URL(link, server.issuer);
    const linked = await browser.request(new URL(`${server.issuer}${linkPath.pathname}${linkPath.search}`), { headers: { 'client-cert': clientCertHeader(pki.alice.pem) } });
    assert.ok(linked.status < 400, `link answered ${linked.status}: ${(await linked.text()).slice(0, 300)}`);
    const alice = (await server.fedgate.accounts.findByUsername('alice'))!;
    assert.equal(alice.identities.length, 1);
    assert.equal(alice.identities[0]!.type, 'x509');

    // Sign in to the portal with the certificate alone.
    const portal = await rp(server.issuer, 'demo-portal', 'demo-portal-secret');
    const { url, verifier } = await pkceAuthorizationUrl(portal, { redirect_uri: PORTAL_REDIRECT, scope: 'openid' });
    const fresh = new Browser();
    const loginPage = await fresh.follow(url, () => false);
    const page = await loginPage.res.text();
    const certLink = /<a href="([^"]*\/x509\/login\?interaction=[^"]*)"/.exec(page)?.[1]?.replace(/&amp;/g, '&');
    assert.ok(certLink, 'the login page offers certificate login');
    const target = new URL(certLink);
    // Behind the trusted proxy, on the main port: the certificate comes in its header.
    const signedIn = await fresh.request(new URL(`${server.issuer}${target.pathname}${target.search}`), { headers: { 'client-cert': clientCertHeader(pki.alice.pem) } });
    assert.equal(signedIn.status, 303, (await signedIn.text()).slice(0, 300));
    const callback = await loginThroughPages(fresh, new URL(signedIn.headers.get('location')!, server.issuer), PORTAL_REDIRECT, { username: 'unused', password: 'unused' });
    const tokens = await oidc.authorizationCodeGrant(portal, callback, { pkceCodeVerifier: verifier });
    assert.equal(decodeJwt(tokens.id_token!).payload.sub, alice.id, 'the certificate reached alice\'s account');
    assert.ok((await server.fedgate.audit.recent(30)).some((e) => e.type === 'login' && (e.detail as { method?: string })?.method === 'x509'));
  });

  it('signs in on fedgate\'s own mTLS listener, which asks the browser for its certificate', async () => {
    const portal = await rp(server.issuer, 'demo-portal', 'demo-portal-secret');
    const { url, verifier } = await pkceAuthorizationUrl(portal, { redirect_uri: PORTAL_REDIRECT, scope: 'openid' });
    const browser = new Browser();
    const page = await (await browser.follow(url, () => false)).res.text();
    const certLink = new URL(/<a href="([^"]*\/x509\/login\?interaction=[^"]*)"/.exec(page)![1]!.replace(/&amp;/g, '&'));
    assert.equal(certLink.protocol, 'https:');
    assert.equal(Number(certLink.port), mtlsPort, 'the login page links to the mTLS listener');
    // The TLS handshake carries alice's certificate (a browser's client certificate prompt).
    const tls = new Agent({ connect: { cert: pki.alice.pem, key: pki.alice.key, rejectUnauthorized: false } });
    const signedIn = await undiciFetch(certLink, { dispatcher: tls, redirect: 'manual' });
    assert.equal(signedIn.status, 303, (await signedIn.text()).slice(0, 300));
    // Back on the issuer's origin, where this browser's interaction cookie proves it started the sign-in.
    const federated = new URL(signedIn.headers.get('location')!, server.issuer);
    assert.match(federated.pathname, /^\/interaction\/[^/]+\/federated$/);
    const parked = new URL(`${server.issuer}${federated.pathname}${federated.search}`);
    assert.equal((await new Browser().request(parked)).status, 400, 'another browser (no interaction cookie) cannot take the parked login');
    const callback = await loginThroughPages(browser, parked, PORTAL_REDIRECT, { username: 'unused', password: 'unused' });
    const tokens = await oidc.authorizationCodeGrant(portal, callback, { pkceCodeVerifier: verifier });
    assert.equal(decodeJwt(tokens.id_token!).payload.sub, (await server.fedgate.accounts.findByUsername('alice'))!.id);
    await tls.close();
  });

  it('refuses untrusted, revoked, expired and malformed certificates, and headers from untrusted addresses', async () => {
    const reasonOf = async (headers: Record<string, string>, origin = server.issuer) => {
      const res = await rawRequest(origin, '/x509/login?interaction=unknown-interaction', { headers });
      assert.ok(res.status >= 400 && res.status < 500, `${JSON.stringify(headers).slice(0, 60)}: ${res.status}`);
      assert.doesNotMatch(res.body, /at .*\.ts:\d+/, 'no stack trace');
      const event = (await server.fedgate.audit.recent(5)).find((e) => e.type === 'login.failed');
      return (event?.detail as { reason?: string } | undefined)?.reason;
    };
    assert.equal(await reasonOf({ 'client-cert': clientCertHeader(pki.mallory.pem) }), 'untrusted');
    assert.equal(await reasonOf({ 'client-cert': clientCertHeader(pki.revoked.pem) }), 'revoked');
    assert.equal(await reasonOf({ 'client-cert': clientCertHeader(pki.expired.pem) }), 'expired');
    assert.equal(await reasonOf({ 'client-cert': ':bm90IGEgY2VydGlmaWNhdGU=:' }), 'malformed');
  });

  it('authenticates a self_signed_tls_client_auth client by its certificate (RFC 8705 §2.2)', async () => {
    const created = await fetch(`${server.issuer}/admin/api/initial-access-tokens`, { method: 'POST', headers: { authorization: `Bearer ${await adminTokenFor(server.issuer)}` } });
    const iat = ((await created.json()) as { initial_access_token: string }).initial_access_token;
    const jwk = { ...(new X509Certificate(selfSigned.pem).publicKey.export({ format: 'jwk' })), x5c: [new X509Certificate(selfSigned.pem).raw.toString('base64')] };
    const registration = await fetch(`${server.issuer}/reg`, {
      method: 'POST', headers: { authorization: `Bearer ${iat}`, 'content-type': 'application/json' },
      body: JSON.stringify({ grant_types: ['client_credentials'], response_types: [], redirect_uris: [], token_endpoint_auth_method: 'self_signed_tls_client_auth', jwks: { keys: [jwk] }, tls_client_certificate_bound_access_tokens: true }),
    });
    assert.equal(registration.status, 201, await registration.clone().text());
    const clientId = ((await registration.json()) as { client_id: string }).client_id;
    const body = new URLSearchParams({ grant_type: 'client_credentials', client_id: clientId, resource: 'https://orchestrator.demo', scope: 'compute.read' }).toString();
    const headers = { 'content-type': 'application/x-www-form-urlencoded' };
    assert.equal((await mtls(mtlsPort, '/token', { pem: pki.bob.pem, key: pki.bob.key }, { method: 'POST', headers, body })).status, 401, 'another certificate');
    const ok = await mtls(mtlsPort, '/token', selfSigned, { method: 'POST', headers, body });
    assert.equal(ok.status, 200, ok.body);
    const cnf = decodeJwt((JSON.parse(ok.body) as { access_token: string }).access_token).payload.cnf as Record<string, string>;
    assert.equal(cnf['x5t#S256'], createHash('sha256').update(new X509Certificate(selfSigned.pem).raw).digest('base64url'));
  });

  it('serves the mTLS listener: tls_client_auth, certificate-bound tokens, and the gateway checks the binding', async () => {
    const body = new URLSearchParams({ grant_type: 'client_credentials', client_id: 'mtls-robot', resource: 'https://orchestrator.demo', scope: 'compute.read' }).toString();
    const headers = { 'content-type': 'application/x-www-form-urlencoded' };
    const refused = await mtls(mtlsPort, '/token', { pem: pki.alice.pem, key: pki.alice.key }, { method: 'POST', headers, body });
    assert.equal(refused.status, 401, `another subject DN is not the client: ${refused.body}`);
    const res = await mtls(mtlsPort, '/token', { pem: pki.bob.pem, key: pki.bob.key }, { method: 'POST', headers, body });
    assert.equal(res.status, 200, `${res.body}\n${server.logs.lines.filter((l) => /token|cert|client/i.test(l)).slice(-8).join('\n')}`);
    const token = (JSON.parse(res.body) as { access_token: string }).access_token;
    const thumbprint = createHash('sha256').update(new X509Certificate(pki.bob.pem).raw).digest('base64url');
    assert.equal((decodeJwt(token).payload.cnf as Record<string, string>)['x5t#S256'], thumbprint);

    const authz = (cert: { pem: string; key: string } | undefined) => mtls(mtlsPort, '/authz?service=orchestrator', cert, {
      headers: { authorization: `Bearer ${token}`, 'x-original-method': 'GET', 'x-original-uri': '/deployments/1' },
    });
    // The policy has no rule for this client: the binding is checked first (401), then the policy (403).
    assert.equal((await authz({ pem: pki.alice.pem, key: pki.alice.key })).status, 401, 'another certificate');
    assert.equal((await authz(undefined)).status, 401, 'no certificate');
    assert.equal((await authz({ pem: pki.bob.pem, key: pki.bob.key })).status, 403, 'the right certificate passes authentication');
  });

  it('takes a certificate-bound admin token at the admin API only with its certificate', async () => {
    const body = new URLSearchParams({ grant_type: 'client_credentials', client_id: 'mtls-admin', resource: `${server.issuer}/admin/api`, scope: 'fedgate.admin' }).toString();
    const res = await mtls(mtlsPort, '/token', { pem: pki.bob.pem, key: pki.bob.key }, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body });
    assert.equal(res.status, 200, res.body);
    const { access_token: token, scope } = JSON.parse(res.body) as { access_token: string; scope: string };
    assert.equal(scope, 'fedgate.admin');
    const accounts = (cert: { pem: string; key: string } | undefined) => mtls(mtlsPort, '/admin/api/accounts', cert, { headers: { authorization: `Bearer ${token}` } });
    assert.equal((await accounts({ pem: pki.bob.pem, key: pki.bob.key })).status, 200);
    const other = await accounts({ pem: pki.alice.pem, key: pki.alice.key });
    assert.equal(other.status, 401, 'another certificate');
    assert.match(String(other.headers['www-authenticate']), /error="invalid_token"/);
    assert.equal((await accounts(undefined)).status, 401, 'no certificate');
    assert.equal((await rawRequest(server.issuer, '/admin/api/accounts', { headers: { authorization: `Bearer ${token}` } })).status, 401, 'on the plain listener');
  });
});
