/**
 * The SP key pair: created at first start in the keys directory (key 0600,
 * certificate for that key, openssl reads it), the same pair for replicas
 * starting together, operator-provided files checked.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadOrCreateSpKeys, SP_CERT_FILE, SP_KEY_FILE } from '../../../src/federation/saml/sp-keys.ts';
import { testKeyPair } from '../../fixtures/saml/metadata-builder.ts';

describe('SAML SP keys', () => {
  it('creates the key (0600) and a self-signed certificate for it at first start, then reuses them', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fedgate-spkeys-'));
    try {
      const keys = await loadOrCreateSpKeys({ keysDir: dir, commonName: 'id.example.org' });
      assert.equal((await stat(join(dir, SP_KEY_FILE))).mode & 0o777, 0o600);
      assert.equal(await readFile(join(dir, SP_KEY_FILE), 'utf8'), keys.privateKeyPem);
      const cert = new X509Certificate(await readFile(join(dir, SP_CERT_FILE), 'utf8'));
      assert.equal(cert.subject, 'CN=id.example.org');
      assert.ok(cert.checkPrivateKey(createPrivateKey(keys.privateKeyPem)));
      assert.ok(new Date(cert.validTo).getTime() > Date.now() + 9 * 365 * 86_400_000);
      const text = execFileSync('openssl', ['x509', '-noout', '-text'], { input: keys.certificatePem }).toString();
      assert.match(text, /Signature Algorithm: sha256WithRSAEncryption/);
      assert.match(text, /Public-Key: \(3072 bit\)/);
      assert.deepEqual(await loadOrCreateSpKeys({ keysDir: dir, commonName: 'other' }), keys);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('gives replicas starting together on an empty directory one key pair', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fedgate-spkeys-'));
    try {
      const all = await Promise.all([1, 2, 3, 4].map(() => loadOrCreateSpKeys({ keysDir: dir, commonName: 'id.example.org' })));
      for (const keys of all) assert.deepEqual(keys, all[0]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('uses configured files, and refuses a certificate that is not the key\'s', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fedgate-spkeys-'));
    try {
      const [a, b] = await Promise.all([testKeyPair('a'), testKeyPair('b')]);
      await writeFile(join(dir, 'a.key'), a.privateKeyPem);
      await writeFile(join(dir, 'a.crt'), a.certificatePem);
      await writeFile(join(dir, 'b.crt'), b.certificatePem);
      const keys = await loadOrCreateSpKeys({ keysDir: dir, keyFile: join(dir, 'a.key'), certFile: join(dir, 'a.crt'), commonName: 'x' });
      assert.equal(keys.privateKeyPem, a.privateKeyPem);
      await assert.rejects(loadOrCreateSpKeys({ keysDir: dir, keyFile: join(dir, 'a.key'), certFile: join(dir, 'b.crt'), commonName: 'x' }), /is not the certificate of the key/);
      await assert.rejects(loadOrCreateSpKeys({ keysDir: dir, keyFile: join(dir, 'missing.key'), certFile: join(dir, 'a.crt'), commonName: 'x' }), /does not exist/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
