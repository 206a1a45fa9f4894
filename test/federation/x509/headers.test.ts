import assert from 'node:assert/strict';
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { after, before, describe, it } from 'node:test';
import {
  certificateHeaderForms, createClientCertificateInspector, createClientCertificateReader, envoyForm, nginxForm,
  parseClientCertChainHeader, parseEscapedPemHeader, parseForwardedClientCert, rfc9440Form, type CertificateLookup,
} from '../../../src/http/client-certificate.ts';
import { createLogger } from '../../../src/observability/logger.ts';
import { LogCapture } from '../../support/harness.ts';
import { Pki, type Ca, type Issued } from './pki.ts';

const sf = (der: Buffer) => `:${der.toString('base64')}:`;
/** nginx's $ssl_client_escaped_cert escapes like encodeURIComponent. */
const escaped = (pem: string) => encodeURIComponent(pem);

function request(headers: IncomingHttpHeaders, remoteAddress = '10.0.0.5'): IncomingMessage {
  return { headers, socket: { remoteAddress } } as unknown as IncomingMessage;
}

describe('certificate header forms of TLS-terminating proxies', () => {
  let pki: Pki;
  let ca: Ca;
  let user: Issued;
  let other: Issued;

  before(async () => {
    pki = await Pki.create();
    ca = await pki.root('ca', '/CN=Header CA');
    user = await pki.issue(ca, 'user', '/CN=Header User');
    other = await pki.issue(ca, 'other', '/CN=Someone Else');
  });
  after(() => pki.cleanup());

  it('nginx: URL-escaped PEM ($ssl_client_escaped_cert), raw PEM ($ssl_client_cert), bare base64 DER', () => {
    assert.deepEqual(parseEscapedPemHeader(escaped(user.pem)), user.der);
    // Only the characters a header cannot hold escaped: + / = are left alone, and not read as spaces.
    assert.deepEqual(parseEscapedPemHeader(user.pem.replace(/ /g, '%20').replace(/\n/g, '%0A')), user.der);
    assert.deepEqual(parseEscapedPemHeader(user.pem.replace(/\n/g, '\t')), user.der);
    assert.deepEqual(parseEscapedPemHeader(encodeURIComponent(user.der.toString('base64'))), user.der);
    for (const bad of ['', '%', '%ZZ', 'not a certificate', escaped(user.pem + other.pem), escaped('-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----')]) {
      assert.equal(parseEscapedPemHeader(bad), undefined, bad.slice(0, 30));
    }
  });

  it('Envoy: the last element of x-forwarded-client-cert, quoted values parsed properly', () => {
    const element = (cert: Issued, extra = '') =>
      `By=spiffe://fedgate.test/proxy;Hash=${'ab'.repeat(32)};Cert="${escaped(cert.pem)}";Chain="${escaped(cert.pem + ca.pem)}";Subject="CN=a,O=\\"b; c\\"";URI=spiffe://x;DNS=a.example;DNS=b.example${extra}`;
    const parsed = parseForwardedClientCert(`${element(other)},${element(user)}`);
    assert.equal(parsed?.length, 2);
    assert.deepEqual(parsed![1]!.get('subject'), ['CN=a,O="b; c"']);
    assert.deepEqual(parsed![1]!.get('dns'), ['a.example', 'b.example']);
    const form = envoyForm();
    const value = `${element(other)}, ${element(user)}`;
    assert.deepEqual(form.parse(value), user.der, 'the hop nearest to fedgate');
    // Envoy's Chain holds the leaf too; what comes along is the rest.
    assert.deepEqual(form.chain!(value, {}), [ca.der]);
    assert.deepEqual(form.parse(`Hash=abc;Chain="${escaped(user.pem + ca.pem)}"`), user.der, 'Chain alone');
    assert.deepEqual(form.parse(`hash=abc; cert="${escaped(user.pem)}"`), user.der, 'keys are case-insensitive');
    for (const bad of [
      'Cert', 'Cert="unterminated', `Cert="${escaped(user.pem)}" trailing`, 'Hash=abc', `Cert=${escaped(user.pem)}"x"`,
      `Cert="${escaped(user.pem)}";Cert="${escaped(other.pem)}"`, `Cert="%ZZ"`, `${element(user)},Hash=abc`,
    ]) {
      assert.equal(form.parse(bad), undefined, bad.slice(0, 40));
    }
  });

  it('RFC 9440: Client-Cert and the Client-Cert-Chain list', () => {
    assert.deepEqual(parseClientCertChainHeader(`${sf(ca.der)}, ${sf(other.der)}`), [ca.der, other.der]);
    assert.deepEqual(parseClientCertChainHeader(''), []);
    assert.equal(parseClientCertChainHeader(`${sf(ca.der)}, AQID`), undefined);
    const form = rfc9440Form();
    assert.deepEqual(form.parse(sf(user.der)), user.der);
    assert.deepEqual(form.chain!(sf(user.der), { 'client-cert-chain': sf(ca.der) }), [ca.der]);
    assert.deepEqual(form.chain!(sf(user.der), {}), []);
  });

  it('configured names, in the order RFC 9440, Envoy, nginx; false turns a form off', () => {
    assert.deepEqual(certificateHeaderForms({ clientCert: 'Client-Cert', clientCertChain: 'client-cert-chain', envoy: 'x-forwarded-client-cert', nginx: 'X-SSL-Client-Cert' }).map((f) => f.name),
      ['client-cert', 'x-forwarded-client-cert', 'x-ssl-client-cert']);
    assert.deepEqual(certificateHeaderForms({ clientCert: false, envoy: false, nginx: 'ssl-client-cert' }).map((f) => f.name), ['ssl-client-cert']);
  });

  describe('the inspector', () => {
    const logs = new LogCapture();
    const inspect = createClientCertificateInspector({
      trustedProxies: ['10.0.0.0/8', '::1'],
      logger: createLogger('info', logs),
      headerForms: certificateHeaderForms({ clientCert: 'client-cert', clientCertChain: 'client-cert-chain', envoy: 'x-forwarded-client-cert', nginx: 'x-ssl-client-cert' }),
      withChain: true,
    });
    const found = (lookup: CertificateLookup) => {
      assert.equal(lookup.status, 'found', JSON.stringify(lookup));
      return lookup.status === 'found' ? lookup.certificate : undefined!;
    };

    it('reads each form from a trusted proxy, with its chain', () => {
      const rfc = found(inspect(request({ 'client-cert': sf(user.der), 'client-cert-chain': sf(ca.der) })));
      assert.deepEqual([rfc.der, rfc.chain, rfc.source, rfc.header], [user.der, [ca.der], 'header', 'client-cert']);
      const envoy = found(inspect(request({ 'x-forwarded-client-cert': `Cert="${escaped(user.pem)}";Chain="${escaped(user.pem + ca.pem)}"` }, '::ffff:10.1.2.3')));
      assert.deepEqual([envoy.der, envoy.chain, envoy.header], [user.der, [ca.der], 'x-forwarded-client-cert']);
      const nginx = found(inspect(request({ 'x-ssl-client-cert': escaped(user.pem) }, '::1')));
      assert.deepEqual([nginx.der, nginx.chain, nginx.header], [user.der, [], 'x-ssl-client-cert']);
    });

    it('reports a malformed header, and one sent twice', () => {
      for (const headers of [
        { 'x-ssl-client-cert': 'garbage' },
        { 'x-ssl-client-cert': `${escaped(user.pem)}, ${escaped(other.pem)}` },
        { 'client-cert': ':AQID:' },
        { 'client-cert': sf(user.der), 'client-cert-chain': 'nonsense' },
        { 'x-forwarded-client-cert': 'Cert="unterminated' },
      ]) {
        const lookup = inspect(request(headers));
        assert.equal(lookup.status, 'malformed', JSON.stringify(headers).slice(0, 60));
        if (lookup.status === 'malformed') assert.equal(lookup.header, Object.keys(headers)[0]);
      }
      // A readable form wins over an unreadable one.
      assert.deepEqual(found(inspect(request({ 'client-cert': ':AQID:', 'x-ssl-client-cert': escaped(user.pem) }))).der, user.der);
    });

    it('ignores certificate headers from other addresses, and logs that without their value', () => {
      const lookup = inspect(request({ 'x-ssl-client-cert': escaped(user.pem), 'client-cert': sf(user.der) }, '192.0.2.7'));
      assert.deepEqual(lookup, { status: 'none', ignored: ['client-cert', 'x-ssl-client-cert'] });
      const warning = logs.lines.map((l) => JSON.parse(l)).find((l) => l.level === 'warn' && l.peer === '192.0.2.7');
      assert.ok(warning);
      assert.match(warning.msg, /not a trusted proxy/);
      assert.ok(!logs.text.includes(user.der.toString('base64').slice(0, 40)));
      assert.ok(!logs.text.includes(escaped(user.pem).slice(30, 70)));
      assert.deepEqual(inspect(request({})), { status: 'none' });
      assert.deepEqual(inspect(request({ 'x-ssl-client-cert': '' })), { status: 'none' });
    });

    it('gives the gateway reader the same answers, without the chain', () => {
      const read = createClientCertificateReader({ trustedProxies: ['10.0.0.0/8'], logger: createLogger('silent'), headerForms: [nginxForm()] });
      assert.deepEqual(read(request({ 'x-ssl-client-cert': escaped(user.pem) })), { der: user.der, source: 'header', header: 'x-ssl-client-cert' });
      assert.equal(read(request({ 'x-ssl-client-cert': 'garbage' })), undefined);
      assert.equal(read(request({ 'x-ssl-client-cert': escaped(user.pem) }, '192.0.2.7')), undefined);
    });
  });
});
