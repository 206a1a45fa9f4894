import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import {
  certificateIssuerDn, certificateSubjectDn, DnSyntaxError, isDn, normaliseDn, parseDn,
} from '../../../src/federation/x509/dn.ts';
import { Pki, type Ca, type Issued } from './pki.ts';

describe('normaliseDn: one canonical form for every way of writing a DN', () => {
  const table: Array<[canonical: string, inputs: string[]]> = [
    ['/C=CH/O=Example/CN=Alice', [
      'CN=Alice,O=Example,C=CH', // RFC 4514 / 2253: least significant first
      '/C=CH/O=Example/CN=Alice', // OpenSSL compat: most significant first
      'cn=Alice, o=Example, c=CH', // case of names, spaces after commas (RFC 1779)
      'CN = Alice ; O = Example ; C = CH', // RFC 1779 separators
      'C=CH\nO=Example\nCN=Alice', // node:crypto X509Certificate#subject
      'OID.2.5.4.3=Alice,2.5.4.10=Example,countryName=CH', // OIDs and long names
      '  /C=CH/O=Example/CN=Alice\n', // pasted with white space around
      'CN=#0c05416c696365,O=Example,C=CH', // RFC 4514 §2.4 BER value (UTF8String "Alice")
      'CN="Alice",O=Example,C=CH', // RFC 2253 quoted value
    ]],
    ['/C=CH/O=Example, Inc./CN=Alice', [
      'CN=Alice,O=Example\\, Inc.,C=CH',
      'CN=Alice,O="Example, Inc.",C=CH',
      'CN=Alice,O=Example\\2C Inc.,C=CH', // hex pair escape
      '/C=CH/O=Example, Inc./CN=Alice',
      'C=CH\nO=Example\\, Inc.\nCN=Alice',
    ]],
    ['/O=Example/CN=Alice+UID=alice', [ // multi-valued RDN: sorted by attribute name
      'CN=Alice+UID=alice,O=Example',
      'UID=alice+CN=Alice,O=Example',
      'uid=alice + cn=Alice, o=Example',
      '/O=Example/UID=alice+CN=Alice',
      'O=Example\nUID=alice + CN=Alice', // node prints " + "
    ]],
    ['/O=X/CN=A\\+B', [ // a plus sign in a value
      'CN=A\\+B,O=X',
      'CN=A\\2BB,O=X',
      'CN="A+B",O=X',
      '/O=X/CN=A\\+B',
      '/O=X/CN=A+B', // OpenSSL prints it unescaped; "B" is no attribute name, so it stays in the value
    ]],
    ['/CN=Alice/emailAddress=alice@example.org', [
      'emailAddress=alice@example.org,CN=Alice',
      'E=alice@example.org,CN=Alice',
      'Email=alice@example.org,CN=Alice',
      '1.2.840.113549.1.9.1=alice@example.org,CN=Alice',
      '/CN=Alice/Email=alice@example.org',
      '/CN=Alice/emailAddress=alice@example.org',
      '/CN=Alice/E=alice@example.org',
    ]],
    ['/DC=org/DC=example/OU=computers/CN=host\\/a.example.org', [ // DC components; the Globus host/ convention
      'CN=host/a.example.org,OU=computers,DC=example,DC=org',
      'CN=host/a.example.org,OU=computers,domainComponent=example,0.9.2342.19200300.100.1.25=org',
      '/DC=org/DC=example/OU=computers/CN=host/a.example.org', // OpenSSL's unescaped output
      '/DC=org/DC=example/OU=computers/CN=host\\/a.example.org',
    ]],
    ['/C=CH/CN=Émile Zoë', [ // UTF-8
      'CN=Émile Zoë,C=CH',
      'CN=\\C3\\89mile Zo\\C3\\AB,C=CH', // RFC 4514 hex pairs of UTF-8 bytes
      '/C=CH/CN=\\xC3\\x89mile Zo\\xC3\\xAB', // OpenSSL's default (esc_msb) output
      '/C=CH/CN=\\C3\\89mile Zo\\C3\\AB', // RFC 4514-style hex pairs in the slash form
      'CN=E\u0301mile Zoe\u0308,C=CH', // decomposed: NFC-normalised
    ]],
    ['/O=X/CN=Alice', ['CN=  Alice  ,O=X', 'CN=Alice\t,O=X'.replace('\t', ' ')]], // unescaped outer spaces are not part of the value
    ['/O=X/CN= Alice\\ ', ['CN=\\ Alice\\ ,O=X', 'CN=" Alice ",O=X', '/O=X/CN= Alice\\ ']], // escaped ones are
    ['/CN=a\\\\b=c;d"e<f>', ['CN=a\\\\b\\=c\\;d\\"e\\<f\\>', '/CN=a\\\\b=c;d"e<f>']],
    ['/CN=\\#1', ['CN=\\#1', '/CN=#1', '/CN=\\#1']], // a literal leading #
    ['/1.2.3.4=#020105', ['1.2.3.4=#020105', 'OID.1.2.3.4=#020105', '/1.2.3.4=#020105']], // not a string type: kept encoded
    ['/CN=line\\x0Abreak', ['CN=line\\0Abreak', '/CN=line\\x0Abreak']],
    ['/C=DE/ST=Berlin/L=Berlin/O=Org/OU=Unit/SN=Smith/GN=Jane/serialNumber=123/title=Dr/street=Main St 1', [
      'street=Main St 1,title=Dr,serialNumber=123,givenName=Jane,surname=Smith,OU=Unit,O=Org,L=Berlin,S=Berlin,C=DE',
      'STREET=Main St 1,TITLE=Dr,SERIALNUMBER=123,G=Jane,SN=Smith,OU=Unit,O=Org,L=Berlin,ST=Berlin,C=DE',
    ]],
    ['', ['', '/', '  ']],
    ['/DC=org/DC=x/CN=f\\\\g h', [ // a backslash in a value
      '/DC=org/DC=x/CN=f\\g h', // OpenSSL's compat form prints it as it is
      'DC = org, DC = x, CN = f\\\\g h', // OpenSSL 3's default (oneline) form
      'subject=DC = org, DC = x, CN = f\\\\g h',
      'CN=f\\\\g h,DC=x,DC=org',
    ]],
    ['/DC=org/DC=x/O=A, B+OU=u/CN=Alice', [ // OpenSSL 3's default form: most significant first
      'DC = org, DC = x, OU = u + O = "A, B", CN = Alice',
      'issuer=DC = org, DC = x, O = "A, B" + OU = u, CN = Alice',
      '/DC=org/DC=x/OU=u+O=A, B/CN=Alice',
    ]],
  ];

  for (const [canonical, inputs] of table) {
    it(`→ ${JSON.stringify(canonical)}`, () => {
      for (const input of inputs) assert.equal(normaliseDn(input), canonical, JSON.stringify(input));
      // Idempotent: the canonical form is itself an accepted input.
      assert.equal(normaliseDn(canonical), canonical);
    });
  }

  it('refuses what is not a DN', () => {
    for (const input of ['Alice', 'Foo=bar', 'CN=Alice,', 'CN=Alice,Bogus=1', '/CN=a/Foo=b', 'CN=#zz', 'CN="unterminated', 'CN=a\\', 'CN=\\FF\\FE', 'C=CH\nO=a,CN=b', 'CN=a/b']) {
      if (input === 'CN=a/b') {
        assert.equal(normaliseDn(input), '/CN=a\\/b'); // a slash in RFC 4514 text is just a character
        continue;
      }
      assert.throws(() => normaliseDn(input), DnSyntaxError, JSON.stringify(input));
      assert.equal(isDn(input), false);
    }
  });

  it('keeps value case and inner spaces (OpenSSL and Globus compare them exactly)', () => {
    assert.notEqual(normaliseDn('CN=alice'), normaliseDn('CN=Alice'));
    assert.notEqual(normaliseDn('CN=Alice  Smith'), normaliseDn('CN=Alice Smith'));
  });

  it('parses into RDNs, most significant first', () => {
    assert.deepEqual(parseDn('CN=Alice+UID=a,O=X'), [
      [{ type: '2.5.4.10', value: 'X' }],
      [{ type: '2.5.4.3', value: 'Alice' }, { type: '0.9.2342.19200300.100.1.1', value: 'a' }],
    ]);
  });
});

describe('certificate DNs agree with what OpenSSL and node print', () => {
  let pki: Pki;
  let ca: Ca;
  let tricky: Issued;
  const subject = '/DC=org/DC=example/O=Example\\, Inc./L=f\\\\g/OU=Grid+UID=alice/CN=Émile Zoë\\/host/emailAddress=emile@example.org';

  before(async () => {
    pki = await Pki.create();
    ca = await pki.root('ca', '/DC=org/DC=example/CN=Example CA');
    tricky = await pki.issue(ca, 'tricky', subject);
  });
  after(() => pki.cleanup());

  it('subject and issuer from DER, against openssl -nameopt RFC2253 / compat and node:crypto', async () => {
    const expected = '/DC=org/DC=example/O=Example, Inc./L=f\\\\g/OU=Grid+UID=alice/CN=Émile Zoë\\/host/emailAddress=emile@example.org';
    assert.equal(certificateSubjectDn(tricky.der), expected);
    assert.equal(certificateSubjectDn(tricky.pem), expected);
    assert.equal(certificateIssuerDn(tricky.der), '/DC=org/DC=example/CN=Example CA');
    const printed = async (nameopt: string) =>
      (await pki.openssl('x509', '-in', tricky.certFile, '-noout', '-subject', '-nameopt', nameopt)).trim().replace(/^subject=/, '');
    for (const nameopt of ['RFC2253', 'RFC2253,-esc_msb', 'compat', 'oneline', 'oneline,-esc_msb']) {
      assert.equal(normaliseDn(await printed(nameopt)), expected, nameopt);
    }
    // OpenSSL 3's default, "subject=" included.
    assert.equal(normaliseDn((await pki.openssl('x509', '-in', tricky.certFile, '-noout', '-subject')).trim()), expected);
    const node = new X509Certificate(tricky.pem);
    assert.equal(normaliseDn(node.subject), expected);
    assert.equal(certificateSubjectDn(node), expected);
    assert.equal(normaliseDn(node.issuer), '/DC=org/DC=example/CN=Example CA');
  });
});
