/**
 * The `saml` configuration section: defaults, and each rule the schema
 * enforces reported with its path.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadConfig } from '../../../src/config/index.ts';
import { samlSchema } from '../../../src/config/saml-schema.ts';

const problems = (input: unknown) => {
  const result = samlSchema.safeParse(input);
  return result.success ? [] : result.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
};

describe('saml configuration', () => {
  it('has documented defaults', () => {
    const saml = samlSchema.parse({});
    assert.equal(saml.enabled, false);
    assert.equal(saml.clockSkewSeconds, 180);
    assert.equal(saml.requestTtlSeconds, 900);
    assert.equal(saml.requireSignedAssertions, true);
    assert.deepEqual(saml.validation, { threads: 2, deadlineMs: 10_000, maxQueue: 256 });
    assert.equal(saml.allowSha1Signatures, false);
    assert.deepEqual(saml.jit, { default: true, idps: {} });
    assert.equal(saml.groupsAtLogin, 'add');
    assert.deepEqual(saml.attributes.subject, [
      'urn:oasis:names:tc:SAML:attribute:subject-id',
      'urn:oasis:names:tc:SAML:attribute:pairwise-id',
      'urn:oid:1.3.6.1.4.1.5923.1.1.1.13',
      'urn:oid:1.3.6.1.4.1.5923.1.1.1.10',
      'urn:oid:1.3.6.1.4.1.5923.1.1.1.6',
    ]);
    const source = samlSchema.parse({ metadata: [{ file: 'idp.xml', trustUnsigned: true }] }).metadata[0]!;
    assert.deepEqual(source.refreshSeconds, { default: 3600, min: 300, max: 86400 });
  });

  it('keeps the demo realm\'s SAML off, with the schema defaults', async () => {
    const config = await loadConfig({});
    assert.deepEqual(config.saml, samlSchema.parse({}));
  });

  it('reports each misconfiguration with its path', () => {
    assert.deepEqual(problems({ enabled: true }), ['metadata: SAML is enabled but no metadata source is configured']);
    assert.deepEqual(problems({ spKeyFile: 'k.pem' }), ['spCertFile: give both spKeyFile and spCertFile, or neither']);
    assert.deepEqual(problems({ metadata: [{ url: 'https://mds.example.org/md.xml' }] }), ['metadata.0.signingCertificate: required for a url source']);
    assert.deepEqual(problems({ metadata: [{ url: 'https://mds.example.org/md.xml', signingCertificate: 'c.pem', trustUnsigned: true }] }), [
      'metadata.0.trustUnsigned: metadata fetched from a url is always verified; give signingCertificate',
    ]);
    assert.deepEqual(problems({ metadata: [{ file: 'md.xml' }] }), ['metadata.0.signingCertificate: required for a file source unless trustUnsigned is true']);
    assert.deepEqual(problems({ metadata: [{ file: 'md.xml', url: 'https://x.example/md', signingCertificate: 'c.pem' }] }), ['metadata.0: give exactly one of url and file']);
    assert.deepEqual(problems({ metadata: [{ file: 'md.xml', trustUnsigned: true, refreshSeconds: { min: 600, default: 60 } }] }), ['metadata.0.refreshSeconds: must satisfy min <= default <= max']);
    const assertedBy = { entityIds: ['https://idp.example.org/idp'] };
    assert.deepEqual(problems({ entitlementRules: [{ pattern: '(unclosed', group: '/cms', assertedBy }] }), ['entitlementRules.0.pattern: must be a valid regular expression']);
    assert.deepEqual(problems({ entitlementRules: [{ pattern: '^x$', group: 'cms', assertedBy }] }), ['entitlementRules.0.group: must be a group path such as /cms or /cms/$1']);
    assert.deepEqual(problems({ entitlementRules: [{ pattern: '^x$', group: '/cms', assertedBy: { entityIds: [], registrationAuthorities: [] } }] }), ['entitlementRules.0.assertedBy: name at least one entityId or registrationAuthority']);
    assert.deepEqual(problems({ entitlementRules: [{ pattern: '^x$', group: '/cms' }] }).length, 1);
    assert.deepEqual(problems({ clockSkewSeconds: -1 }).length, 1);
    assert.deepEqual(problems({ unknownOption: true }).length, 1);
  });
});
