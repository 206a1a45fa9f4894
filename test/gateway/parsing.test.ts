import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { importJWK, SignJWT, type JWK } from 'jose';
import type Provider from 'oidc-provider';
import { Accounts } from '../../src/accounts/accounts.ts';
import {
  challengeFor, identityHeaders, InvalidRequest, InvalidToken, isStrippedHeader, normaliseHtu, parseAuthorization, parseClientCertHeader,
  parseRequestTarget, safeHeaderValue, Unauthorized, UriTooLong, AccessDenied, type Identity,
} from '../../src/gateway/index.ts';
import { TokenVerifier } from '../../src/gateway/token-verifier.ts';
import { loadOrCreateKeys, publicJwks, rotateKeys, type KeySet } from '../../src/keys/index.ts';
import { MemoryStore } from '../../src/store/index.ts';

describe('request targets', () => {
  it('decodes the path for the policy and keeps the raw path and query for forwarding', () => {
    assert.deepEqual(parseRequestTarget('/'), { rawPath: '/', path: '/', query: '' });
    assert.deepEqual(parseRequestTarget('/store/cms/file.root'), { rawPath: '/store/cms/file.root', path: '/store/cms/file.root', query: '' });
    assert.deepEqual(parseRequestTarget('/store/caf%C3%A9/a%20b?x=1&y=%zz'), { rawPath: '/store/caf%C3%A9/a%20b', path: '/store/café/a b', query: 'x=1&y=%zz' });
    assert.deepEqual(parseRequestTarget('/store/cms/'), { rawPath: '/store/cms/', path: '/store/cms', query: '' }, 'trailing slash: kept raw, off for the policy');
    assert.deepEqual(parseRequestTarget('/store/...hidden/a..b'), { rawPath: '/store/...hidden/a..b', path: '/store/...hidden/a..b', query: '' }, 'dots inside names are fine');
    assert.deepEqual(parseRequestTarget('/a?'), { rawPath: '/a', path: '/a', query: '' });
  });

  it('refuses everything ambiguous with invalid_request', () => {
    const refused = [
      '', 'store/cms', '*', 'http://evil.example/store', '//evil.example/x',
      '/store/../atlas', '/store/./x', '/store/..', '/..', '/.', '/store/%2e%2e/atlas', '/store/%2E/x', '/store/.%2e/atlas',
      '/store//atlas', '/store/cms//', '/store%2fatlas', '/store%2Fatlas', '/store%5catlas', '/store%5Catlas', '/store\\atlas',
      '/store/%00', '/store/a%0d%0aX-Injected:%201', '/store/\x00', '/store/a\tb', '/store/a b', '/store/\x7f', '/store/é',
      '/store/%', '/store/%2', '/store/%zz', '/store/%c3%28', '/store/%ed%a0%80', '/store/#frag', '/store?x=#y',
    ];
    for (const target of refused) {
      assert.throws(() => parseRequestTarget(target), InvalidRequest, JSON.stringify(target));
    }
  });

  it('answers 414 above 8 KiB', () => {
    assert.throws(() => parseRequestTarget(`/${'a'.repeat(8 * 1024)}`), UriTooLong);
    assert.doesNotThrow(() => parseRequestTarget(`/${'a'.repeat(8 * 1024 - 1)}`));
  });
});

describe('Authorization header', () => {
  it('reads Bearer and DPoP tokens, case-insensitively', () => {
    assert.deepEqual(parseAuthorization('Bearer abc.def-_~+/=='), { scheme: 'Bearer', token: 'abc.def-_~+/==' });
    assert.deepEqual(parseAuthorization('bearer  abc'), { scheme: 'Bearer', token: 'abc' });
    assert.deepEqual(parseAuthorization('DPoP abc'), { scheme: 'DPoP', token: 'abc' });
  });

  it('treats no header and other schemes as no credentials, and malformed ones as invalid_request', () => {
    assert.throws(() => parseAuthorization(undefined), Unauthorized);
    assert.throws(() => parseAuthorization('Basic YTpi'), Unauthorized);
    for (const header of ['Bearer', 'Bearer a b', 'Bearer a=b', 'Bearer "a"', ' Bearer a', 'Bearer\ta']) {
      assert.throws(() => parseAuthorization(header), InvalidRequest, header);
    }
  });
});

describe('challenges', () => {
  it('writes RFC 6750 and RFC 9449 challenges without quotes or control characters from descriptions', () => {
    assert.equal(challengeFor(new Unauthorized('x')), 'Bearer realm="fedgate"');
    const dpop = new InvalidToken('bad "value"\r\nInjected: 1');
    dpop.scheme = 'DPoP';
    assert.equal(challengeFor(dpop), 'DPoP realm="fedgate", algs="ES256 EdDSA", error="invalid_token", error_description="bad \'value\'Injected: 1"');
    assert.equal(challengeFor(new AccessDenied('no')), undefined);
    assert.equal(challengeFor(new AccessDenied('no', ['storage.read:/', 'x'])), 'Bearer realm="fedgate", error="insufficient_scope", scope="storage.read:/ x"');
  });
});

describe('identity headers', () => {
  it('makes values header-safe', () => {
    assert.equal(safeHeaderValue('alice /cms,/atlas'), 'alice /cms,/atlas');
    assert.equal(safeHeaderValue('100%'), '100%');
    assert.equal(safeHeaderValue('évi 100%'), '%C3%A9vi 100%25');
    assert.equal(safeHeaderValue('a\r\nX-Injected: 1'), 'a%0D%0AX-Injected: 1');
    assert.equal(safeHeaderValue('bad \ud800'), undefined);
  });

  it('lists the identity and leaves out what a client token lacks', () => {
    const identity: Identity = {
      subject: 'svc', groups: [], effectiveGroups: [], clientId: 'svc', scopes: ['a', 'b'], audience: ['https://x'], expiresAt: 1700000000, format: 'jwt', exchanged: false,
    };
    assert.deepEqual(identityHeaders(identity), [
      ['X-Fedgate-Subject', 'svc'], ['X-Fedgate-Client', 'svc'], ['X-Fedgate-Scope', 'a b'], ['X-Fedgate-Audience', 'https://x'], ['X-Fedgate-Token-Expires', '1700000000'],
    ]);
    assert.equal(identityHeaders(identity), identityHeaders(identity), 'computed once per identity');
  });

  it('strips the whole family, case-insensitively by lower-case name', () => {
    for (const name of ['x-fedgate-user', 'x-fedgate-whatever', 'x-auth-request-email', 'x-forwarded-user', 'remote-user', 'client-cert', 'ssl-client-cert', 'x-forwarded-client-cert']) {
      assert.ok(isStrippedHeader(name), name);
    }
    for (const name of ['authorization', 'x-forwarded-for', 'cookie', 'x-user-agent']) assert.ok(!isStrippedHeader(name), name);
  });
});

describe('Client-Cert (RFC 9440) and htu (RFC 9449 §4.3)', () => {
  it('parses sf-binary values only', () => {
    assert.deepEqual(parseClientCertHeader(':AQID:'), Buffer.from([1, 2, 3]));
    assert.deepEqual(parseClientCertHeader(' :AQIDBA==: '), Buffer.from([1, 2, 3, 4]));
    for (const value of ['AQID', ':AQI:', ':AQ ID:', ':AQID', '-----BEGIN CERTIFICATE-----', ':AQID:, :AQID:']) {
      assert.equal(parseClientCertHeader(value), undefined, value);
    }
  });

  it('normalises htu for comparison', () => {
    assert.equal(normaliseHtu('HTTPS://Data.Example:443/a/%7euser/%2f?x#y'), 'https://data.example/a/~user/%2F');
    assert.equal(normaliseHtu('http://h:8080/'), 'http://h:8080/');
    assert.equal(normaliseHtu('ftp://h/x'), undefined);
    assert.equal(normaliseHtu('/relative'), undefined);
  });
});

describe('the token cache', () => {
  const issuer = 'https://id.fedgate.test';
  let dir: string;
  let keys: KeySet;
  let accounts: Accounts;
  let userId: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fedgate-cache-'));
    keys = await loadOrCreateKeys(dir);
    accounts = new Accounts(new MemoryStore());
    userId = (await accounts.create({ username: 'erin', groups: ['/cms'] })).id;
  });
  after(() => rm(dir, { recursive: true, force: true }));

  const sign = async (set: KeySet, claims: Record<string, unknown> = {}) => {
    const stored = set.keys.find((k) => k.jwk.alg === 'ES256' && k.retiredAt === undefined)!;
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ iss: issuer, sub: userId, aud: 'https://storage.demo', client_id: 'c', iat: now, exp: now + 600, jti: randomUUID(), ...claims })
      .setProtectedHeader({ alg: 'ES256', kid: stored.jwk.kid, typ: 'at+jwt' }).sign(await importJWK(stored.jwk as JWK, 'ES256'));
  };
  const verifier = (jwks: () => { keys: JWK[] }, cacheSize: number) => new TokenVerifier({
    issuer, accounts, jwks, provider: () => ({}) as Provider, policyVersion: () => 1, cacheSize,
  });

  it('holds at most cacheSize tokens, evicting the oldest', async () => {
    const jwks = publicJwks(keys);
    const v = verifier(() => jwks, 2);
    const [a, b, c] = await Promise.all([sign(keys), sign(keys), sign(keys)]);
    for (const token of [a, b, c]) await v.verify(token!);
    assert.equal(v.cacheSize, 2);
    assert.equal(v.stats.signatureVerifications, 3);
    await v.verify(c!);
    await v.verify(b!);
    assert.equal(v.stats.signatureVerifications, 3, 'b and c are cached');
    await v.verify(a!);
    assert.equal(v.stats.signatureVerifications, 4, 'a was evicted');
    const none = verifier(() => jwks, 0);
    await none.verify(a!);
    await none.verify(a!);
    assert.equal(none.stats.signatureVerifications, 2, 'cacheSize 0 disables the cache');
  });

  it('keeps a token only until it expires', async () => {
    const jwks = publicJwks(keys);
    const v = verifier(() => jwks, 10);
    const now = Math.floor(Date.now() / 1000);
    const token = await sign(keys, { exp: now - 5 });
    await v.verify(token);
    await v.verify(token);
    assert.equal(v.stats.signatureVerifications, 2, 'inside the clock tolerance it verifies, but is not cached');
  });

  it('follows key rotation: a new JWKS object with the same keys costs nothing, a withdrawn key empties the cache', async () => {
    let jwks = publicJwks(keys);
    const v = verifier(() => jwks, 10);
    const token = await sign(keys);
    await v.verify(token);
    jwks = publicJwks(keys);
    await v.verify(token);
    assert.equal(v.stats.signatureVerifications, 1);

    await rotateKeys(dir, { maxTokenLifetimeSeconds: 3600 });
    const rotated = await loadOrCreateKeys(dir);
    jwks = publicJwks(rotated);
    const fresh = await sign(rotated);
    await v.verify(fresh);
    await v.verify(token);
    assert.equal(v.stats.signatureVerifications, 2, 'the retired key is still published: the old token stays cached');

    const oldKids = new Set(keys.keys.map((k) => k.jwk.kid));
    jwks = { keys: publicJwks(rotated).keys.filter((k) => !oldKids.has(k.kid!)) };
    await assert.rejects(v.verify(token), (err: InvalidToken) => err instanceof InvalidToken && /unknown key/.test(err.message));
    await v.verify(fresh);
    assert.equal(v.stats.signatureVerifications, 4, 'the cache was emptied when a key went away');
  });
});
