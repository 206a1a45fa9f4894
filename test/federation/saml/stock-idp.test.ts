/**
 * Responses as stock identity providers send them, signed by xmlsec1 (not
 * by the xml-crypto fedgate verifies with): an XML declaration first,
 * RSA-SHA256, the assertion's and the response's signature. xmlsec1
 * --verify is asked about each fixture and must agree with fedgate's verdict.
 * The declaration is the one construct of its kind accepted: other
 * processing instructions, comments and a DOCTYPE stay refused.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { xmlsecVerify } from '../../fixtures/saml/xmlsec.ts';
import { postToAcs, spMetadata, startLogin, tempFile } from './flows.ts';
import { startTestbed, type Testbed } from './testbed.ts';
import { ATTR, TestIdp } from './test-idp.ts';

const encode = (xml: string) => Buffer.from(xml).toString('base64');

describe('responses of stock identity providers (signed by xmlsec1)', () => {
  let idp: TestIdp;
  let tb: Testbed;
  let lenient: Testbed;

  before(async () => {
    idp = await TestIdp.create('https://idp.uni.example.org/idp/shibboleth');
    const metadata = [{ file: await tempFile('idp.xml', idp.metadata()), trustUnsigned: true }];
    tb = await startTestbed({ saml: { metadata } });
    lenient = await startTestbed({ saml: { metadata, requireSignedAssertions: false } });
  });
  after(async () => {
    await tb.close();
    await lenient.close();
  });

  /** Starts a login on `bed`, lets `respond` answer it, posts the answer; the ACS status and the complete step. */
  async function attempt(bed: Testbed, uid: string, respond: (request: Awaited<ReturnType<typeof startLogin>>) => Promise<{ SAMLResponse: string; RelayState: string }>) {
    const browser = bed.browser();
    const request = await startLogin(bed, browser, idp, { interaction: uid });
    const acs = await postToAcs(browser, await respond(request));
    const complete = acs.status === 303 ? await browser.get(acs.location!) : undefined;
    return { acs, complete };
  }

  const lastReason = async (bed: Testbed) => (await bed.events()).findLast((e) => e.type === 'saml.response_rejected')?.detail?.reason;

  it('logs in with a Shibboleth-style response: declaration, response and assertion signed (RSA-SHA256)', async () => {
    let signed = '';
    const { acs, complete } = await attempt(tb, 'uid-stock-both', async (request) => {
      const body = await idp.respondXmlsec(request, { sign: 'both', attributes: { [ATTR.subjectId]: ['stock1@uni.example.org'], [ATTR.eppn]: ['stock1@uni.example.org'] } });
      signed = body.xml;
      return body;
    });
    assert.match(signed, /^<\?xml version="1\.0"\?>\n<samlp:Response/);
    assert.match(signed, /Algorithm="http:\/\/www\.w3\.org\/2001\/04\/xmldsig-more#rsa-sha256"/);
    assert.equal(await xmlsecVerify(signed, idp.keys.certificatePem, 'response'), true);
    assert.equal(await xmlsecVerify(signed, idp.keys.certificatePem, 'assertion'), true);
    assert.equal(acs.status, 303, acs.text);
    assert.equal(complete?.status, 303);
    assert.equal(tb.finished.at(-1)?.uid, 'uid-stock-both');
    assert.equal(tb.finished.at(-1)?.account.identities[0]?.subject, 'stock1@uni.example.org');
  });

  it('logs in with only the assertion signed, and with the declaration naming UTF-8', async () => {
    const { acs } = await attempt(tb, 'uid-stock-assertion', (request) => idp.respondXmlsec(request, { sign: 'assertion', attributes: { [ATTR.subjectId]: ['stock2@uni.example.org'] } }));
    assert.equal(acs.status, 303, acs.text);
    const utf8 = await attempt(tb, 'uid-stock-utf8', async (request) => {
      const body = await idp.respondXmlsec(request, { sign: 'assertion', attributes: { [ATTR.subjectId]: ['stock3@uni.example.org'] } });
      return { ...body, SAMLResponse: encode(body.xml.replace('<?xml version="1.0"?>', '<?xml version="1.0" encoding="UTF-8"?>')) };
    });
    assert.equal(utf8.acs.status, 303, utf8.acs.text);
  });

  it('refuses a response whose only signature is the response\'s while assertions must be signed (the default, as the SP metadata says)', async () => {
    assert.match(await spMetadata(tb), /WantAssertionsSigned="true"/);
    let signed = '';
    const { acs } = await attempt(tb, 'uid-stock-response-only', async (request) => {
      const body = await idp.respondXmlsec(request, { sign: 'response', attributes: { [ATTR.subjectId]: ['stock4@uni.example.org'] } });
      signed = body.xml;
      return body;
    });
    assert.equal(await xmlsecVerify(signed, idp.keys.certificatePem, 'response'), true);
    assert.equal(acs.status, 403);
    assert.equal(await lastReason(tb), 'signature_invalid');
  });

  it('accepts the response signature alone where the operator turned requireSignedAssertions off, and the metadata says so', async () => {
    // SAML metadata §2.4.4: an absent WantAssertionsSigned means false.
    assert.doesNotMatch(await spMetadata(lenient), /WantAssertionsSigned="true"/);
    const { acs } = await attempt(lenient, 'uid-lenient', (request) => idp.respondXmlsec(request, { sign: 'response', attributes: { [ATTR.subjectId]: ['stock5@uni.example.org'] } }));
    assert.equal(acs.status, 303, acs.text);
  });

  it('agrees with xmlsec1 on a response changed after signing: both refuse', async () => {
    let changed = '';
    const { acs } = await attempt(tb, 'uid-stock-tampered', async (request) => {
      const body = await idp.respondXmlsec(request, { sign: 'both', attributes: { [ATTR.subjectId]: ['stock6@uni.example.org'] } });
      changed = body.xml.replace('stock6@uni.example.org', 'admin@uni.example.org');
      return { ...body, SAMLResponse: encode(changed) };
    });
    assert.equal(await xmlsecVerify(changed, idp.keys.certificatePem, 'assertion'), false);
    assert.equal(await xmlsecVerify(changed, idp.keys.certificatePem, 'response'), false);
    assert.equal(acs.status, 403);
    assert.equal(await lastReason(tb), 'signature_invalid');
  });

  it('agrees with xmlsec1 on a response signed by another key: both refuse', async () => {
    const forger = await TestIdp.create('https://idp.uni.example.org/idp/shibboleth');
    let signed = '';
    const { acs } = await attempt(tb, 'uid-stock-forged', async (request) => {
      const body = await idp.respondXmlsec(request, { sign: 'both', key: forger.keys, attributes: { [ATTR.subjectId]: ['stock7@uni.example.org'] } });
      signed = body.xml;
      return body;
    });
    assert.equal(await xmlsecVerify(signed, idp.keys.certificatePem, 'assertion'), false);
    assert.equal(acs.status, 403);
    assert.equal(await lastReason(tb), 'signature_invalid');
  });

  // Only the declaration: what follows it is judged as before.
  const refusals: Array<{ name: string; edit: (xml: string) => string; status: number; reason: string }> = [
    { name: 'a processing instruction after the declaration', edit: (x) => x.replace('?>\n', '?>\n<?xml-stylesheet href="x.xsl"?>'), status: 403, reason: 'xml_comment' },
    { name: 'a comment after the declaration', edit: (x) => x.replace('?>\n', '?>\n<!-- hi -->'), status: 403, reason: 'xml_comment' },
    { name: 'a DOCTYPE after the declaration', edit: (x) => x.replace('?>\n', '?>\n<!DOCTYPE samlp:Response [<!ENTITY e "x">]>'), status: 400, reason: 'doctype' },
    // Anywhere but at the very start, a declaration is a processing instruction.
    { name: 'a second declaration', edit: (x) => x.replace('?>\n', '?>\n<?xml version="1.0"?>'), status: 403, reason: 'xml_comment' },
    { name: 'a declaration after leading white space', edit: (x) => ` ${x}`, status: 403, reason: 'xml_comment' },
    { name: 'a declaration of another encoding', edit: (x) => x.replace('<?xml version="1.0"?>', '<?xml version="1.0" encoding="ISO-8859-1"?>'), status: 400, reason: 'malformed' },
    { name: 'a declaration with an unknown pseudo-attribute', edit: (x) => x.replace('<?xml version="1.0"?>', '<?xml version="1.0" evil="1"?>'), status: 400, reason: 'malformed' },
  ];
  for (const { name, edit, status, reason } of refusals) {
    it(`refuses ${name} (${reason}), before any signature check`, async () => {
      const checksBefore = tb.bridge.validationStats().signatureChecks;
      const { acs } = await attempt(tb, `uid-decl-${name.replaceAll(' ', '-')}`, async (request) => {
        const body = await idp.respondXmlsec(request, { sign: 'both', attributes: { [ATTR.subjectId]: ['decl@uni.example.org'] } });
        return { ...body, SAMLResponse: encode(edit(body.xml)) };
      });
      assert.equal(acs.status, status, acs.text);
      assert.match(acs.text, new RegExp(`<code>${reason}</code>`));
      assert.equal(await lastReason(tb), reason);
      assert.equal(tb.bridge.validationStats().signatureChecks, checksBefore);
    });
  }
});
