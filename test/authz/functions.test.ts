import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { actionMatch, compileObjectPattern, matchObjectSegments, objectMatch, objectSegments, scopeMatch, scopeMatchTokens } from '../../src/authz/functions.ts';

describe('objectMatch', () => {
  const cases: Array<[obj: string, pattern: string, expected: boolean]> = [
    // `*` alone matches anything, even what nothing else matches.
    ['/store/cms/a', '*', true],
    ['', '*', true],
    ['/store/../etc', '*', true],
    ['https://storage.demo', '*', true],
    // Literal paths.
    ['/store/cms', '/store/cms', true],
    ['/store/cms/', '/store/cms', false],
    ['/store/cmsx', '/store/cms', false],
    ['/store', '/store/cms', false],
    ['/', '/', true],
    ['/a', '/', false],
    // `*`: exactly one non-empty segment.
    ['/v1/models/x/infer', '/v1/models/*/infer', true],
    ['/v1/models/x/y/infer', '/v1/models/*/infer', false],
    ['/v1/models//infer', '/v1/models/*/infer', false],
    ['/deployments/d1', '/deployments/*', true],
    ['/deployments', '/deployments/*', false],
    ['/deployments/', '/deployments/*', false],
    ['/deployments/d1/logs', '/deployments/*', false],
    ['/a', '/*', true],
    ['/', '/*', false],
    ['a', '*/', false],
    // `**` last: zero or more segments.
    ['/store/cms', '/store/cms/**', true],
    ['/store/cms/', '/store/cms/**', true],
    ['/store/cms/a', '/store/cms/**', true],
    ['/store/cms/a/b/c', '/store/cms/**', true],
    ['/store/cmsx', '/store/cms/**', false],
    ['/store/cmsx/a', '/store/cms/**', false],
    ['/store', '/store/cms/**', false],
    ['/anything/at/all', '/**', true],
    ['/', '/**', true],
    ['relative', '/**', false],
    ['/store/cms/x/data/f', '/store/*/x/**', true],
    ['/store//x/data', '/store/*/x/**', false],
    ['a/b', '**', true],
    // `**` elsewhere, and empty patterns: nothing.
    ['/store/cms/a', '/store/**/a', false],
    ['/store/**/a', '/store/**/a', false],
    ['/store/cms/a/', '/store/cms/**/', false],
    ['', '', false],
    ['/a', '', false],
    // Segments that merely contain a star are literal.
    ['/store/cmsx', '/store/cms*', false],
    ['/store/cms*', '/store/cms*', true],
    ['/a/*', '/a/*', true],
    // Traversal-looking and unnormalised objects match only `*`.
    ['/store/cms/../atlas/secret', '/store/cms/**', false],
    ['/store/cms/./a', '/store/cms/**', false],
    ['/store/cms/..', '/store/cms/*', false],
    ['/store/cms/../cms', '/store/cms/../cms', false],
    ['..', '**', false],
    ['/store/cms/..x', '/store/cms/*', true],
    ['/store/cms/...', '/store/cms/*', true],
    // Empty objects match only `*`.
    ['', '/**', false],
    ['', '**', false],
    // Audiences: exact literals.
    ['https://storage.demo', 'https://storage.demo', true],
    ['https://storage.demo/', 'https://storage.demo', false],
    ['https://storage.demo.evil', 'https://storage.demo', false],
    ['https://ml.demo', 'https://storage.demo', false],
    ['urn:x', 'urn:x', true],
  ];
  for (const [obj, pattern, expected] of cases) {
    test(`${JSON.stringify(obj)} ~ ${JSON.stringify(pattern)} → ${expected}`, () => {
      assert.equal(objectMatch(obj, pattern), expected);
    });
  }

  test('the compiled form agrees and records the literal prefix', () => {
    assert.deepEqual(compileObjectPattern('/store/*/x/**'), { kind: 'segments', segments: ['', 'store', '*', 'x'], rest: true, literalPrefix: 2 });
    assert.deepEqual(compileObjectPattern('/store/cms'), { kind: 'segments', segments: ['', 'store', 'cms'], rest: false, literalPrefix: 3 });
    assert.equal(compileObjectPattern('*').kind, 'any');
    assert.equal(compileObjectPattern('').kind, 'none');
    assert.equal(compileObjectPattern(undefined).kind, 'none');
    assert.equal(compileObjectPattern('/**/x').kind, 'none');
    for (const [obj, pattern, expected] of cases) {
      const compiled = compileObjectPattern(pattern);
      const segments = objectSegments(obj);
      const got = compiled.kind === 'any' || (compiled.kind === 'segments' && segments !== undefined && matchObjectSegments(segments, compiled));
      assert.equal(got, expected, `${obj} ~ ${pattern}`);
    }
  });

  test('is total: odd input gives false, never an exception', () => {
    const odd = [undefined, null, 42, {}, [], '\u0000', '/\n/', '/'.repeat(10_000), 'a'.repeat(100_000)];
    for (const a of odd) {
      for (const b of odd) {
        assert.equal(typeof objectMatch(a as string, b as string), 'boolean');
      }
    }
    assert.equal(objectMatch(undefined as unknown as string, '*'), true);
    assert.equal(objectMatch('/a', undefined as unknown as string), false);
  });
});

describe('actionMatch', () => {
  const cases: Array<[act: string, pattern: string, expected: boolean]> = [
    ['GET', '*', true],
    ['', '*', true],
    ['GET', 'GET', true],
    ['GET', 'get', false],
    ['POST', 'GET', false],
    ['read', 'read', true],
    ['', '', true],
    ['GET', '', false],
    // WLCG path scopes cover narrower paths of the same capability.
    ['storage.read:/store/cms/run1', 'storage.read:/store/cms', true],
    ['storage.read:/store/cms', 'storage.read:/store/cms', true],
    ['storage.read:/store/cms/', 'storage.read:/store/cms', false], // not in normal form (trailing slash): covered by nothing
    ['storage.read:/store', 'storage.read:/store/cms', false],
    ['storage.read:/store/cmsx', 'storage.read:/store/cms', false],
    ['storage.read:/store/cms/../atlas', 'storage.read:/store/cms', false],
    ['storage.modify:/store/cms/a', 'storage.read:/store/cms', false],
    ['storage.read:/anything', 'storage.read:/', true],
    ['storage.read:/store/cms/a', 'storage.read:/store/cms/../cms', false],
    // Other scopes are exact.
    ['compute.read', 'compute.read', true],
    ['compute.read', 'compute', false],
    ['ml.inference:x', 'ml.inference', false],
    ['storage.read', 'storage.read:/', false],
  ];
  for (const [act, pattern, expected] of cases) {
    test(`${JSON.stringify(act)} ~ ${JSON.stringify(pattern)} → ${expected}`, () => {
      assert.equal(actionMatch(act, pattern), expected);
    });
  }

  test('is total', () => {
    const odd = [undefined, null, 1, '', 'storage.read:', 'storage.read:/\n', `storage.read:${'/a'.repeat(50_000)}`];
    for (const a of odd) for (const b of odd) assert.equal(typeof actionMatch(a as string, b as string), 'boolean');
    assert.equal(actionMatch('GET', undefined as unknown as string), false);
  });
});

describe('scopeMatch', () => {
  const cases: Array<[scopes: string, required: string, obj: string, expected: boolean]> = [
    // No requirement.
    ['', '', '/x', true],
    ['anything', '', '', true],
    // Exact membership for ordinary scopes.
    ['compute.create', 'compute.create', '/deployments', true],
    ['openid compute.create profile', 'compute.create', '/deployments', true],
    ['compute.read', 'compute.create', '/deployments', false],
    ['', 'compute.create', '/deployments', false],
    ['compute.createx', 'compute.create', '/deployments', false],
    ['ml.inference', 'ml.training', '/v1/models/x/train', false],
    // Bare storage capabilities: a token scope whose path covers the object.
    ['storage.modify:/store/cms', 'storage.modify', '/store/cms/user/f', true],
    ['storage.modify:/store/cms/user', 'storage.modify', '/store/cms/user/f', true],
    ['storage.modify:/store/cms/user', 'storage.modify', '/store/cms/user', true],
    ['storage.modify:/store/cms/user', 'storage.modify', '/store/cms/other', false],
    ['storage.modify:/store/cms/user', 'storage.modify', '/store/cms/userx', false],
    ['storage.modify:/store/cms/user/', 'storage.modify', '/store/cms/user/f', false], // a token scope not in normal form grants nothing
    ['storage.modify://store//cms', 'storage.modify', '/store/cms/f', false],
    ['storage.read:/store/cms', 'storage.modify', '/store/cms/f', false],
    ['storage.modify:/', 'storage.modify', '/store/cms/f', true],
    ['openid storage.read:/store/cms storage.modify:/store/cms/a', 'storage.modify', '/store/cms/a/b', true],
    ['storage.modify', 'storage.modify', '/store/cms/f', false],
    // WLCG profile 1.2 §2.2.1: stage authorizes poll but not read; poll authorizes nothing else.
    ['storage.poll:/tape/cms', 'storage.poll', '/tape/cms/f', true],
    ['storage.stage:/tape/cms', 'storage.poll', '/tape/cms/f', true],
    ['storage.stage:/tape/cms', 'storage.poll', '/tape/atlas/f', false],
    ['storage.stage:/tape/cms', 'storage.read', '/tape/cms/f', false],
    ['storage.poll:/tape/cms', 'storage.stage', '/tape/cms/f', false],
    ['storage.poll:/tape/cms', 'storage.read', '/tape/cms/f', false],
    ['storage.read:/tape/cms', 'storage.poll', '/tape/cms/f', false],
    // ... never through traversal, in the token's path or the object.
    ['storage.modify:/store/cms/user/..', 'storage.modify', '/store/cms/other', false],
    ['storage.modify:/store/cms/user', 'storage.modify', '/store/cms/user/../other', false],
    ['storage.modify:/store/cms', 'storage.modify', '/store/cms/./f', false],
    ['storage.modify:/', 'storage.modify', 'relative/path', false],
    ['storage.modify:/', 'storage.modify', '', false],
    // A required scope with a path: a token scope covering it.
    ['storage.read:/store/cms', 'storage.read:/store/cms/run1', '/x', true],
    ['storage.read:/store/cms/run1', 'storage.read:/store/cms/run1', '/x', true],
    ['storage.read:/store/cms/run1', 'storage.read:/store/cms', '/x', false],
    ['storage.read:/store/cms', 'storage.read:/store/cms/../atlas', '/x', false],
    ['storage.modify:/store/cms', 'storage.read:/store/cms', '/x', false],
    // Splitting is on single spaces only.
    ['a  b', 'b', '/x', true],
    ['a\tb', 'b', '/x', false],
  ];
  for (const [scopes, required, obj, expected] of cases) {
    test(`${JSON.stringify(scopes)} ⊨ ${JSON.stringify(required)} on ${JSON.stringify(obj)} → ${expected}`, () => {
      assert.equal(scopeMatch(scopes, required, obj), expected);
      assert.equal(scopeMatchTokens(scopes.split(' '), required, obj), expected);
    });
  }

  test('is total; a missing requirement (short Casbin line) is no requirement', () => {
    const odd = [undefined, null, 7, '', ' ', 'storage.modify', 'storage.modify:', 'storage.modify:/\u0000', '/'.repeat(50_000)];
    for (const a of odd) for (const b of odd) for (const c of odd) assert.equal(typeof scopeMatch(a as string, b as string, c as string), 'boolean');
    assert.equal(scopeMatch('', undefined as unknown as string, '/x'), true);
    assert.equal(scopeMatch(undefined as unknown as string, 'x', '/x'), false);
  });
});
