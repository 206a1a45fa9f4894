/**
 * Attribute mapping: which identifier becomes the subject (in the
 * configured order, scoped ones checked against the IdP's metadata scopes),
 * name and email, entitlement rules with captures, and the usernames a
 * just-in-time account may get.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { samlSchema } from '../../../src/config/saml-schema.ts';
import { AttributeMapper, readStatements, usernameCandidates, type AssertionStatements, type AttributeValue } from '../../../src/federation/saml/attributes.ts';
import { parseXml } from '../../../src/federation/saml/xml.ts';
import { ATTR, responseXml } from './test-idp.ts';

const IDP = { entityID: 'https://idp.uni.example.org/idp', scopes: [{ value: 'uni.example.org', regexp: false }, { value: '^[a-z]+\\.uni\\.example\\.org$', regexp: true }] };
const SP = 'https://fedgate.example.org/saml/metadata';
const config = samlSchema.parse({
  entitlementRules: [
    { pattern: '^urn:geant:example\\.org:group:cms(?::([^#]+))?#', group: '/cms/$1' },
    { pattern: '^urn:geant:example\\.org:group:(?<vo>[a-z]+):members#', group: '/$<vo>' },
    { pattern: '^urn:geant:example\\.org:group:weird#', group: '/bad/$1' },
  ],
});
const mapper = new AttributeMapper(config.attributes, config.entitlementRules);

function statements(attributes: Record<string, Array<string | AttributeValue>>, nameId?: AssertionStatements['nameId']): AssertionStatements {
  return {
    nameId,
    attributes: new Map(Object.entries(attributes).map(([k, vs]) => [k, vs.map((v) => (typeof v === 'string' ? { text: v } : v))])),
  };
}

describe('SAML attribute mapping', () => {
  it('takes the subject in the configured order', () => {
    const all = {
      [ATTR.eppn]: ['jdoe@uni.example.org'],
      [ATTR.uniqueId]: ['123456@uni.example.org'],
      [ATTR.pairwiseId]: ['PW9@uni.example.org'],
      [ATTR.subjectId]: ['S1@uni.example.org'],
    };
    const pick = (attrs: Record<string, string[]>) => {
      const m = mapper.map(statements(attrs), IDP, SP);
      return m === 'no_subject' ? m : [m.subjectSource, m.subject];
    };
    assert.deepEqual(pick(all), [ATTR.subjectId, 'S1@uni.example.org']);
    assert.deepEqual(pick({ ...all, [ATTR.subjectId]: [] }), [ATTR.pairwiseId, 'PW9@uni.example.org']);
    assert.deepEqual(pick({ [ATTR.uniqueId]: ['123456@uni.example.org'], [ATTR.eppn]: ['jdoe@uni.example.org'] }), [ATTR.uniqueId, '123456@uni.example.org']);
    assert.deepEqual(pick({ [ATTR.eppn]: ['jdoe@dept.uni.example.org'] }), [ATTR.eppn, 'jdoe@dept.uni.example.org']);
  });

  it('ignores scoped identifiers outside the IdP\'s scopes, malformed or multi-valued ones', () => {
    assert.equal(mapper.map(statements({ [ATTR.subjectId]: ['S1@other.example.com'] }), IDP, SP), 'no_subject');
    assert.equal(mapper.map(statements({ [ATTR.subjectId]: ['no-scope'] }), IDP, SP), 'no_subject');
    assert.equal(mapper.map(statements({ [ATTR.subjectId]: ['a@uni.example.org', 'b@uni.example.org'] }), IDP, SP), 'no_subject');
    const m = mapper.map(statements({ [ATTR.subjectId]: ['S1@other.example.com'], [ATTR.eppn]: ['jdoe@uni.example.org'] }), IDP, SP);
    assert.equal(m !== 'no_subject' && m.subject, 'jdoe@uni.example.org');
    // No scopes in metadata: nothing to check against.
    const n = mapper.map(statements({ [ATTR.subjectId]: ['S1@other.example.com'] }), { entityID: IDP.entityID, scopes: [] }, SP);
    assert.equal(n !== 'no_subject' && n.subject, 'S1@other.example.com');
  });

  it('reads eduPersonTargetedID as a NameID or as idp!sp!id, qualified for this IdP and SP', () => {
    const nameIdForm = (q: Partial<{ nameQualifier: string; spNameQualifier: string }>) =>
      mapper.map(statements({ [ATTR.eptid]: [{ text: 'tid-1', nameId: { value: 'tid-1', ...q } }] }), IDP, SP);
    const subject = (m: ReturnType<typeof nameIdForm>) => (m === 'no_subject' ? m : m.subject);
    assert.equal(subject(nameIdForm({ nameQualifier: IDP.entityID, spNameQualifier: SP })), 'tid-1');
    assert.equal(subject(nameIdForm({})), 'tid-1');
    assert.equal(subject(nameIdForm({ spNameQualifier: 'https://other-sp.example' })), 'no_subject');
    assert.equal(subject(mapper.map(statements({ [ATTR.eptid]: [`${IDP.entityID}!${SP}!tid-2`] }), IDP, SP)), 'tid-2');
    assert.equal(subject(mapper.map(statements({ [ATTR.eptid]: [`${IDP.entityID}!https://other!tid-2`] }), IDP, SP)), 'no_subject');
  });

  it('falls back to a persistent NameID, never to a transient one', () => {
    const persistent = mapper.map(statements({}, { value: 'p-77', format: 'urn:oasis:names:tc:SAML:2.0:nameid-format:persistent', nameQualifier: IDP.entityID }), IDP, SP);
    assert.equal(persistent !== 'no_subject' && persistent.subjectSource, 'NameID');
    assert.equal(mapper.map(statements({}, { value: 't-1', format: 'urn:oasis:names:tc:SAML:2.0:nameid-format:transient' }), IDP, SP), 'no_subject');
  });

  it('maps name, email and entitlements to groups with captures', () => {
    const m = mapper.map(statements({
      [ATTR.subjectId]: ['S1@uni.example.org'],
      [ATTR.givenName]: ['Ada'],
      [ATTR.sn]: ['Lovelace'],
      [ATTR.mail]: ['not an email', 'ada@uni.example.org'],
      [ATTR.entitlement]: [
        'urn:geant:example.org:group:cms#aai.example.org',
        'urn:geant:example.org:group:cms:production:analysis#aai.example.org',
        'urn:geant:example.org:group:atlas:members#aai.example.org',
        'urn:geant:example.org:group:cms:..#aai.example.org',
        'urn:geant:example.org:group:weird#aai.example.org',
      ],
    }), IDP, SP);
    assert.notEqual(m, 'no_subject');
    if (m === 'no_subject') return;
    assert.equal(m.name, 'Ada Lovelace');
    assert.equal(m.email, 'ada@uni.example.org');
    assert.deepEqual(m.groups, ['/atlas', '/bad', '/cms', '/cms/production/analysis']);
  });

  it('passes eduPersonAssurance values on (AARC-G021): URIs only, deduplicated, bounded', () => {
    const assurance = 'urn:oid:1.3.6.1.4.1.5923.1.1.1.11';
    const m = mapper.map(statements({
      [ATTR.subjectId]: ['S1@uni.example.org'],
      [assurance]: ['https://refeds.org/assurance/IAP/medium', 'https://refeds.org/assurance/IAP/medium', 'IAP medium', 'https://refeds.org/assurance/ID/unique\u0007', `https://x.example/${'a'.repeat(300)}`, 'https://refeds.org/profile/cappuccino'],
    }), IDP, SP);
    assert.ok(m !== 'no_subject');
    assert.deepEqual(m.assurance, ['https://refeds.org/assurance/IAP/medium', 'https://refeds.org/profile/cappuccino']);
    const many = mapper.map(statements({ [ATTR.subjectId]: ['S1@uni.example.org'], [assurance]: Array.from({ length: 80 }, (_, i) => `https://a.example/${i}`) }), IDP, SP);
    assert.ok(many !== 'no_subject');
    assert.equal(many.assurance.length, 50);
    const none = mapper.map(statements({ [ATTR.subjectId]: ['S1@uni.example.org'] }), IDP, SP);
    assert.ok(none !== 'no_subject');
    assert.deepEqual(none.assurance, []);
  });

  it('reads attributes and the NameID-valued form from assertion XML', () => {
    const { xml } = responseXml(IDP.entityID, { requestId: '_r', relayState: '', acsUrl: 'https://sp/acs', spEntityId: SP }, {
      nameId: 'nid',
      attributes: { [ATTR.eptid]: [{ nameId: 'tid-9', nameQualifier: IDP.entityID }], [ATTR.mail]: ['a@b.example', 'c@d.example'] },
    });
    const assertion = parseXml(xml).documentElement.getElementsByTagNameNS('urn:oasis:names:tc:SAML:2.0:assertion', 'Assertion')[0]!;
    const read = readStatements(assertion);
    assert.equal(read.nameId?.value, 'nid');
    assert.deepEqual(read.attributes.get(ATTR.eptid), [{ text: 'tid-9', nameId: { value: 'tid-9', format: 'urn:oasis:names:tc:SAML:2.0:nameid-format:persistent', nameQualifier: IDP.entityID, spNameQualifier: undefined } }]);
    assert.deepEqual(read.attributes.get(ATTR.mail)?.map((v) => v.text), ['a@b.example', 'c@d.example']);
  });

  it('derives safe usernames: letters, digits and ._@- only', () => {
    assert.deepEqual(usernameCandidates({ principalName: 'Jöhn.Dóe@Uni.Example.org', email: 'x y@z.example', subject: 'S1@uni.example.org' }, 'saml-abc'),
      ['john.doe@uni.example.org', 'x-y@z.example', 's1@uni.example.org', 'saml-abc']);
    assert.deepEqual(usernameCandidates({ subject: '!!', principalName: undefined, email: undefined }, 'saml-abc'), ['saml-abc']);
    for (const name of usernameCandidates({ principalName: '<script>@x', email: '../../etc@x', subject: 'a/b\\c' }, 'saml-1')) {
      assert.match(name, /^[a-z0-9._@-]+$/);
    }
  });
});
