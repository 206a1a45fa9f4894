/**
 * The PKI shared by the X.509 tests, made once per test file with openssl
 * (about a second), and a trust anchor directory in IGTF layout:
 *
 *     root (EC, self-signed)            <hash>.0, CRL <hash>.r0
 *     ├── intermediate (RSA, pathlen 0) intermediate.pem, CRL intermediate.crl.pem (revokes `revoked`)
 *     │   ├── alice ─ proxy 1001 ─ proxy 1002           RFC 3820 inheritAll
 *     │   │       ├─ proxy 2001 (pathlen 0) ─ proxy 2002
 *     │   │       ├─ CN=proxy (legacy Globus), CN=limited proxy
 *     │   │       ├─ independent proxy, misnamed proxy
 *     │   ├── revoked
 *     │   └── sub-CA (sent by the client; pathlen 0 above forbids it) ─ erin
 *     ├── stale CA (its CRL expired)    stale.pem, CRL stale.crl (DER)
 *     │   └── carol
 *     ├── client CA (not in the directory; clients send it) ─ dave
 *     ├── bob, expired, no-signing (keyEncipherment only), server-only (EKU serverAuth)
 *     untrusted CA (not in the directory) ─ mallory
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Pki, caExtensions, proxyExtensions, type Ca, type Issued } from './pki.ts';

export const BASE = '/DC=org/DC=fedgate-test';
export const ALICE_DN = `${BASE}/O=Example, Inc./CN=Alice Émile/emailAddress=alice@example.org`;

export interface TestPki {
  pki: Pki;
  /** The trust anchor directory. */
  anchors: string;
  root: Ca;
  intermediate: Ca;
  stale: Ca;
  clientCa: Ca;
  subCa: Ca;
  untrustedCa: Ca;
  alice: Issued;
  bob: Issued;
  carol: Issued;
  dave: Issued;
  erin: Issued;
  expired: Issued;
  revoked: Issued;
  mallory: Issued;
  noSigning: Issued;
  serverOnly: Issued;
  proxy1: Issued;
  proxy2: Issued;
  shortProxy: Issued;
  tooDeep: Issued;
  legacy: Issued;
  limited: Issued;
  independent: Issued;
  misnamed: Issued;
}

export async function makeTestPki(): Promise<TestPki> {
  const pki = await Pki.create();
  const root = await pki.root('root', `${BASE}/CN=Test Root CA`);
  // openssl ca rewrites its database file: one CA issues one certificate at a time.
  const untrustedCa = await pki.root('untrusted', '/DC=org/DC=elsewhere/CN=Untrusted CA');
  const intermediate = await pki.intermediate(root, 'intermediate', `${BASE}/CN=Test Intermediate CA`, { rsa: true, pathlen: 0 });
  const stale = await pki.intermediate(root, 'stale', `${BASE}/CN=Stale CA`);
  const clientCa = await pki.intermediate(root, 'client-ca', `${BASE}/CN=Client CA`);
  const alice = await pki.issue(intermediate, 'alice', ALICE_DN);
  const revoked = await pki.issue(intermediate, 'revoked', `${BASE}/CN=Rita Revoked`);
  const subCa = await pki.asCa(await pki.issue(intermediate, 'sub-ca', `${BASE}/CN=Sub CA`, { extensions: caExtensions() }));
  const bob = await pki.issue(root, 'bob', `${BASE}/CN=Bob`);
  const expired = await pki.issue(root, 'expired', `${BASE}/CN=Old Timer`, { startDate: '200101000000Z', endDate: '210101000000Z' });
  const noSigning = await pki.issue(root, 'no-signing', `${BASE}/CN=No Signing`, {
    extensions: ['basicConstraints = critical,CA:FALSE', 'keyUsage = critical,keyEncipherment'],
  });
  const serverOnly = await pki.issue(root, 'server-only', `${BASE}/CN=server.example.org`, {
    extensions: ['basicConstraints = critical,CA:FALSE', 'keyUsage = critical,digitalSignature', 'extendedKeyUsage = serverAuth'],
  });
  const carol = await pki.issue(stale, 'carol', `${BASE}/CN=Carol`);
  const dave = await pki.issue(clientCa, 'dave', `${BASE}/CN=Dave`);
  const mallory = await pki.issue(untrustedCa, 'mallory', '/DC=org/DC=elsewhere/CN=Mallory');
  const [proxy1, shortProxy, legacy, limited, independent, misnamed] = await Promise.all([
    pki.proxy(alice, 'proxy1', '1001', proxyExtensions()),
    pki.proxy(alice, 'short-proxy', '2001', proxyExtensions('id-ppl-inheritAll', 0)),
    pki.proxy(alice, 'legacy', 'proxy', ['basicConstraints = critical,CA:FALSE', 'keyUsage = critical,digitalSignature,keyEncipherment']),
    pki.proxy(alice, 'limited', 'limited proxy', ['keyUsage = critical,digitalSignature,keyEncipherment']),
    pki.proxy(alice, 'independent', '4001', proxyExtensions('id-ppl-independent')),
    pki.proxy(alice, 'misnamed', '5001', proxyExtensions(), `${BASE}/CN=Mallory/CN=5001`),
  ]);
  const [proxy2, tooDeep] = await Promise.all([
    pki.proxy(proxy1, 'proxy2', '1002', proxyExtensions()),
    pki.proxy(shortProxy, 'too-deep', '2002', proxyExtensions()),
  ]);
  const erin = await pki.issue(subCa, 'erin', `${BASE}/CN=Erin`);

  await pki.revoke(intermediate, revoked);
  const anchors = join(pki.dir, 'anchors');
  await mkdir(anchors);
  const rootHash = await pki.hash(root);
  const staleCrl = await pki.crl(stale, { lastUpdate: '200101000000Z', nextUpdate: '200201000000Z' });
  await Promise.all([
    writeFile(join(anchors, `${rootHash}.0`), root.pem),
    writeFile(join(anchors, `${rootHash}.r0`), await pki.crl(root)),
    writeFile(join(anchors, `${rootHash}.signing_policy`), 'access_id_CA X509 \'/DC=org/DC=fedgate-test/CN=Test Root CA\'\n'),
    writeFile(join(anchors, `${rootHash}.info`), 'alias = test-root\n'),
    writeFile(join(anchors, 'intermediate.pem'), intermediate.pem),
    writeFile(join(anchors, 'intermediate.crl.pem'), await pki.crl(intermediate)),
    writeFile(join(anchors, 'stale.pem'), stale.pem),
    writeFile(join(anchors, 'stale.crl'), Buffer.from(staleCrl.replace(/-----[A-Z0-9 ]+-----|\s/g, ''), 'base64')),
  ]);
  return {
    pki, anchors, root, intermediate, stale, clientCa, subCa, untrustedCa,
    alice, bob, carol, dave, erin, expired, revoked, mallory, noSigning, serverOnly,
    proxy1, proxy2, shortProxy, tooDeep, legacy, limited, independent, misnamed,
  };
}
