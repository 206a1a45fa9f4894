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

const FEDERATION = 'https://federation.example.org/';
const IDP = { entityID: 'https://idp.uni.example.org/idp', registrationAuthority: FEDERATION, scopes: [{ value: 'uni.example.org', regexp: false }, { value: '^[a-z]+\\.uni\\.example\\.org$', regexp: true }] };
const SP = 'https://fedgate.example.org/saml/metadata';
const CMS_IDP = 'https://idp.cms.example.org/idp';
const config = samlSchema.parse({
  entitlementRules: [
    { pattern: '^urn:geant:example\\.org:group:cms(?::([^#]+))?#', group: '/cms/$1', assertedBy: { entityIds: [IDP.entityID, CMS_IDP] } },
    { pattern: '^urn:geant:example\\.org:group:(?<vo>[a-z]+):members#', group: '/$<vo>', assertedBy: { registrationAuthorities: [FEDERATION] } },
    { pattern: '^urn:geant:example\\.org:group:weird#', group: '/bad/$1', assertedBy: { entityIds: [IDP.entityID] } },
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

  it('maps an entitlement only from the identity providers its rule names (entityID or registration authority), and reports the others', () => {
    const values = ['urn:geant:example.org:group:cms:production#aai.example.org', 'urn:geant:example.org:group:atlas:members#aai.example.org', 'urn:mace:unrelated'];
    const named = mapper.groups(values, IDP);
    assert.deepEqual(named, { groups: ['/atlas', '/cms/production'], refused: [] });
    // Another member of the same federation: the registration authority rule holds, the entityID rule does not.
    const sibling = mapper.groups(values, { entityID: 'https://idp.sibling.example.org/idp', registrationAuthority: FEDERATION });
    assert.deepEqual(sibling, { groups: ['/atlas'], refused: ['urn:geant:example.org:group:cms:production#aai.example.org'] });
    // An identity provider of another federation: nothing.
    const stranger = mapper.groups(values, { entityID: 'https://idp.elsewhere.example.com/idp', registrationAuthority: 'https://other-federation.example/' });
    assert.deepEqual(stranger, { groups: [], refused: values.slice(0, 2) });
    // No registration authority in its metadata: only entityID rules can name it.
    assert.deepEqual(mapper.groups(values, { entityID: CMS_IDP, registrationAuthority: undefined }), { groups: ['/cms/production'], refused: ['urn:geant:example.org:group:atlas:members#aai.example.org'] });
    const mapped = mapper.map(statements({ [ATTR.subjectId]: ['S1@uni.example.org'], [ATTR.entitlement]: values }), { ...IDP, entityID: 'https://idp.sibling.example.org/idp', scopes: IDP.scopes }, SP);
    assert.ok(mapped !== 'no_subject');
    assert.deepEqual(mapped.groups, ['/atlas']);
    assert.deepEqual(mapped.refusedEntitlements, ['urn:geant:example.org:group:cms:production#aai.example.org']);
  });

  it('refuses an entitlement rule that names no identity provider', () => {
    assert.throws(() => samlSchema.parse({ entitlementRules: [{ pattern: '^x$', group: '/x' }] }));
    assert.throws(() => samlSchema.parse({ entitlementRules: [{ pattern: '^x$', group: '/x', assertedBy: {} }] }), /name at least one entityId or registrationAuthority/);
  });

  it('takes the username source only from a scope the metadata vouches for: never mail, a foreign scope, or an IdP without scopes', () => {
    const scoped = (attrs: Record<string, string[]>, idp: Parameters<AttributeMapper['map']>[1] = IDP) => {
      const m = mapper.map(statements(attrs), idp, SP);
      return m === 'no_subject' ? m : m.scopedName;
    };
    assert.equal(scoped({ [ATTR.subjectId]: ['S1@uni.example.org'], [ATTR.eppn]: ['jdoe@uni.example.org'] }), 'jdoe@uni.example.org');
    assert.equal(scoped({ [ATTR.subjectId]: ['S1@uni.example.org'], [ATTR.eppn]: ['jdoe@dept.uni.example.org'] }), 'jdoe@dept.uni.example.org');
    // A foreign ePPN scope: the vouched subject-id is taken instead; mail never.
    assert.equal(scoped({ [ATTR.subjectId]: ['S1@uni.example.org'], [ATTR.eppn]: ['admin@victim.example.com'], [ATTR.mail]: ['root@uni.example.org'] }), 'S1@uni.example.org');
    assert.equal(scoped({ [ATTR.pairwiseId]: ['PW@uni.example.org'], [ATTR.mail]: ['jdoe@uni.example.org'] }), undefined);
    // No shibmd:Scope in its metadata: it vouches for nothing (its subject is still accepted).
    assert.equal(scoped({ [ATTR.subjectId]: ['S1@uni.example.org'], [ATTR.eppn]: ['jdoe@uni.example.org'] }, { entityID: IDP.entityID, scopes: [], registrationAuthority: undefined }), undefined);
  });

  it('derives usernames only from the vouched scoped name, keeping its scope, else the fallback', () => {
    assert.deepEqual(usernameCandidates({ scopedName: 'Jöhn.Dóe@Uni.Example.org' }, 'saml-abc'), ['john.doe@uni.example.org', 'saml-abc']);
    assert.deepEqual(usernameCandidates({ scopedName: undefined }, 'saml-abc'), ['saml-abc']);
    assert.deepEqual(usernameCandidates({ scopedName: '!!@uni.example.org' }, 'saml-abc'), ['saml-abc']);
    // Too long to keep whole: never shortened into something that looks like another scope.
    assert.deepEqual(usernameCandidates({ scopedName: `${'a'.repeat(50)}@uni.example.org` }, 'saml-abc'), ['saml-abc']);
    for (const name of usernameCandidates({ scopedName: '<script>/../x@uni.example.org' }, 'saml-1')) {
      assert.match(name, /^[a-z0-9._-]+(@uni\.example\.org)?$/);
    }
  });
});
