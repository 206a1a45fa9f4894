import assert from 'node:assert/strict';
import { cp, mkdtemp, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { normaliseDn } from '../../../src/federation/x509/dn.ts';
import { TrustStore } from '../../../src/federation/x509/trust-store.ts';
import { verifyChain, type CertificateVerification, type VerifyOptions } from '../../../src/federation/x509/verify.ts';
import { createLogger } from '../../../src/observability/logger.ts';
import { LogCapture } from '../../support/harness.ts';
import { ALICE_DN, BASE, makeTestPki, type TestPki } from './fixture.ts';
import type { Issued } from './pki.ts';

const DEFAULTS: VerifyOptions = { crl: { missing: 'accept', expired: 'refuse' }, proxyCertificates: true };

describe('certificate path validation against an IGTF-style trust anchor directory', () => {
  let t: TestPki;
  let store: TrustStore;
  const logs = new LogCapture();

  before(async () => {
    t = await makeTestPki();
    store = await TrustStore.open({ dir: t.anchors, logger: createLogger('info', logs), reloadSeconds: 0 });
  });
  after(async () => {
    store.close();
    await t.pki.cleanup();
  });

  const check = (certs: Issued[], options: Partial<VerifyOptions> = {}): CertificateVerification =>
    verifyChain(certs.map((c) => c.der), store.snapshot, { ...DEFAULTS, ...options });
  const refused = (result: CertificateVerification, reason: string, pattern?: RegExp) => {
    assert.equal(result.ok, false, 'refused');
    if (result.ok) return;
    assert.equal(result.reason, reason, result.message);
    if (pattern) assert.match(result.message, pattern);
  };

  it('loads the CA certificates and CRLs, whatever their file names, and ignores the rest', () => {
    const snapshot = store.snapshot;
    assert.deepEqual(snapshot.anchors.map((a) => a.subjectDn).sort(), [
      `${BASE}/CN=Stale CA`, `${BASE}/CN=Test Intermediate CA`, `${BASE}/CN=Test Root CA`,
    ]);
    assert.equal(snapshot.crls.length, 3);
    assert.deepEqual(snapshot.problems, []);
    assert.match(logs.text, /X\.509 trust anchors loaded/);
  });

  it('accepts end-entity certificates of an anchor and of an intermediate anchor, with their identity', () => {
    const alice = check([t.alice]);
    assert.ok(alice.ok, !alice.ok ? alice.message : '');
    assert.equal(alice.subject, normaliseDn(ALICE_DN));
    assert.equal(alice.subject, '/DC=org/DC=fedgate-test/O=Example, Inc./CN=Alice Émile/emailAddress=alice@example.org');
    assert.equal(alice.issuer, `${BASE}/CN=Test Intermediate CA`);
    assert.equal(alice.name, 'Alice Émile');
    assert.equal(alice.email, 'alice@example.org');
    // The intermediate is an anchor, and is still validated up to the root that issued it.
    assert.deepEqual(alice.path.map((c) => c.subjectDn), [`${BASE}/CN=Test Intermediate CA`, `${BASE}/CN=Test Root CA`]);
    assert.deepEqual(alice.proxies, []);

    const bob = check([t.bob]);
    assert.ok(bob.ok);
    assert.equal(bob.issuer, `${BASE}/CN=Test Root CA`);
    // Whatever else the client sends along does not matter, anchors included.
    assert.ok(check([t.alice, t.intermediate, t.root, t.mallory]).ok);
  });

  it('uses intermediates the client sends to reach an anchor', () => {
    refused(check([t.dave]), 'untrusted', /not issued by a trusted CA/);
    const dave = check([t.dave, t.clientCa]);
    assert.ok(dave.ok);
    assert.deepEqual(dave.path.map((c) => c.subjectDn), [`${BASE}/CN=Client CA`, `${BASE}/CN=Test Root CA`]);
  });

  it('refuses a certificate from an untrusted CA, even with that CA sent along', () => {
    refused(check([t.mallory]), 'untrusted');
    refused(check([t.mallory, t.untrustedCa]), 'untrusted');
  });

  it('refuses expired and not yet valid certificates', () => {
    const result = check([t.expired]);
    refused(result, 'expired', /expired on 2021-01-01/);
    if (!result.ok) assert.equal(result.subject, `${BASE}/CN=Old Timer`);
    refused(check([t.bob], { now: new Date('2001-01-01T00:00:00Z') }), 'not_yet_valid');
    refused(check([t.bob], { now: new Date(Date.now() + 365 * 86_400_000) }), 'expired');
  });

  it('refuses a certificate its CA revoked (CRL in the directory)', () => {
    refused(check([t.revoked]), 'revoked', /Rita Revoked.*revoked/);
  });

  it('refuses under an expired CRL by default, accepts with a warning under crl.expired: warn', () => {
    refused(check([t.carol]), 'revocation_unknown', /CRL of .*Stale CA expired on 2020-02-01/);
    const warned = check([t.carol], { crl: { missing: 'accept', expired: 'warn' } });
    assert.ok(warned.ok);
    assert.match(warned.warnings.join(), /Stale CA expired/);
  });

  it('refuses a CA without CRL only under crl.missing: refuse', () => {
    assert.ok(check([t.dave, t.clientCa]).ok);
    refused(check([t.dave, t.clientCa], { crl: { missing: 'refuse', expired: 'refuse' } }), 'revocation_unknown', /no CRL of .*Client CA/);
    assert.ok(check([t.alice], { crl: { missing: 'refuse', expired: 'refuse' } }).ok);
  });

  it('enforces basicConstraints path length, keyUsage and extendedKeyUsage', async () => {
    refused(check([t.erin, t.subCa]), 'constraint_violation', /Intermediate CA allows 0 intermediate CAs/);
    refused(check([t.noSigning]), 'constraint_violation', /digitalSignature/);
    refused(check([t.serverOnly]), 'constraint_violation', /clientAuth/);
    // An end-entity certificate cannot act as a CA for an ordinary certificate (one that is no proxy).
    const forged = await t.pki.proxy(t.alice, 'forged', 'unused', ['keyUsage = critical,digitalSignature'], '/DC=org/DC=fedgate-test/CN=Forged');
    refused(check([forged, t.alice]), 'constraint_violation', /Alice Émile.* signed .*CN=Forged but is not a CA certificate/);
  });

  it('resolves RFC 3820 proxy chains to the end-entity certificate', () => {
    const chains: Array<[Issued[], number]> = [
      [[t.proxy1, t.alice], 1],
      [[t.proxy2, t.proxy1, t.alice], 2],
      [[t.proxy2, t.alice, t.proxy1, t.intermediate], 2], // in any order, with intermediates
      [[t.shortProxy, t.alice], 1],
    ];
    for (const [chain, proxies] of chains) {
      const result = check(chain);
      assert.ok(result.ok, !result.ok ? result.message : '');
      assert.equal(result.subject, normaliseDn(ALICE_DN));
      assert.equal(result.issuer, `${BASE}/CN=Test Intermediate CA`);
      assert.equal(result.proxies.length, proxies);
      assert.equal(result.limited, false);
    }
  });

  it('resolves legacy Globus proxies (CN=proxy, CN=limited proxy)', () => {
    const legacy = check([t.legacy, t.alice]);
    assert.ok(legacy.ok);
    assert.equal(legacy.subject, normaliseDn(ALICE_DN));
    const limited = check([t.limited, t.alice]);
    assert.ok(limited.ok);
    assert.equal(limited.limited, true);
    // Without its issuer, a certificate merely named like a legacy proxy is an ordinary one with an untrusted issuer.
    refused(check([t.legacy]), 'untrusted');
  });

  it('refuses proxies that break RFC 3820', () => {
    refused(check([t.tooDeep, t.shortProxy, t.alice]), 'invalid_proxy', /at most 0 proxies/);
    refused(check([t.independent, t.alice]), 'invalid_proxy', /proxy policy/);
    refused(check([t.misnamed, t.alice]), 'invalid_proxy', /not named after its issuer/);
    refused(check([t.proxy1]), 'invalid_proxy', /was not sent/);
    refused(check([t.proxy2, t.proxy1]), 'invalid_proxy', /was not sent/);
    refused(check([t.proxy1, t.alice], { proxyCertificates: false }), 'invalid_proxy', /not accepted/);
    refused(check([t.proxy1, t.alice], { now: new Date(Date.now() + 3 * 86_400_000) }), 'expired', /proxy certificate/);
  });

  it('refuses a proxy of a revoked or untrusted certificate', async () => {
    const revokedProxy = await t.pki.proxy(t.revoked, 'revoked-proxy', '6001', ['keyUsage = critical,digitalSignature', 'proxyCertInfo = critical,language:id-ppl-inheritAll']);
    refused(check([revokedProxy, t.revoked]), 'revoked');
    const malloryProxy = await t.pki.proxy(t.mallory, 'mallory-proxy', '6002', ['proxyCertInfo = critical,language:id-ppl-inheritAll']);
    refused(check([malloryProxy, t.mallory, t.untrustedCa]), 'untrusted');
  });

  it('refuses what is not a certificate', () => {
    refused(verifyChain([Buffer.from('not a certificate')], store.snapshot, DEFAULTS), 'malformed');
    refused(verifyChain([t.alice.der.subarray(0, 100)], store.snapshot, DEFAULTS), 'malformed');
    refused(verifyChain([], store.snapshot, DEFAULTS), 'no_certificate');
    refused(verifyChain(Array.from({ length: 17 }, () => t.alice.der), store.snapshot, DEFAULTS), 'malformed', /longer than 16/);
  });
});

describe('the trust anchor directory is reloaded when it changes', () => {
  let t: TestPki;
  let dir: string;
  let store: TrustStore;
  const logs = new LogCapture();

  before(async () => {
    t = await makeTestPki();
    dir = await mkdtemp(join(tmpdir(), 'fedgate-anchors-'));
    await writeFile(join(dir, 'root.pem'), t.root.pem);
    store = await TrustStore.open({ dir, logger: createLogger('info', logs), reloadSeconds: 0 });
  });
  after(async () => {
    store.close();
    await rm(dir, { recursive: true, force: true });
    await t.pki.cleanup();
  });

  const ok = (cert: Issued) => verifyChain([cert.der], store.snapshot, DEFAULTS).ok;

  it('picks up a CA added to the directory', async () => {
    assert.ok(ok(t.bob));
    assert.equal(ok(t.alice), false);
    assert.equal(await store.check(), false, 'nothing changed yet');
    await writeFile(join(dir, 'intermediate.pem'), t.intermediate.pem);
    assert.equal(await store.check(), true);
    assert.ok(ok(t.alice));
  });

  it('does not read a CRL with the right issuer name but another key as "no CRL"', async () => {
    const impostor = await t.pki.root('impostor', `${BASE}/CN=Test Root CA`);
    await t.pki.revoke(impostor, t.bob);
    await writeFile(join(dir, 'impostor.crl.pem'), await t.pki.crl(impostor));
    assert.equal(await store.check(), true);
    assert.equal(store.snapshot.crls.length, 1);
    // Even under crl.missing: accept: the CRL is there and cannot be used, so revocation is unknown.
    const result = verifyChain([t.bob.der], store.snapshot, DEFAULTS);
    assert.equal(result.ok ? 'ok' : result.reason, 'revocation_unknown');
    assert.match(result.ok ? '' : result.message, /CRL of .*Test Root CA cannot be used: its signature does not verify/);
    const warned = verifyChain([t.bob.der], store.snapshot, { ...DEFAULTS, crl: { ...DEFAULTS.crl, unusable: 'warn' } });
    assert.ok(warned.ok, 'crl.unusable: warn accepts');
    assert.match(warned.warnings.join(), /signature does not verify/);
  });

  it('applies a new CRL: the revoked certificate is refused from then on', async () => {
    await t.pki.revoke(t.root, t.bob);
    await writeFile(join(dir, `${await t.pki.hash(t.root)}.r0`), await t.pki.crl(t.root));
    assert.equal(await store.check(), true);
    const result = verifyChain([t.bob.der], store.snapshot, DEFAULTS);
    assert.equal(result.ok ? 'ok' : result.reason, 'revoked');
  });

  it('retries once when a file cannot be read (caught mid-write), then goes on without it', async () => {
    await writeFile(join(dir, 'broken.pem'), '-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n');
    await writeFile(join(dir, 'client-ca.pem'), t.clientCa.pem);
    assert.equal(await store.check(), false, 'the first sight of a broken file keeps the current anchors');
    assert.equal(ok(t.dave), false);
    assert.equal(await store.check(), true, 'the second one accepts the rest');
    assert.ok(ok(t.dave));
    assert.match(store.snapshot.problems.join(), /broken\.pem: bad base64/);
    assert.match(logs.text, /broken\.pem/);
    await unlink(join(dir, 'broken.pem'));
    assert.equal(await store.check(), true);
    assert.deepEqual(store.snapshot.problems, []);
  });

  it('skips a certificate that is not a CA, and keeps the anchors when the directory disappears', async () => {
    await writeFile(join(dir, 'bob.pem'), t.bob.pem);
    assert.equal(await store.check(), true);
    assert.match(store.snapshot.problems.join(), /bob\.pem: .*CN=Bob is not a CA certificate/);
    const moved = `${dir}-moved`;
    await cp(dir, moved, { recursive: true });
    await rm(dir, { recursive: true });
    assert.equal(await store.check(), false);
    assert.ok(ok(t.alice), 'the last good anchors stay in use');
    assert.match(logs.text, /trust anchor directory could not be read/);
    await cp(moved, dir, { recursive: true });
    await rm(moved, { recursive: true });
  });

  it('polls on its own', async () => {
    const polled = await TrustStore.open({ dir, logger: createLogger('silent'), reloadSeconds: 0.05 });
    try {
      const before = polled.snapshot;
      await unlink(join(dir, 'client-ca.pem'));
      for (let i = 0; i < 100 && polled.snapshot === before; i += 1) await sleep(20);
      assert.notEqual(polled.snapshot, before);
      assert.equal(verifyChain([t.dave.der, t.clientCa.der], polled.snapshot, DEFAULTS).ok, true, 'a client-sent intermediate still works');
      assert.equal(verifyChain([t.dave.der], polled.snapshot, DEFAULTS).ok, false);
    } finally {
      polled.close();
    }
  });
});
