/**
 * SAML login end to end against a real identity provider (samlify, its own
 * key): /saml/login sends a signed AuthnRequest the IdP verifies, the IdP's
 * signed response goes to the ACS, /saml/complete finishes the login through
 * the hooks. Just-in-time accounts, attribute and group mapping, a second
 * login reaching the same account, linking, and replicas sharing the store.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { parseMetadata } from '../../../src/federation/saml/metadata.ts';
import { certificateToPem } from '../../../src/federation/saml/xml.ts';
import { MemoryStore } from '../../../src/store/index.ts';
import { login, postToAcs, spMetadata, startLogin, tempFile } from './flows.ts';
import { startTestbed, type Testbed } from './testbed.ts';
import { ATTR, TestIdp } from './test-idp.ts';

const UNI = 'https://idp.uni.example.org/idp/shibboleth';
const FEDERATION = 'https://federation.example.org/';
const ENTITLEMENT_RULES = [
  { pattern: '^urn:geant:example\\.org:group:cms(?::([a-z:]+))?#', group: '/cms/$1', assertedBy: { entityIds: [UNI] } },
  { pattern: '^urn:geant:example\\.org:group:(?<vo>atlas)#', group: '/$<vo>', assertedBy: { registrationAuthorities: [FEDERATION] } },
];

describe('SAML login with a real identity provider', () => {
  let idp: TestIdp;
  let other: TestIdp;
  let tb: Testbed;
  let metadataFile: string;

  before(async () => {
    idp = await TestIdp.create(UNI);
    other = await TestIdp.create('https://idp.other.example.net/idp');
    // Both registered by the same federation; each vouches for its own scope.
    metadataFile = await tempFile('idp.xml', idp.metadata({ scopes: ['uni.example.org'], registrationAuthority: FEDERATION }));
    const otherFile = await tempFile('other.xml', other.metadata({ scopes: ['other.example.net'], registrationAuthority: FEDERATION }));
    tb = await startTestbed({
      groups: ['/cms', '/cms/production', '/atlas'],
      saml: {
        metadata: [{ file: metadataFile, trustUnsigned: true }, { file: otherFile, trustUnsigned: true }],
        entitlementRules: ENTITLEMENT_RULES,
        jit: { default: true, idps: { [other.entityID]: false } },
      },
    });
  });
  after(() => tb.close());

  it('serves signed SP metadata naming the ACS and the signing certificate', async () => {
    const xml = await spMetadata(tb);
    assert.match(xml, new RegExp(`entityID="${tb.issuer}/saml/metadata"`));
    assert.match(xml, /AuthnRequestsSigned="true"/);
    assert.match(xml, /WantAssertionsSigned="true"/);
    assert.match(xml, new RegExp(`Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="${tb.issuer}/saml/acs"`));
    assert.match(xml, /<Signature xmlns="http:\/\/www.w3.org\/2000\/09\/xmldsig#">/);
    // Its signature verifies with the certificate it publishes (the check identity providers make).
    const certificate = certificateToPem(/<(?:ds:)?X509Certificate>([^<]+)</.exec(xml)![1]!);
    const parsed = parseMetadata(xml, { signingCertificate: certificate });
    assert.equal(parsed.entities, 1);
    assert.equal(parsed.verified, true);
    assert.throws(() => parseMetadata(xml.replace('/saml/acs"', '/evil/acs"'), { signingCertificate: certificate }));
  });

  it('creates an account just in time, maps name, email and groups, and finishes the login', async () => {
    const browser = tb.browser();
    const { acs, complete, request } = await login(tb, browser, idp, { interaction: 'uid-first' }, {
      attributes: {
        [ATTR.subjectId]: ['a1b2c3@uni.example.org'],
        [ATTR.eppn]: ['jdoe@uni.example.org'],
        [ATTR.givenName]: ['Jane'],
        [ATTR.sn]: ['Doe'],
        [ATTR.mail]: ['jane.doe@uni.example.org'],
        [ATTR.entitlement]: [
          'urn:geant:example.org:group:cms#aai.example.org',
          'urn:geant:example.org:group:cms:production#aai.example.org',
          'urn:geant:example.org:group:atlas#aai.example.org',
          'urn:geant:example.org:group:cms:nonexistent#aai.example.org',
          'urn:mace:dir:entitlement:common-lib-terms',
        ],
      },
    });
    assert.equal(request.acsUrl, `${tb.issuer}/saml/acs`);
    assert.equal(request.spEntityId, `${tb.issuer}/saml/metadata`);
    assert.equal(acs.status, 303);
    assert.equal(complete!.status, 303);
    assert.equal(complete!.location, '/interaction/uid-first/done');
    const call = tb.finished.at(-1)!;
    assert.equal(call.uid, 'uid-first');
    assert.equal(call.amr, 'saml');
    const account = call.account;
    assert.equal(account.username, 'jdoe@uni.example.org');
    assert.equal(account.name, 'Jane Doe');
    assert.equal(account.email, 'jane.doe@uni.example.org');
    // Only groups that exist in the registry: /cms/nonexistent is not one.
    assert.deepEqual(account.groups, ['/atlas', '/cms', '/cms/production']);
    assert.deepEqual(account.identities.map((i) => [i.type, i.issuer, i.subject]), [['saml', idp.entityID, 'a1b2c3@uni.example.org']]);
    const events = await tb.events();
    const loginEvent = events.find((e) => e.type === 'login' && e.actor === account.id)!;
    assert.equal(loginEvent.detail?.method, 'saml');
    assert.equal(loginEvent.detail?.idp, idp.entityID);
    assert.equal(loginEvent.detail?.created, true);
  });

  it('brings a second login to the same account, adding newly mapped groups but overwriting nothing', async () => {
    const first = tb.finished.at(-1)!.account;
    const browser = tb.browser();
    const { complete } = await login(tb, browser, idp, { interaction: 'uid-second' }, {
      attributes: {
        [ATTR.subjectId]: ['a1b2c3@uni.example.org'],
        [ATTR.displayName]: ['Someone Else'],
        [ATTR.mail]: ['changed@uni.example.org'],
        [ATTR.entitlement]: ['urn:geant:example.org:group:atlas#aai.example.org'],
      },
    });
    assert.equal(complete!.status, 303);
    const account = tb.finished.at(-1)!.account;
    assert.equal(account.id, first.id);
    assert.equal(account.username, first.username);
    assert.equal(account.name, 'Jane Doe');
    assert.equal(account.email, 'jane.doe@uni.example.org');
    assert.deepEqual(account.groups, ['/atlas', '/cms', '/cms/production']);
    assert.equal((await tb.accounts.list()).length, 1);
  });

  it('accepts the NameID-valued eduPersonTargetedID as subject (response and assertion signed)', async () => {
    const browser = tb.browser();
    const request = await startLogin(tb, browser, idp, { interaction: 'uid-eptid' });
    const body = await idp.respond(await spMetadata(tb), request, {
      signWith: 'both',
      attributes: { [ATTR.eptid]: [{ nameId: 'opaque-7f3e', nameQualifier: idp.entityID, spNameQualifier: request.spEntityId }] },
    });
    const acs = await postToAcs(browser, body);
    assert.equal(acs.status, 303, acs.text);
    const complete = await browser.get(acs.location!);
    assert.equal(complete.status, 303);
    const account = tb.finished.at(-1)!.account;
    assert.equal(account.identities[0]!.subject, 'opaque-7f3e');
    // An opaque identifier without a scope names no account: the hashed fallback does.
    assert.match(account.username, /^saml-[a-z0-9]{12}$/);
  });

  it('makes unique usernames from the identity when the natural one is taken', async () => {
    await tb.accounts.create({ username: 'taken@uni.example.org' });
    const browser = tb.browser();
    const { complete } = await login(tb, browser, idp, { interaction: 'uid-dup' }, {
      attributes: { [ATTR.pairwiseId]: ['zz9@uni.example.org'], [ATTR.eppn]: ['taken@uni.example.org'] },
    });
    assert.equal(complete!.status, 303);
    assert.equal(tb.finished.at(-1)!.account.username, 'taken-2@uni.example.org');
  });

  it('refuses a first login where just-in-time accounts are off for the identity provider', async () => {
    const browser = tb.browser();
    const before = tb.finished.length;
    const { complete } = await login(tb, browser, other, { interaction: 'uid-nojit' }, { attributes: { [ATTR.subjectId]: ['x1@other.example.net'] } });
    assert.equal(complete!.status, 403);
    assert.match(complete!.text, /No account here is linked/);
    assert.equal(tb.finished.length, before);
    const event = (await tb.events()).findLast((e) => e.type === 'login.failed')!;
    assert.equal(event.detail?.reason, 'no_linked_account');
    assert.equal(event.detail?.idp, other.entityID);
  });

  it('links an identity to the logged-in account, then logs in with it', async () => {
    const local = await tb.accounts.create({ username: 'local-user', name: 'Local User' });
    const browser = tb.browser();
    browser.loginAs(local);
    const { complete } = await login(tb, browser, other, { link: true }, { attributes: { [ATTR.subjectId]: ['linked1@other.example.net'] } });
    assert.equal(complete!.status, 200, complete!.text);
    assert.match(complete!.text, /Account linked/);
    assert.match(complete!.text, /href="\/account"/);
    const linked = await tb.accounts.findByIdentity('saml', other.entityID, 'linked1@other.example.net');
    assert.equal(linked?.id, local.id);
    assert.ok((await tb.events()).some((e) => e.type === 'identity.linked' && e.actor === local.id && e.detail?.idp === other.entityID));

    // JIT is off for this IdP, but the identity is linked now: the login reaches the local account.
    const again = await login(tb, tb.browser(), other, { interaction: 'uid-linked' }, { attributes: { [ATTR.subjectId]: ['linked1@other.example.net'] } });
    assert.equal(again.complete!.status, 303);
    assert.equal(tb.finished.at(-1)!.account.id, local.id);
  });

  it('refuses to link an identity that is linked to another account', async () => {
    const intruder = await tb.accounts.create({ username: 'intruder' });
    const browser = tb.browser();
    browser.loginAs(intruder);
    const { complete } = await login(tb, browser, idp, { link: true }, { attributes: { [ATTR.subjectId]: ['a1b2c3@uni.example.org'] } });
    assert.equal(complete!.status, 409);
    assert.match(complete!.text, /already linked to another account/);
    assert.equal((await tb.accounts.findById(intruder.id))!.identities.length, 0);
    const event = (await tb.events()).findLast((e) => e.type === 'identity.link_refused')!;
    assert.equal(event.detail?.reason, 'identity_taken');
    assert.equal(event.actor, intruder.id);
  });

  it('refuses a link started without a logged-in account, and one finished in another session', async () => {
    const anonymous = tb.browser();
    const start = await anonymous.get(`/saml/login?idp=${encodeURIComponent(idp.entityID)}&link=1`);
    assert.equal(start.status, 403);

    const alice = await tb.accounts.create({ username: 'alice' });
    const bob = await tb.accounts.create({ username: 'bob' });
    const browser = tb.browser();
    browser.loginAs(alice);
    const request = await startLogin(tb, browser, idp, { link: true });
    const acs = await postToAcs(browser, await idp.respond(await spMetadata(tb), request, { attributes: { [ATTR.subjectId]: ['switch@uni.example.org'] } }));
    browser.loginAs(bob);
    const complete = await browser.get(acs.location!);
    assert.equal(complete.status, 403);
    assert.equal(await tb.accounts.findByIdentity('saml', idp.entityID, 'switch@uni.example.org'), undefined);
  });

  it('finishes only in the browser that started, and only once', async () => {
    const browser = tb.browser();
    const request = await startLogin(tb, browser, idp, { interaction: 'uid-stolen' });
    const acs = await postToAcs(tb.browser(), await idp.respond(await spMetadata(tb), request, { attributes: { [ATTR.subjectId]: ['thief@uni.example.org'] } }));
    assert.equal(acs.status, 303);
    const elsewhere = await tb.browser().get(acs.location!);
    assert.equal(elsewhere.status, 403);
    // The state was consumed by that attempt.
    assert.equal((await browser.get(acs.location!)).status, 400);
  });

  it('answers an expired interaction with an error page, not a 500', async () => {
    const { complete } = await login(tb, tb.browser(), idp, { interaction: 'gone' }, { attributes: { [ATTR.subjectId]: ['a1b2c3@uni.example.org'] } });
    assert.equal(complete!.status, 400);
    assert.match(complete!.text, /expired/);
    assert.equal((await tb.events()).findLast((e) => e.type === 'login.failed')?.detail?.reason, 'interaction_expired');
  });

  it('maps an entitlement only from the identity providers its rule names, and audits the others', async () => {
    const local = await tb.accounts.create({ username: 'other-linker' });
    const browser = tb.browser();
    browser.loginAs(local);
    // `other` may assert atlas (its federation is named) but not cms (only UNI is).
    const { complete } = await login(tb, browser, other, { link: true }, {
      attributes: {
        [ATTR.subjectId]: ['ent1@other.example.net'],
        [ATTR.entitlement]: ['urn:geant:example.org:group:cms:production#aai.example.org', 'urn:geant:example.org:group:atlas#aai.example.org'],
      },
    });
    assert.equal(complete!.status, 200, complete!.text);
    assert.deepEqual((await tb.accounts.findById(local.id))!.groups, ['/atlas']);
    const event = (await tb.events()).findLast((e) => e.type === 'saml.entitlement_refused')!;
    assert.equal(event.detail?.idp, other.entityID);
    assert.equal(event.detail?.registrationAuthority, FEDERATION);
    assert.deepEqual(event.detail?.values, ['urn:geant:example.org:group:cms:production#aai.example.org']);
  });

  it('never names an account after an unverified mail or a scope another identity provider owns', async () => {
    // `other` releases a subject in its own scope, an ePPN and mail in UNI's: the account is named in other's scope.
    const jit = await startTestbed({
      saml: { metadata: [{ file: metadataFile, trustUnsigned: true }, { file: await tempFile('other.xml', other.metadata({ scopes: ['other.example.net'] })), trustUnsigned: true }] },
    });
    try {
      const squatter = await login(jit, jit.browser(), other, { interaction: 'uid-squat' }, {
        attributes: { [ATTR.subjectId]: ['mallory@other.example.net'], [ATTR.eppn]: ['jdoe@uni.example.org'], [ATTR.mail]: ['jdoe@uni.example.org'] },
      });
      assert.equal(squatter.complete!.status, 303);
      assert.equal(jit.finished.at(-1)!.account.username, 'mallory@other.example.net');
      // Only mail, or an opaque identifier: a hashed name that looks like nobody's.
      const mailOnly = await login(jit, jit.browser(), other, { interaction: 'uid-mail' }, {
        attributes: { [ATTR.pairwiseId]: ['pw7@other.example.net'], [ATTR.mail]: ['jdoe@uni.example.org'] },
      });
      assert.equal(mailOnly.complete!.status, 303);
      assert.match(jit.finished.at(-1)!.account.username, /^saml-[a-z0-9]{12}$/);
      // UNI's own user still gets the name in UNI's scope.
      const owner = await login(jit, jit.browser(), idp, { interaction: 'uid-owner' }, { attributes: { [ATTR.subjectId]: ['j1@uni.example.org'], [ATTR.eppn]: ['jdoe@uni.example.org'] } });
      assert.equal(owner.complete!.status, 303);
      assert.equal(jit.finished.at(-1)!.account.username, 'jdoe@uni.example.org');
    } finally {
      await jit.close();
    }
  });

  it('lets any replica finish a login another started (request IDs and outcomes in the shared store)', async () => {
    const store = new MemoryStore();
    const saml = { metadata: [{ file: metadataFile, trustUnsigned: true }] };
    const a = await startTestbed({ store, saml });
    const b = await startTestbed({ store, saml, keysDir: a.keysDir, issuer: a.issuer });
    try {
      const onA = a.browser();
      const request = await startLogin(a, onA, idp, { interaction: 'uid-replica' });
      const body = await idp.respond(await spMetadata(a), request, { attributes: { [ATTR.subjectId]: ['replica@uni.example.org'] } });
      // The load balancer sends the ACS post and the completion to the other replica.
      const onB = b.browser();
      for (const [name, value] of onA.cookies) onB.cookies.set(name, value);
      const acs = await postToAcs(onB, body);
      assert.equal(acs.status, 303, acs.text);
      const complete = await onB.get(acs.location!);
      assert.equal(complete.status, 303);
      assert.equal(b.finished.at(-1)?.uid, 'uid-replica');
      assert.equal(a.finished.length, 0);
    } finally {
      await b.close();
      await a.close();
      await store.close();
    }
  });
});
