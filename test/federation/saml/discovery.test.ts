/**
 * The discovery page and the bridge's listing API: search by display name,
 * the last choice remembered first, the `idp` hint skipping the choice,
 * links to /saml/login for a login or a link, escaping and the page headers.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { aggregateXml, certificateBody, idpEntityXml, syntheticIdps, testKeyPair } from '../../fixtures/saml/metadata-builder.ts';
import { tempFile } from './flows.ts';
import { startTestbed, type Testbed } from './testbed.ts';

describe('identity provider discovery', () => {
  let tb: Testbed;
  const logo = 'data:image/png;base64,iVBORw0KGgo=';

  before(async () => {
    const cert = certificateBody((await testKeyPair('idps')).certificatePem);
    const xml = aggregateXml([
      ...syntheticIdps(120, [cert]),
      idpEntityXml({ entityID: 'https://idp.tricky.example/idp', displayNames: { en: 'Tricky <script>alert(1)</script> & Co' }, certificates: [cert], ssoUrl: 'https://idp.tricky.example/sso', logo }),
      idpEntityXml({ entityID: 'https://idp.hidden.example/idp', displayNames: { en: 'Hidden University' }, certificates: [cert], ssoUrl: 'https://idp.hidden.example/sso', hideFromDiscovery: true }),
    ]);
    tb = await startTestbed({ saml: { metadata: [{ file: await tempFile('fed.xml', xml), trustUnsigned: true }] } });
  });
  after(() => tb.close());

  it('lists providers by display name and searches them (bridge API)', () => {
    const all = tb.bridge.providers();
    assert.equal(all.length, 121, 'hide-from-discovery entities are not listed');
    const names = all.map((p) => p.displayName);
    assert.deepEqual(names, [...names].sort((a, b) => a.localeCompare(b, 'en', { sensitivity: 'base' })));
    const hits = tb.bridge.search('zurich observatory', 10);
    assert.ok(hits.length > 0 && hits.every((h) => /Observatory of Zürich/.test(h.displayName)), JSON.stringify(hits));
    assert.deepEqual(tb.bridge.search('tricky', 5), [{ entityID: 'https://idp.tricky.example/idp', displayName: 'Tricky <script>alert(1)</script> & Co', logo }]);
    assert.equal(tb.bridge.discoveryUrl({ interaction: 'abc' }), '/saml/discovery?interaction=abc');
    assert.equal(tb.bridge.discoveryUrl({ link: true }), '/saml/discovery?link=1');
  });

  it('renders a search form and result links for a login, escaped, with the page CSP', async () => {
    const page = await tb.browser().get('/saml/discovery?interaction=uid-1&q=tricky');
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-security-policy') ?? '', /default-src 'none'/);
    assert.match(page.text, /<form method="get" action="\/saml\/discovery" role="search">/);
    assert.match(page.text, /<input type="hidden" name="interaction" value="uid-1">/);
    assert.match(page.text, /value="tricky"/);
    assert.match(page.text, /<a href="\/saml\/login\?idp=https%3A%2F%2Fidp\.tricky\.example%2Fidp&amp;interaction=uid-1">Tricky &lt;script&gt;alert\(1\)&lt;\/script&gt; &amp; Co<\/a>/);
    assert.match(page.text, /<img src="data:image\/png;base64,iVBORw0KGgo=" alt=""/);
    assert.doesNotMatch(page.text, /<script/);
  });

  it('shows the first results and how many more match', async () => {
    const page = await tb.browser().get('/saml/discovery?interaction=uid-1');
    assert.equal((page.text.match(/<li>/g) ?? []).length, 50);
    assert.match(page.text, /71 more; type more of the name/);
    const none = await tb.browser().get('/saml/discovery?interaction=uid-1&q=qqqqqq');
    assert.match(none.text, /No institution matches your search/);
  });

  it('remembers the last choice and lists it first', async () => {
    const browser = tb.browser();
    const chosen = tb.bridge.search('Leuven', 1)[0]!;
    const start = await browser.get(`/saml/login?idp=${encodeURIComponent(chosen.entityID)}&interaction=uid-2`);
    assert.equal(start.status, 303);
    const page = await browser.get('/saml/discovery?interaction=uid-3&q=Aarhus');
    assert.match(page.text, /<h2>Last used<\/h2>/);
    const firstLink = /<a href="([^"]+)">([^<]+)<\/a>/.exec(page.text)!;
    assert.equal(firstLink[2], chosen.displayName);
    assert.match(firstLink[1]!, /interaction=uid-3/);
  });

  it('skips the choice with a known idp hint, and offers linking with link=1', async () => {
    const entityID = tb.bridge.providers()[0]!.entityID;
    const hinted = await tb.browser().get(`/saml/discovery?interaction=uid-4&idp=${encodeURIComponent(entityID)}`);
    assert.equal(hinted.status, 303);
    assert.equal(hinted.location, `/saml/login?idp=${encodeURIComponent(entityID)}&interaction=uid-4`);
    const unknownHint = await tb.browser().get('/saml/discovery?interaction=uid-4&idp=https%3A%2F%2Fnope.example');
    assert.equal(unknownHint.status, 200);
    const link = await tb.browser().get('/saml/discovery?link=1&q=tricky');
    assert.match(link.text, /Link an institutional account/);
    assert.match(link.text, /<input type="hidden" name="link" value="1">/);
    assert.match(link.text, /&amp;link=1">Tricky/);
  });

  it('hidden identity providers are not listed but can be used with a hint', async () => {
    assert.doesNotMatch((await tb.browser().get('/saml/discovery?interaction=u&q=hidden')).text, /Hidden University/);
    const hinted = await tb.browser().get(`/saml/discovery?interaction=u&idp=${encodeURIComponent('https://idp.hidden.example/idp')}`);
    assert.equal(hinted.status, 303);
  });

  it('refuses a discovery page without a purpose', async () => {
    assert.equal((await tb.browser().get('/saml/discovery')).status, 400);
    assert.equal((await tb.browser().get('/saml/discovery?interaction=a&link=1')).status, 400);
    assert.equal((await tb.browser().get('/saml/discovery?interaction=bad%20uid')).status, 400);
  });

  it('answers 404 on every /saml path while SAML is disabled', async () => {
    const off = await startTestbed({ saml: { enabled: false } });
    try {
      assert.equal((await off.browser().get('/saml/metadata')).status, 404);
      assert.deepEqual(off.bridge.providers(), []);
      assert.equal(off.bridge.enabled, false);
    } finally {
      await off.close();
    }
  });
});
