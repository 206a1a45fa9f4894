import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { selfSignedCertificate } from '../../src/keys/self-signed.ts';

const run = promisify(execFile);

describe('selfSignedCertificate (checked with openssl)', () => {
  let dir: string;
  before(async () => { dir = await mkdtemp(join(tmpdir(), 'fedgate-self-signed-')); });
  after(() => rm(dir, { recursive: true, force: true }));

  /** `openssl verify` of the certificate against itself as the only anchor, and its text form. */
  async function openssl(pem: string, name: string, verifyOptions: string[] = []): Promise<{ verify: string; text: string }> {
    const file = join(dir, `${name}.pem`);
    await writeFile(file, pem);
    const verify = (await run('openssl', ['verify', '-CAfile', file, ...verifyOptions, file])).stdout;
    const text = (await run('openssl', ['x509', '-noout', '-text', '-in', file])).stdout;
    return { verify, text };
  }

  it('makes an RSA-SHA256 certificate with the name, the key and the validity asked for', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const now = new Date('2026-01-01T00:00:00Z');
    const pem = await selfSignedCertificate({ privateKey, commonName: 'sp.example.org', days: 10, backdateSeconds: 3600, now });
    const cert = new X509Certificate(pem);
    assert.equal(cert.subject, 'CN=sp.example.org');
    assert.equal(cert.issuer, 'CN=sp.example.org');
    assert.ok(cert.publicKey.equals(publicKey));
    assert.equal(cert.validFromDate.toISOString(), '2025-12-31T23:00:00.000Z');
    assert.equal(cert.validToDate.toISOString(), '2026-01-11T00:00:00.000Z');
    assert.ok(cert.serialNumber.length >= 30);
    // Checked at a time inside its validity.
    const { verify, text } = await openssl(pem, 'rsa', ['-attime', String(Math.floor(now.getTime() / 1000) + 86_400)]);
    assert.match(verify, /: OK/);
    assert.match(text, /Signature Algorithm: sha256WithRSAEncryption/);
    assert.match(text, /Version: 3 \(0x2\)/);
  });

  it('makes a P-256 TLS server certificate (serverAuth, not a CA, the host as subjectAltName) that openssl verifies for SSL server use', async () => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    for (const [host, san] of [['id.example.org', 'DNS:id.example.org'], ['192.0.2.1', 'IP Address:192.0.2.1']] as const) {
      const pem = await selfSignedCertificate({ privateKey, commonName: host, days: 365, serverHost: host });
      const { verify, text } = await openssl(pem, `server-${host}`, ['-purpose', 'sslserver']);
      assert.match(verify, /: OK/);
      assert.match(text, /ecdsa-with-SHA256/);
      assert.match(text, /CA:FALSE/);
      assert.match(text, /TLS Web Server Authentication/);
      assert.match(text, /Digital Signature/);
      assert.ok(text.includes(san), `subjectAltName ${san}`);
    }
  });

  it('refuses keys it cannot sign with', async () => {
    const { privateKey } = generateKeyPairSync('ed25519');
    await assert.rejects(selfSignedCertificate({ privateKey, commonName: 'x', days: 1 }), /no self-signed certificates for ed25519 keys/);
  });
});
