/**
 * fedgate's certificate verdicts against OpenSSL's, over a grid PKI made
 * with the openssl command line:
 *
 *     openssl verify -CApath <dir> -crl_check_all -purpose sslclient -allow_proxy_certs [-untrusted chain] leaf
 *
 * Every case must get the same verdict (valid or refused) from both,
 * except the deliberate differences listed in DIFFERENCES (each documented
 * in the README). Each case also names the reason fedgate gives. The same
 * cases go through the header route and the mTLS listener of a running
 * fedgate, which must agree with the verify function.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { loadTrustDirectory, type TrustSnapshot } from '../../../src/federation/x509/trust-store.ts';
import { verifyChain, type VerifyOptions } from '../../../src/federation/x509/verify.ts';
import { rawRequest, startServer, type TestServer } from '../../support/harness.ts';
import { Pki, caExtensions, proxyExtensions, USER_EXTENSIONS, type Ca, type IssueOptions, type Issued } from './pki.ts';

const run = promisify(execFile);
const B = '/DC=org/DC=fedgate-diff';
const OPTIONS: VerifyOptions = { crl: { missing: 'accept', expired: 'refuse' }, proxyCertificates: true };

/** The deliberate differences: the case names where fedgate's verdict differs from OpenSSL's, and why (see the README). */
const DIFFERENCES: Record<string, string> = {
  'crl-missing': 'crl.missing: accept (the default): a CA without a CRL in the directory is accepted; OpenSSL -crl_check_all refuses',
  'partial-chain': 'every CA in the directory is an anchor: an intermediate there is trusted without its root; OpenSSL wants the root',
  'legacy-proxy': 'legacy Globus proxies are accepted; OpenSSL does not know them',
  'legacy-limited-proxy': 'legacy Globus proxies are accepted; OpenSSL does not know them',
  'independent-proxy': 'independent proxies (id-ppl-independent) are refused: they carry none of the end entity\'s rights',
  'weak-ee-sha1': 'the algorithm floor (x509.algorithms): SHA-1 signatures refused by default; OpenSSL\'s default verify accepts them',
  'weak-ee-md5': 'the algorithm floor: MD5 signatures always refused; OpenSSL\'s default verify accepts them',
  'weak-ee-rsa-1024': 'the algorithm floor: RSA keys below 2048 bits refused by default; OpenSSL\'s default verify accepts them',
  'weak-intermediate-rsa-1024': 'the algorithm floor, on a CA',
  'weak-intermediate-sha1': 'the algorithm floor, on a CA',
};

interface Case {
  name: string;
  /** Leaf first, then what the client sends along. */
  chain: Issued[];
  /** fedgate's verdict: 'ok' or the refusal reason. */
  expect: string;
}

const USER = USER_EXTENSIONS;
const NO_KID = (lines: string[]) => lines.filter((l) => !l.startsWith('authorityKeyIdentifier'));

async function makeGrid(): Promise<{ pki: Pki; anchors: string; cases: Case[] }> {
  const pki = await Pki.create();
  const anchors = join(pki.dir, 'anchors');
  await mkdir(anchors);
  // openssl ca rewrites its database: each CA works through its own queue, the CAs in parallel.
  const queues = new Map<string, Promise<unknown>>();
  const serial = <T,>(ca: Issued, job: () => Promise<T>): Promise<T> => {
    const next = (queues.get(ca.name) ?? Promise.resolve()).then(job);
    queues.set(ca.name, next.catch(() => {}));
    return next;
  };
  const issue = (ca: Ca, ...args: [string, string, IssueOptions?]) => serial(ca, () => pki.issue(ca, ...args));
  const intermediate = (ca: Ca, name: string, subject: string, options: IssueOptions & { pathlen?: number } = {}) =>
    serial(ca, () => pki.intermediate(ca, name, subject, options));
  const crl = (ca: Ca, options?: Parameters<Pki['crl']>[1]) => serial(ca, () => pki.crl(ca, options));
  const revoke = (ca: Ca, cert: Issued) => serial(ca, () => pki.revoke(ca, cert));
  const now = Date.now();
  const stamp = (offsetDays: number) => `${new Date(now + offsetDays * 86_400_000).toISOString().replace(/[-:T]/g, '').slice(2, 14)}Z`;
  /** Re-issues a root's self-signed certificate with other dates (after it issued what it must). */
  const redate = (ca: Ca, start: string, end: string) => serial(ca, async () => {
    const ext = join(pki.dir, `${ca.name}-redate.ext`);
    await writeFile(ext, `[ext]\n${caExtensions().filter((l) => !l.startsWith('authorityKeyIdentifier')).join('\n')}\n`);
    await pki.openssl('req', '-config', join(pki.dir, 'req.cnf'), '-new', '-key', ca.keyFile, '-subj', ca.subject, '-out', `${ca.name}-redate.csr`);
    await pki.openssl('ca', '-config', ca.config, '-selfsign', '-batch', '-notext', '-preserveDN', '-in', `${ca.name}-redate.csr`, '-keyfile', ca.keyFile,
      '-startdate', start, '-enddate', end, '-extfile', ext, '-extensions', 'ext', '-out', `${ca.name}-redated.pem`);
    ca.pem = await pki.openssl('x509', '-in', `${ca.name}-redated.pem`);
    await writeFile(ca.certFile, ca.pem);
  });

  // Roots. In the directory: root, rootB, other, sha1Root, pathRoot, expiredRoot, futureRoot. Not: orphanRoot, unknownRoot.
  const [root, rootB, other, expiredRoot, futureRoot, sha1Root, orphanRoot, pathRoot, unknownRoot] = await Promise.all([
    pki.root('root', `${B}/CN=Diff Root CA`),
    pki.root('root-b', `${B}/CN=Diff Root CA B`),
    pki.root('other', '/DC=org/DC=elsewhere/CN=Other Root CA'),
    pki.root('expired-root', `${B}/CN=Expired Root CA`),
    pki.root('future-root', `${B}/CN=Future Root CA`),
    pki.root('sha1-root', `${B}/CN=SHA-1 Root CA`, { rsa: true, md: 'sha1' }),
    pki.root('orphan-root', `${B}/CN=Orphan Root CA`),
    pki.root('path-root', `${B}/CN=Pathlen Root CA`),
    pki.root('unknown-root', '/DC=org/DC=unknown/CN=Unknown Root CA'),
  ]);
  const crlCaNames = ['good', 'revoked', 'expired', 'missing', 'ahead', 'future', 'no-crlsign', 'critical', 'other-key', 'expired-revoked'] as const;
  type CrlState = (typeof crlCaNames)[number];

  const [int, intDir, intExpired, intFuture, intNotCa, intNoBc, intNoSign, intCrit, intWeak, intSha1, nc, ncMail, orphanInt, pathInt, ...crlCaList] = await Promise.all([
    intermediate(root, 'int', `${B}/CN=Diff Intermediate CA`),
    intermediate(other, 'int-dir', '/DC=org/DC=elsewhere/CN=Other Intermediate CA'),
    intermediate(rootB, 'int-expired', `${B}/CN=Expired Intermediate CA`, { startDate: '200101000000Z', endDate: '210101000000Z' }),
    intermediate(rootB, 'int-future', `${B}/CN=Future Intermediate CA`, { startDate: '400101000000Z', endDate: '410101000000Z' }),
    intermediate(rootB, 'int-not-ca', `${B}/CN=Not A CA`, { extensions: ['basicConstraints = critical,CA:FALSE', 'keyUsage = critical,keyCertSign,cRLSign'] }),
    intermediate(rootB, 'int-no-bc', `${B}/CN=No Basic Constraints CA`, { extensions: ['keyUsage = critical,keyCertSign,cRLSign'] }),
    intermediate(sha1Root, 'int-no-sign', `${B}/CN=No keyCertSign CA`, { extensions: ['basicConstraints = critical,CA:TRUE', 'keyUsage = critical,cRLSign,digitalSignature'] }),
    intermediate(sha1Root, 'int-crit', `${B}/CN=Critical Extension CA`, { extensions: [...caExtensions(), '1.3.6.1.4.1.99999.7 = critical,ASN1:NULL'] }),
    intermediate(other, 'int-weak', '/DC=org/DC=elsewhere/CN=RSA-1024 CA', { rsa: 1024 }),
    intermediate(sha1Root, 'int-sha1', `${B}/CN=SHA-1 Signed CA`, { md: 'sha1' }),
    intermediate(pathRoot, 'nc', `${B}/CN=Constrained CA`, { extensions: [...caExtensions(), 'nameConstraints = critical,permitted;dirName:nc_dn', '[nc_dn]', '1.DC = org', '2.DC = fedgate-diff', 'O = Permitted'] }),
    intermediate(other, 'nc-mail', '/DC=org/DC=elsewhere/CN=Mail Constrained CA', { extensions: [...caExtensions(), 'nameConstraints = critical,excluded;email:.evil.example'] }),
    intermediate(orphanRoot, 'orphan-int', `${B}/CN=Orphan Intermediate CA`),
    intermediate(pathRoot, 'path-int', `${B}/CN=Pathlen Intermediate CA`, { pathlen: 0 }),
    ...crlCaNames.map((n, i) => intermediate([root, rootB, other][i % 3]!, `crl-${n}`, `${B}/CN=CRL ${n} CA`, n === 'no-crlsign'
      ? { extensions: ['basicConstraints = critical,CA:TRUE', 'keyUsage = critical,keyCertSign', 'subjectKeyIdentifier = hash', 'authorityKeyIdentifier = keyid'] }
      : {})),
  ]);
  const crlCas = Object.fromEntries(crlCaNames.map((n, i) => [n, crlCaList[i]!])) as Record<CrlState, Ca>;
  const subInt = await pki.asCa(await issue(pathInt!, 'sub-int', `${B}/CN=Too Deep CA`, { extensions: caExtensions() }));

  const named = await Promise.all([
    issue(int!, 'alice', `${B}/O=Example/CN=Alice`),
    issue(int!, 'ee-expired', `${B}/CN=Expired`, { startDate: '200101000000Z', endDate: '210101000000Z' }),
    issue(int!, 'ee-future', `${B}/CN=Future`, { startDate: stamp(30), endDate: stamp(60) }),
    issue(int!, 'ee-no-ds', `${B}/CN=No digitalSignature`, { extensions: ['basicConstraints = critical,CA:FALSE', 'keyUsage = critical,keyEncipherment'] }),
    issue(int!, 'ee-server', `${B}/CN=server.example.org`, { extensions: ['basicConstraints = critical,CA:FALSE', 'keyUsage = critical,digitalSignature', 'extendedKeyUsage = serverAuth'] }),
    issue(int!, 'ee-client', `${B}/CN=Client EKU`, { extensions: ['keyUsage = critical,digitalSignature', 'extendedKeyUsage = clientAuth'] }),
    issue(int!, 'ee-crit', `${B}/CN=Critical Extension`, { extensions: [...USER, '1.3.6.1.4.1.99999.8 = critical,ASN1:NULL'] }),
    issue(int!, 'ee-bare', `${B}/CN=No Extensions`, { extensions: ['subjectKeyIdentifier = hash'] }),
    issue(int!, 'ee-utf8', `${B}/O=Ex\\, Inc.+OU=Grid/CN=Zoë Ünïcødé f\\\\g/CN=host\\/a.example.org/emailAddress=zoe@example.org`),
    issue(int!, 'ee-sha1', `${B}/CN=SHA-1 Signed`, { md: 'sha1' }),
    issue(sha1Root, 'ee-md5', `${B}/CN=MD5 Signed`, { md: 'md5' }),
    issue(int!, 'ee-rsa1024', `${B}/CN=RSA-1024 Key`, { rsa: 1024 }),
    issue(int!, 'ee-rsa2048', `${B}/CN=RSA-2048 Key`, { rsa: 2048 }),
    issue(int!, 'ee-rsa-sha512', `${B}/CN=RSA SHA-512`, { rsa: 2048, md: 'sha512' }),
    issue(other, 'other-ee', '/DC=org/DC=elsewhere/CN=Other User'),
    issue(intDir!, 'int-dir-ee', '/DC=org/DC=elsewhere/CN=Via Directory Intermediate'),
    issue(intExpired!, 'under-int-expired', `${B}/CN=Under Expired CA`),
    issue(intFuture!, 'under-int-future', `${B}/CN=Under Future CA`),
    issue(intNotCa!, 'under-not-ca', `${B}/CN=Under Not A CA`),
    issue(intNoBc!, 'under-no-bc', `${B}/CN=Under No BC`),
    issue(intNoSign!, 'under-no-sign', `${B}/CN=Under No keyCertSign`),
    issue(intCrit!, 'under-crit', `${B}/CN=Under Critical CA`),
    issue(intWeak!, 'under-weak', '/DC=org/DC=elsewhere/CN=Under RSA-1024 CA'),
    issue(intSha1!, 'under-sha1', `${B}/CN=Under SHA-1 CA`),
    issue(nc!, 'nc-inside', `${B}/O=Permitted/CN=Inside`),
    issue(nc!, 'nc-outside', `${B}/O=Elsewhere/CN=Outside`),
    issue(ncMail!, 'nc-mail-ok', '/DC=org/DC=elsewhere/CN=Good Mail', { extensions: [...USER, 'subjectAltName = email:user@good.example'] }),
    issue(ncMail!, 'nc-mail-bad', '/DC=org/DC=elsewhere/CN=Bad Mail', { extensions: [...USER, 'subjectAltName = email:user@host.evil.example'] }),
    issue(expiredRoot, 'under-expired-root', `${B}/CN=Under Expired Root`),
    issue(futureRoot, 'under-future-root', `${B}/CN=Under Future Root`),
    issue(sha1Root, 'under-sha1-root', `${B}/CN=Under SHA-1 Root`),
    issue(orphanInt!, 'orphan-ee', `${B}/CN=Orphan User`),
    issue(pathInt!, 'path-ok', `${B}/CN=Pathlen OK`),
    issue(subInt, 'path-deep', `${B}/CN=Pathlen Too Deep`),
    issue(unknownRoot, 'unknown-ee', '/DC=org/DC=unknown/CN=Unknown User'),
    ...crlCaNames.map(async (n) => {
      const leaf = await issue(crlCas[n], `crl-${n}-ee`, `${B}/CN=CRL ${n} User`);
      if (n === 'revoked' || n === 'expired-revoked') await revoke(crlCas[n], leaf);
      return leaf;
    }),
  ]);
  const ee = Object.fromEntries(named.map((c) => [c.name, c])) as Record<string, Issued>;
  const crlLeaf = (n: CrlState) => ee[`crl-${n}-ee`]!;
  const alice = ee.alice!;

  // Proxies of Alice (RFC 3820 and legacy), of an expired and of a revoked user.
  const [proxy, shortProxy, independent, misnamed, caProxy, legacy, limited, expiredProxy, revokedProxy] = await Promise.all([
    pki.proxy(alice, 'proxy', '1001', proxyExtensions()),
    pki.proxy(alice, 'short-proxy', '2001', proxyExtensions('id-ppl-inheritAll', 0)),
    pki.proxy(alice, 'independent', '3001', proxyExtensions('id-ppl-independent')),
    pki.proxy(alice, 'misnamed', '4001', proxyExtensions(), `${B}/O=Example/CN=Mallory/CN=4001`),
    pki.proxy(alice, 'ca-proxy', '5001', ['basicConstraints = critical,CA:TRUE', 'keyUsage = critical,digitalSignature', 'proxyCertInfo = critical,language:id-ppl-inheritAll']),
    pki.proxy(alice, 'legacy', 'proxy', ['basicConstraints = critical,CA:FALSE', 'keyUsage = critical,digitalSignature,keyEncipherment']),
    pki.proxy(alice, 'limited', 'limited proxy', ['keyUsage = critical,digitalSignature,keyEncipherment']),
    pki.proxy(ee['ee-expired']!, 'expired-proxy', '6001', proxyExtensions()),
    pki.proxy(crlLeaf('revoked'), 'revoked-proxy', '7001', proxyExtensions()),
  ]);
  const [proxy2, tooDeep, selfSigned, lookAlike, impostor] = await Promise.all([
    pki.proxy(proxy, 'proxy2', '1002', proxyExtensions()),
    pki.proxy(shortProxy, 'too-deep', '2002', proxyExtensions()),
    pki.root('self-signed', `${B}/CN=Self Signed`, { extensions: ['basicConstraints = critical,CA:FALSE', 'keyUsage = critical,digitalSignature'] }),
    // Same name as the intermediate, another key.
    pki.root('look-alike', `${B}/CN=Diff Intermediate CA`),
    pki.root('impostor', `${B}/CN=CRL other-key CA`),
  ]);
  const forged = await issue(lookAlike, 'forged', `${B}/CN=Forged`, { extensions: NO_KID(USER) });

  // Roots with validity in the past and in the future, now that they have issued.
  await Promise.all([redate(expiredRoot, '200101000000Z', '210101000000Z'), redate(futureRoot, '400101000000Z', '410101000000Z')]);

  // CRLs: every CA in the grid has a good one, except the states under test. Then the directory.
  const dir = new Map<string, string>();
  const withGoodCrl = [root, rootB, other, expiredRoot, futureRoot, sha1Root, orphanRoot, pathRoot, int!, intDir!, intExpired!, intFuture!, intNotCa!, intNoBc!,
    intNoSign!, intCrit!, intWeak!, intSha1!, nc!, ncMail!, orphanInt!, pathInt!, subInt, crlCas.good, crlCas.revoked, crlCas['no-crlsign']];
  await Promise.all([
    ...withGoodCrl.map(async (ca) => dir.set(`${ca.name}.crl.pem`, await crl(ca))),
    crl(crlCas.expired, { lastUpdate: '200101000000Z', nextUpdate: '200201000000Z' }).then((pem) => dir.set('crl-expired.crl.pem', pem)),
    crl(crlCas['expired-revoked'], { lastUpdate: '200101000000Z', nextUpdate: '200201000000Z' }).then((pem) => dir.set('crl-expired-revoked.crl.pem', pem)),
    crl(crlCas.ahead, { lastUpdate: stamp(1 / 24), nextUpdate: stamp(7) }).then((pem) => dir.set('crl-ahead.crl.pem', pem)),
    crl(crlCas.future, { lastUpdate: stamp(3), nextUpdate: stamp(10) }).then((pem) => dir.set('crl-future.crl.pem', pem)),
    crl(crlCas.critical, { extensions: ['1.3.6.1.4.1.99999.9 = critical,ASN1:NULL'] }).then((pem) => dir.set('crl-critical.crl.pem', pem)),
    crl(impostor).then((pem) => dir.set('crl-other-key.crl.pem', pem)),
  ]);
  // The roots, one intermediate of a root there, and one intermediate without its root.
  for (const ca of [root, rootB, other, expiredRoot, futureRoot, sha1Root, pathRoot, intDir!, orphanInt!]) dir.set(`${ca.name}.pem`, ca.pem);
  await Promise.all([...dir].map(([name, pem]) => writeFile(join(anchors, name), pem)));
  await pki.openssl('rehash', anchors);

  const cases: Case[] = [];
  const add = (name: string, expect: string, ...chain: Issued[]) => cases.push({ name, expect, chain });
  add('ee-good', 'ok', alice, int!);
  add('ee-with-junk', 'ok', alice, ee['other-ee']!, int!, other);
  add('missing-intermediate', 'untrusted', alice);
  add('unknown-ca', 'untrusted', ee['unknown-ee']!);
  add('unknown-ca-root-sent', 'untrusted', ee['unknown-ee']!, unknownRoot);
  add('intermediate-in-directory', 'ok', ee['int-dir-ee']!);
  add('other-root', 'ok', ee['other-ee']!);
  add('self-signed-ee', 'untrusted', selfSigned);
  add('forged-look-alike-issuer', 'untrusted', forged, int!);
  add('ee-expired', 'expired', ee['ee-expired']!, int!);
  add('ee-not-yet-valid', 'not_yet_valid', ee['ee-future']!, int!);
  add('intermediate-expired', 'expired', ee['under-int-expired']!, intExpired!);
  add('intermediate-not-yet-valid', 'not_yet_valid', ee['under-int-future']!, intFuture!);
  add('root-expired', 'expired', ee['under-expired-root']!);
  add('root-not-yet-valid', 'not_yet_valid', ee['under-future-root']!);
  add('ee-no-digital-signature', 'constraint_violation', ee['ee-no-ds']!, int!);
  add('ee-server-only', 'constraint_violation', ee['ee-server']!, int!);
  add('ee-client-eku', 'ok', ee['ee-client']!, int!);
  add('ee-no-extensions', 'ok', ee['ee-bare']!, int!);
  add('ee-unknown-critical-extension', 'constraint_violation', ee['ee-crit']!, int!);
  add('intermediate-ca-false', 'constraint_violation', ee['under-not-ca']!, intNotCa!);
  add('intermediate-no-basic-constraints', 'constraint_violation', ee['under-no-bc']!, intNoBc!);
  add('intermediate-no-keycertsign', 'constraint_violation', ee['under-no-sign']!, intNoSign!);
  add('intermediate-unknown-critical-extension', 'constraint_violation', ee['under-crit']!, intCrit!);
  add('pathlen-ok', 'ok', ee['path-ok']!, pathInt!);
  add('pathlen-exceeded', 'constraint_violation', ee['path-deep']!, subInt, pathInt!);
  add('name-constraints-inside', 'ok', ee['nc-inside']!, nc!);
  add('name-constraints-outside', 'constraint_violation', ee['nc-outside']!, nc!);
  add('name-constraints-email-ok', 'ok', ee['nc-mail-ok']!, ncMail!);
  add('name-constraints-email-excluded', 'constraint_violation', ee['nc-mail-bad']!, ncMail!);
  add('partial-chain', 'ok', ee['orphan-ee']!);
  add('odd-dn', 'ok', ee['ee-utf8']!, int!);
  add('crl-good', 'ok', crlLeaf('good'), crlCas.good);
  add('crl-revoked', 'revoked', crlLeaf('revoked'), crlCas.revoked);
  add('crl-expired', 'revocation_unknown', crlLeaf('expired'), crlCas.expired);
  add('crl-expired-listing-the-certificate', 'revoked', crlLeaf('expired-revoked'), crlCas['expired-revoked']);
  add('crl-missing', 'ok', crlLeaf('missing'), crlCas.missing);
  add('crl-this-update-1h-ahead', 'revocation_unknown', crlLeaf('ahead'), crlCas.ahead);
  add('crl-not-yet-valid', 'revocation_unknown', crlLeaf('future'), crlCas.future);
  add('crl-ca-without-crlsign', 'revocation_unknown', crlLeaf('no-crlsign'), crlCas['no-crlsign']);
  add('crl-unknown-critical-extension', 'revocation_unknown', crlLeaf('critical'), crlCas.critical);
  add('crl-signed-by-another-key', 'revocation_unknown', crlLeaf('other-key'), crlCas['other-key']);
  add('proxy', 'ok', proxy, alice, int!);
  add('proxy-of-proxy', 'ok', proxy2, proxy, alice, int!);
  add('proxy-chain-any-order', 'ok', proxy2, int!, alice, proxy);
  add('proxy-pathlen-0', 'ok', shortProxy, alice, int!);
  add('proxy-pathlen-exceeded', 'invalid_proxy', tooDeep, shortProxy, alice, int!);
  add('proxy-misnamed', 'invalid_proxy', misnamed, alice, int!);
  add('proxy-ca-true', 'invalid_proxy', caProxy, alice, int!);
  add('proxy-without-its-issuer', 'invalid_proxy', proxy, int!);
  add('proxy-of-expired-ee', 'expired', expiredProxy, ee['ee-expired']!, int!);
  add('proxy-of-revoked-ee', 'revoked', revokedProxy, crlLeaf('revoked'), crlCas.revoked);
  add('independent-proxy', 'invalid_proxy', independent, alice, int!);
  add('legacy-proxy', 'ok', legacy, alice, int!);
  add('legacy-limited-proxy', 'ok', limited, alice, int!);
  add('weak-ee-sha1', 'weak_algorithm', ee['ee-sha1']!, int!);
  add('weak-ee-md5', 'weak_algorithm', ee['ee-md5']!);
  add('weak-ee-rsa-1024', 'weak_algorithm', ee['ee-rsa1024']!, int!);
  add('weak-intermediate-rsa-1024', 'weak_algorithm', ee['under-weak']!, intWeak!);
  add('weak-intermediate-sha1', 'weak_algorithm', ee['under-sha1']!, intSha1!);
  add('sha1-self-signed-root', 'ok', ee['under-sha1-root']!);
  add('ee-rsa-2048', 'ok', ee['ee-rsa2048']!, int!);
  add('ee-rsa-sha512', 'ok', ee['ee-rsa-sha512']!, int!);
  return { pki, anchors, cases };
}

/** OpenSSL's verdict: true when `openssl verify` accepts. */
async function opensslVerdict(pki: Pki, anchors: string, c: Case): Promise<{ ok: boolean; output: string }> {
  const args = ['verify', '-CApath', anchors, '-crl_check_all', '-purpose', 'sslclient', '-allow_proxy_certs'];
  if (c.chain.length > 1) {
    const file = join(pki.dir, `chain-${c.name}.pem`);
    await writeFile(file, c.chain.slice(1).map((x) => x.pem).join(''));
    args.push('-untrusted', file);
  }
  args.push(c.chain[0]!.certFile);
  try {
    const { stdout, stderr } = await run('openssl', args, { cwd: pki.dir });
    return { ok: true, output: stdout + stderr };
  } catch (err) {
    const e = err as { stdout: string; stderr: string };
    return { ok: false, output: `${e.stdout}${e.stderr}`.trim().split('\n').slice(-2).join(' / ') };
  }
}

describe('fedgate agrees with openssl verify over a grid PKI', () => {
  let grid: Awaited<ReturnType<typeof makeGrid>>;
  let trust: TrustSnapshot;
  let openssl: Map<string, { ok: boolean; output: string }>;
  let server: TestServer;

  before(async () => {
    grid = await makeGrid();
    trust = await loadTrustDirectory(grid.anchors);
    openssl = new Map(await Promise.all(grid.cases.map(async (c) => [c.name, await opensslVerdict(grid.pki, grid.anchors, c)] as const)));
    server = await startServer({
      configure(config) {
        config.trustedProxies = ['127.0.0.1'];
        config.x509 = { ...config.x509, enabled: true, trustAnchorsDir: grid.anchors, reloadSeconds: 0, mtlsPort: 0 };
        // The path verdict is compared: a valid certificate linked to nobody answers not_linked. With the demo
        // realm's self-registration on, it would be offered the registration form (a redirect) instead.
        config.registration.accounts.enabled = false;
      },
    });
  });
  after(async () => {
    await server?.cleanup();
    await grid?.pki.cleanup();
  });

  it('has at least 60 cases, each difference a case of the grid', () => {
    assert.ok(grid.cases.length >= 60, `${grid.cases.length} cases`);
    const names = new Set(grid.cases.map((c) => c.name));
    assert.equal(names.size, grid.cases.length, 'case names are unique');
    for (const name of Object.keys(DIFFERENCES)) assert.ok(names.has(name), name);
  });

  it('gives the verdict openssl verify gives, except the documented differences, and the expected reason', () => {
    const disagreements: string[] = [];
    for (const c of grid.cases) {
      const result = verifyChain(c.chain.map((x) => x.der), trust, OPTIONS);
      const ours = result.ok ? 'ok' : result.reason;
      const theirs = openssl.get(c.name)!;
      const differs = result.ok !== theirs.ok;
      if (differs !== (c.name in DIFFERENCES)) {
        disagreements.push(`${c.name}: fedgate ${ours}${result.ok ? '' : ` (${result.message})`}, openssl ${theirs.ok ? 'OK' : `refuses (${theirs.output})`}`);
      }
      if (ours !== c.expect) disagreements.push(`${c.name}: expected ${c.expect}, fedgate said ${ours}${result.ok ? '' : ` (${result.message})`}`);
    }
    assert.deepEqual(disagreements, []);
  });

  it('gives the same verdicts on the header route and on the mTLS listener', async () => {
    const mtlsPort = (server.fedgate.mtlsServer()!.address() as AddressInfo).port;
    const viaHeader = (c: Case) => rawRequest(server.issuer, '/x509/login?interaction=diff', {
      headers: {
        accept: 'application/json',
        'client-cert': `:${c.chain[0]!.der.toString('base64')}:`,
        ...(c.chain.length > 1 ? { 'client-cert-chain': c.chain.slice(1).map((x) => `:${x.der.toString('base64')}:`).join(', ') } : {}),
      },
    }).then((res) => res.body);
    const viaTls = (c: Case) => new Promise<string>((resolve, reject) => {
      const req = httpsRequest({
        host: '127.0.0.1', port: mtlsPort, path: '/x509/login?interaction=diff', agent: false, rejectUnauthorized: false,
        // The client's own floor would refuse to present RSA-1024 and MD5 certificates: fedgate's is what is tested.
        ciphers: 'DEFAULT@SECLEVEL=0',
        cert: c.chain.map((x) => x.pem).join(''), key: c.chain[0]!.key, headers: { accept: 'application/json' },
      }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
      });
      req.on('error', reject);
      req.end();
    });
    // A valid certificate reaches the account lookup (linked to nobody here); a refused one stops with its reason.
    const verdict = (body: string) => {
      const reason = (JSON.parse(body) as { reason: string }).reason;
      return reason === 'not_linked' ? 'ok' : reason;
    };
    const wrong: string[] = [];
    for (const c of grid.cases) {
      const [header, tls] = await Promise.all([viaHeader(c), viaTls(c)]);
      if (verdict(header) !== c.expect) wrong.push(`${c.name} by header: ${header}`);
      if (verdict(tls) !== c.expect) wrong.push(`${c.name} by TLS: ${tls}`);
    }
    assert.deepEqual(wrong, []);
  });
});
