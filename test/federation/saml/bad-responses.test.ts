/**
 * The corpus of bad SAML (test/fixtures/saml/invalid/scenarios.ts): every
 * response is refused with an error page (4xx, never a 500), an audit event
 * `saml.response_rejected` with the scenario's reason code, and nothing from
 * the assertion in the logs. Where a refusal must come before any
 * cryptography, the XML signature checks the worker pool ran are counted
 * (the bridge's validationStats: xml-crypto checkSignature calls, one per
 * signature node-saml checks).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { MemoryStore } from '../../../src/store/index.ts';
import { INVALID_RESPONSES, type Kit } from '../../fixtures/saml/invalid/scenarios.ts';
import { testKeyPair } from '../../fixtures/saml/metadata-builder.ts';
import { postToAcs, spMetadata, startLogin, tempFile } from './flows.ts';
import { startTestbed, type Testbed } from './testbed.ts';
import { TestIdp } from './test-idp.ts';

describe('bad SAML responses are refused', () => {
  let tb: Testbed;
  let idp: TestIdp;
  let otherIdp: TestIdp;
  let strangerIdp: TestIdp;
  let forgerKey: Awaited<ReturnType<typeof testKeyPair>>;
  let sp: string;

  before(async () => {
    [idp, otherIdp, strangerIdp, forgerKey] = await Promise.all([
      TestIdp.create('https://idp.uni.example.org/idp/shibboleth'),
      TestIdp.create('https://idp.partner.example.net/idp'),
      TestIdp.create('https://idp.stranger.example.com/idp'),
      testKeyPair('forger'),
    ]);
    tb = await startTestbed({
      saml: {
        metadata: [
          { file: await tempFile('idp.xml', idp.metadata()), trustUnsigned: true },
          { file: await tempFile('other.xml', otherIdp.metadata()), trustUnsigned: true },
        ],
      },
    });
    sp = await spMetadata(tb);
  });
  after(() => tb.close());

  for (const { scenario, status, reason, maxSignatureChecks } of INVALID_RESPONSES) {
    it(`${scenario.name}: ${status} ${reason}`, async () => {
      const browser = tb.browser();
      const request = await startLogin(tb, browser, idp, { interaction: `uid-${scenario.name}` });
      const kit: Kit = {
        idp, otherIdp, strangerIdp, forgerKey, spMetadata: sp, request,
        startAnother: () => startLogin(tb, browser, idp, { interaction: `uid-${scenario.name}-2` }),
        post: async (body) => (await postToAcs(browser, body)).status,
      };
      const body = await scenario(kit);
      const logsBefore = tb.logs.lines.length;
      const checksBefore = tb.bridge.validationStats().signatureChecks;
      const answer = await postToAcs(browser, body);
      const signatureChecks = tb.bridge.validationStats().signatureChecks - checksBefore;

      assert.equal(answer.status, status, answer.text);
      assert.match(answer.headers.get('content-type') ?? '', /^text\/html/);
      assert.match(answer.text, new RegExp(`<code>${reason}</code>`));
      assert.doesNotMatch(answer.text, /victim|attacker|evil\.example|at .*\.ts:\d+/);
      if (maxSignatureChecks !== undefined) assert.ok(signatureChecks <= maxSignatureChecks, `${signatureChecks} signature checks ran`);

      const event = (await tb.events()).findLast((e) => e.type === 'saml.response_rejected')!;
      assert.equal(event.detail?.reason, reason);
      assert.equal(event.outcome, 'failure');
      const logs = tb.logs.lines.slice(logsBefore).join('\n');
      assert.doesNotMatch(logs, /victim|attacker|evil\.example|SAMLResponse|<saml/);
      assert.ok(!tb.finished.some((f) => f.uid.startsWith(`uid-${scenario.name}`)), 'no login was finished');
    });
  }

  it('refuses a response signed only as a whole when assertions must be signed (requireSignedAssertions, the default)', async () => {
    const strict = await startTestbed({ saml: { metadata: [{ file: await tempFile('idp.xml', idp.metadata()), trustUnsigned: true }] } });
    try {
      const browser = strict.browser();
      const strictSp = await spMetadata(strict);
      const request = await startLogin(strict, browser, idp, { interaction: 'uid-strict' });
      const answer = await postToAcs(browser, await idp.respond(strictSp, request, { signWith: 'response', attributes: { 'urn:oasis:names:tc:SAML:attribute:subject-id': ['s@uni.example.org'] } }));
      assert.equal(answer.status, 403);
      assert.match(answer.text, /<code>signature_invalid<\/code>/);
      const both = await startLogin(strict, browser, idp, { interaction: 'uid-strict-2' });
      assert.equal((await postToAcs(browser, await idp.respond(strictSp, both, { signWith: 'both', attributes: { 'urn:oasis:names:tc:SAML:attribute:subject-id': ['s@uni.example.org'] } }))).status, 303);
    } finally {
      await strict.close();
    }
  });

  it('stores nothing and sets no cookie for a login into an interaction that does not exist', async () => {
    const written: string[] = [];
    class RecordingStore extends MemoryStore {
      override async set(key: string, value: unknown, ttlSeconds?: number) {
        written.push(key);
        return super.set(key, value, ttlSeconds);
      }
      override async setIfAbsent(key: string, value: unknown, ttlSeconds?: number) {
        written.push(key);
        return super.setIfAbsent(key, value, ttlSeconds);
      }
    }
    const recorded = await startTestbed({ store: new RecordingStore(), saml: { metadata: [{ file: await tempFile('idp.xml', idp.metadata()), trustUnsigned: true }] } });
    try {
      const browser = recorded.browser();
      written.length = 0;
      const answer = await browser.get(`/saml/login?idp=${encodeURIComponent(idp.entityID)}&interaction=unknown-made-up`);
      assert.equal(answer.status, 400);
      assert.match(answer.text, /<code>invalid_request<\/code>/);
      assert.deepEqual(written.filter((k) => k.startsWith('saml:')), []);
      assert.equal(browser.cookies.size, 0);
      // The same request for an interaction that exists stores its request.
      assert.equal((await browser.get(`/saml/login?idp=${encodeURIComponent(idp.entityID)}&interaction=uid-real`)).status, 303);
      assert.ok(written.some((k) => k.startsWith('saml:relay:')));
      assert.ok(written.some((k) => k.startsWith('saml:authn-request:')));
    } finally {
      await recorded.close();
      await recorded.store.close();
    }
  });

  it('refuses a request to an identity provider not in metadata at /saml/login', async () => {
    const answer = await tb.browser().get(`/saml/login?idp=${encodeURIComponent('https://idp.stranger.example.com/idp')}&interaction=uid-x`);
    assert.equal(answer.status, 400);
    assert.match(answer.text, /unknown_idp/);
    assert.equal((await tb.events()).findLast((e) => e.type === 'login.failed')?.detail?.reason, 'unknown_idp');
  });

  it('answers an empty post, a GET on the ACS and unknown paths with error pages', async () => {
    const browser = tb.browser();
    assert.equal((await browser.post('/saml/acs', {})).status, 400);
    assert.equal((await browser.get('/saml/acs')).status, 405);
    assert.equal((await browser.get('/saml/nothing-here')).status, 404);
    assert.equal((await browser.get('/saml/complete?state=nope')).status, 400);
    assert.equal((await browser.get('/saml/login?idp=x')).status, 400);
    const huge = await browser.post('/saml/acs', { SAMLResponse: 'A'.repeat(2 * 1024 * 1024), RelayState: 'x' });
    assert.equal(huge.status, 413);
    assert.match(huge.text, /<code>too_large<\/code>/);
    const event = (await tb.events()).findLast((e) => e.type === 'saml.response_rejected')!;
    assert.equal(event.detail?.reason, 'too_large');
    assert.equal(event.actor, 'anonymous');
  });
});
