import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { normaliseDn } from '../../../src/federation/x509/dn.ts';
import { ALICE_DN, BASE, makeTestPki, type TestPki } from './fixture.ts';

const run = promisify(execFile);
const CLI = join(import.meta.dirname, '../../../src/cli/main.ts');

/** `npm run fedgate -- x509 ...`: exit code and output. */
async function fedgate(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI, 'x509', ...args], { env: { PATH: process.env.PATH ?? '' } });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('fedgate x509 verify: the offline verifier', () => {
  let t: TestPki;

  before(async () => {
    t = await makeTestPki();
  });
  after(() => t.pki.cleanup());

  it('exits 0 with the identity for a valid certificate, and for a proxy file holding the whole chain', async () => {
    const alice = await fedgate('verify', '--trust', t.anchors, t.alice.certFile);
    assert.equal(alice.code, 0, alice.stderr + alice.stdout);
    assert.match(alice.stdout, new RegExp(`^valid: ${normaliseDn(ALICE_DN).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\n`));
    assert.match(alice.stdout, /issuer: \/DC=org\/DC=fedgate-test\/CN=Test Intermediate CA/);
    // A grid proxy file: the proxies, a key, the end-entity certificate. The identity is the end-entity DN.
    const proxyFile = join(t.pki.dir, 'x509up_u1000');
    await writeFile(proxyFile, t.proxy2.pem + t.proxy2.key + t.proxy1.pem + t.alice.pem);
    const proxy = await fedgate('verify', '--trust', t.anchors, proxyFile);
    assert.equal(proxy.code, 0, proxy.stdout);
    assert.ok(proxy.stdout.startsWith(`valid: ${normaliseDn(ALICE_DN)}\n`));
    assert.match(proxy.stdout, /proxies: 2, leaf .*CN=1001\/CN=1002/);
  });

  it('takes the intermediates the client would send from --chain', async () => {
    const [alone, dave] = await Promise.all([
      fedgate('verify', '--trust', t.anchors, t.dave.certFile),
      fedgate('verify', '--trust', t.anchors, '--chain', t.clientCa.certFile, t.dave.certFile),
    ]);
    assert.equal(alone.code, 1);
    assert.equal(dave.code, 0, dave.stdout);
    assert.match(dave.stdout, /path: \/DC=org\/DC=fedgate-test\/CN=Client CA <- \/DC=org\/DC=fedgate-test\/CN=Test Root CA/);
  });

  it('exits 1 with the reason when the certificate is refused', async () => {
    const [revoked, early] = await Promise.all([
      fedgate('verify', '--trust', t.anchors, t.revoked.certFile),
      fedgate('verify', '--trust', t.anchors, '--at', '2001-01-01T00:00:00Z', t.bob.certFile),
    ]);
    assert.equal(revoked.code, 1);
    assert.match(revoked.stdout, /^refused: revoked\n.*Rita Revoked/);
    assert.equal(early.code, 1);
    assert.match(early.stdout, /^refused: not_yet_valid\n/);
    assert.match(early.stdout, new RegExp(`subject: ${BASE}/CN=Bob`));
  });

  it('exits 2 on usage errors', async () => {
    const [noTrust, at, missing] = await Promise.all([
      fedgate('verify', t.alice.certFile),
      fedgate('verify', '--trust', t.anchors, '--at', 'yesterday', t.alice.certFile),
      fedgate('verify', '--trust', t.anchors, join(t.pki.dir, 'nope.pem')),
    ]);
    assert.equal(noTrust.code, 2, 'no --trust');
    assert.equal(at.code, 2);
    assert.match(at.stderr, /--at yesterday is not an ISO 8601 time/);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /nope\.pem: ENOENT/);
  });
});
