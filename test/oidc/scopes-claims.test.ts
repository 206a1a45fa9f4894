import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { aarcEntitlement, wlcgGroups } from '../../src/oidc/claims.ts';
import { normaliseScopePath, scopeCovered } from '../../src/oidc/resource-servers.ts';

describe('WLCG scopes and claims', () => {
  it('covers narrower storage paths, never wider ones or escapes', () => {
    const allowed = ['storage.read:/home/alice', 'compute.read'];
    assert.equal(scopeCovered('storage.read:/home/alice/run42', allowed), true);
    assert.equal(scopeCovered('storage.read:/home/alice', allowed), true);
    assert.equal(scopeCovered('storage.read:/home', allowed), false);
    assert.equal(scopeCovered('storage.read:/home/alice2', allowed), false, 'a sibling with the same prefix is not under it');
    assert.equal(scopeCovered('storage.read:/home/alice/../bob', allowed), false);
    assert.equal(scopeCovered('storage.modify:/home/alice/run42', allowed), false, 'capabilities do not mix');
    assert.equal(scopeCovered('compute.read', allowed), true);
    assert.equal(scopeCovered('compute.cancel', allowed), false);
    assert.equal(normaliseScopePath('//a///b/'), '/a/b');
    assert.equal(normaliseScopePath('/a/./b'), undefined);
  });

  it('selects wlcg.groups as the profile says: requested ones first, members only', () => {
    const groups = ['/cms', '/cms/production', '/atlas'];
    assert.equal(wlcgGroups(groups, ['openid']), undefined);
    assert.deepEqual(wlcgGroups(groups, ['wlcg.groups']), groups);
    assert.deepEqual(wlcgGroups(groups, ['wlcg.groups:/atlas', 'wlcg.groups:/lhcb']), ['/atlas']);
    assert.deepEqual(wlcgGroups(groups, ['wlcg.groups:/atlas', 'wlcg.groups']), ['/atlas', '/cms', '/cms/production']);
  });

  it('writes AARC-G002 entitlements', () => {
    assert.equal(aarcEntitlement('/cms/production', { entitlementNamespace: 'urn:geant:example.org', groupAuthority: 'aai.example.org' }),
      'urn:geant:example.org:group:cms:production#aai.example.org');
  });
});
