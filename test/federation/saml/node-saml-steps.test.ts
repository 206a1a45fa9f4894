/**
 * What fedgate relies on in @node-saml/node-saml to classify refused
 * responses by step (src/federation/saml/response-checks.ts SteppedSaml):
 * the exact version, the protected methods it overrides, and the messages
 * of the few failures that carry nothing else. A node-saml upgrade that
 * changes any of them fails here, before a refusal gets the wrong reason
 * (test/federation/saml/bad-responses.test.ts checks the reasons end to end).
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { SAML } from '@node-saml/node-saml';
import { NODE_SAML_ASSERTION_MESSAGES, SteppedSaml } from '../../../src/federation/saml/response-checks.ts';

const require = createRequire(import.meta.url);
const entry = require.resolve('@node-saml/node-saml');
const packageDir = dirname(dirname(entry));

describe('node-saml as SteppedSaml uses it', () => {
  it('is the exact version package.json pins', async () => {
    const ours = JSON.parse(await readFile(new URL('../../../package.json', import.meta.url), 'utf8')) as { dependencies: Record<string, string> };
    const installed = JSON.parse(await readFile(join(packageDir, 'package.json'), 'utf8')) as { version: string };
    assert.equal(ours.dependencies['@node-saml/node-saml'], '5.1.0', 'pinned exactly, no range');
    assert.equal(installed.version, '5.1.0');
  });

  it('still has every step method SteppedSaml overrides, and SteppedSaml overrides each', () => {
    for (const method of ['validateInResponseTo', 'getKeyInfosAsPem', 'getSignedAssertion', 'processValidlySignedAssertionAsync', 'checkTimestampsValidityError', 'checkAudienceValidityError']) {
      assert.equal(typeof (SAML.prototype as unknown as Record<string, unknown>)[method], 'function', method);
      assert.ok(Object.hasOwn(SteppedSaml.prototype, method), `SteppedSaml overrides ${method}`);
    }
  });

  it('throws the messages the assertion step is classified by, word for word, in that step', async () => {
    const source = await readFile(join(packageDir, 'lib', 'saml.js'), 'utf8');
    const start = source.indexOf('async processValidlySignedAssertionAsync(');
    const end = source.indexOf('\n    checkTimestampsValidityError(', start);
    assert.ok(start > 0 && end > start, 'processValidlySignedAssertionAsync is where it was');
    const step = source.slice(start, end);
    for (const message of Object.keys(NODE_SAML_ASSERTION_MESSAGES)) {
      assert.ok(step.includes(`"${message}"`), `node-saml's assertion step says: ${message}`);
    }
  });

  it('returns its time and audience failures before throwing them (recognised by identity)', async () => {
    const source = await readFile(join(packageDir, 'lib', 'saml.js'), 'utf8');
    assert.match(source, /const conErr = this\.checkTimestampsValidityError\([^)]*\);\s*if \(conErr\)\s*throw conErr;/);
    assert.match(source, /const audienceErr = this\.checkAudienceValidityError\([^)]*\);\s*if \(audienceErr\)\s*throw audienceErr;/);
  });
});
