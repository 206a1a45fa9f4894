import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { actionMatch, scopeMatch } from '../../src/authz/functions.ts';
import { validateLine } from '../../src/authz/rules.ts';
import { parseStorageScope, scopeCovered, storagePathProblem, storageScopeProblem } from '../../src/scopes/wlcg.ts';

/** Storage paths that are not in normal form: encoded or plain dot segments, empty segments, controls. */
const NOT_NORMAL = [
  '/store/cms/%2e%2e/atlas', '/store/cms/.%2e/atlas', '/store/cms/%2E%2E/atlas', '/store/cms/..%2f..%2fatlas', '/store/cms/%2fatlas',
  '/store/cms%00', '/store/cms/\u0000', '/store/cms/\n', '/store/cms/%41', '/store/cms/../atlas', '/store/cms/./x', '/store/./cms',
  '/store//cms', '/store/cms/', '//store', 'store/cms', '', '/store/caf\u00e9', '/store/a\\b', '/store/a"b', '/store/a b', '/store/\u007f',
  `/${'a'.repeat(1100)}`,
];

describe('WLCG storage paths: one normal form', () => {
  it('accepts paths already in normal form', () => {
    for (const path of ['/', '/store', '/store/cms/run42', '/store/cms/file.root', '/a-b_c~d/e:f@g', '/store/...', '/store/.hidden', '/store/a..b']) {
      assert.equal(storagePathProblem(path), undefined, path);
    }
  });

  it('refuses every path that is not, with a reason', () => {
    for (const path of NOT_NORMAL) {
      assert.equal(typeof storagePathProblem(path), 'string', JSON.stringify(path));
      assert.equal(parseStorageScope(`storage.read:${path}`), undefined, JSON.stringify(path));
      assert.equal(typeof storageScopeProblem(`storage.read:${path}`), 'string', JSON.stringify(path));
    }
    assert.match(storagePathProblem('/store/cms/%2e%2e/atlas')!, /percent-encoding/);
    assert.match(storagePathProblem('/store//cms')!, /empty segment/);
    assert.equal(storageScopeProblem('compute.read'), undefined, 'not a storage scope: nothing to say');
  });

  it('never lets such a path be covered, cover, or match a policy', () => {
    for (const path of NOT_NORMAL) {
      const scope = `storage.read:${path}`;
      assert.equal(scopeCovered(scope, ['storage.read:/', 'storage.read:/store/cms', scope]), false, `${JSON.stringify(path)} covered`);
      assert.equal(scopeCovered('storage.read:/store/cms/x', [scope]), false, `${JSON.stringify(path)} covers`);
      // The gateway's decision: a token holding it reads nothing under it.
      assert.equal(scopeMatch(scope, 'storage.read', '/store/cms/%2e%2e/atlas/file'), false, JSON.stringify(path));
      assert.equal(actionMatch(scope, 'storage.read:/store/cms'), false, JSON.stringify(path));
    }
    assert.equal(scopeMatch('storage.read:/store/cms', 'storage.read', '/store/cms/file'), true);
  });

  it('keeps such paths out of policy rules', () => {
    const domains = new Set(['scopes', 'data', 'exchange']);
    assert.match(validateLine({ ptype: 'p', values: ['/atlas', 'scopes', '*', 'storage.read:/store/%2e%2e', 'allow', ''] }, domains)!, /normal form/);
    assert.match(validateLine({ ptype: 'p', values: ['/atlas', 'data', '/store/**', 'read', 'allow', 'storage.read:/store//x'] }, domains)!, /normal form/);
    assert.match(validateLine({ ptype: 'p', values: ['client:x', 'exchange', '*', 'storage.read:/a/./b', 'allow', ''] }, domains)!, /normal form/);
    assert.equal(validateLine({ ptype: 'p', values: ['/atlas', 'scopes', '*', 'storage.read:/store/atlas', 'allow', ''] }, domains), undefined);
  });
});
