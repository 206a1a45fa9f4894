import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { aarcEntitlement, profileTokenClaims, vopersonId, wlcgGroups } from '../../src/oidc/claims.ts';
import { loadConfig } from '../../src/config/index.ts';
import type { Account } from '../../src/accounts/accounts.ts';
import { ResourceServers } from '../../src/resource-servers/resource-servers.ts';
import { scopeCovered, scopeRelativeToBase, scopeUnderBase } from '../../src/scopes/wlcg.ts';

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
  });

  it('writes storage paths relative to a storage base path in tokens, and reads them back (WLCG profile §2.2.3)', () => {
    assert.equal(scopeRelativeToBase('storage.read:/store/cms', '/store'), 'storage.read:/cms');
    assert.equal(scopeRelativeToBase('storage.stage:/store', '/store'), 'storage.stage:/');
    assert.equal(scopeRelativeToBase('storage.read:/storex/cms', '/store'), 'storage.read:/storex/cms', 'a sibling is not under the base');
    assert.equal(scopeRelativeToBase('compute.read', '/store'), 'compute.read');
    assert.equal(scopeRelativeToBase('storage.read:/store/cms', '/'), 'storage.read:/store/cms');
    assert.equal(scopeUnderBase('storage.read:/cms', '/store'), 'storage.read:/store/cms');
    assert.equal(scopeUnderBase('storage.read:/', '/store'), 'storage.read:/store');
    const servers = new ResourceServers([
      { audience: 'https://xrootd.test', kind: 'storage', scopes: ['storage.read:/store'], profile: 'wlcg', accessTokenFormat: 'jwt', signingAlg: 'ES256', storageBasePath: '/store' },
      { audience: 'https://plain.test', kind: 'storage', scopes: ['storage.read:/'], profile: 'wlcg', accessTokenFormat: 'jwt', signingAlg: 'ES256' },
    ]);
    assert.deepEqual(servers.policyScopes('https://xrootd.test', ['storage.read:/cms', 'openid']), ['storage.read:/store/cms', 'openid']);
    assert.deepEqual(servers.policyScopes(['https://xrootd.test'], ['storage.read:/cms']), ['storage.read:/store/cms']);
    assert.deepEqual(servers.policyScopes('https://plain.test', ['storage.read:/cms']), ['storage.read:/cms']);
    assert.deepEqual(servers.policyScopes(['https://xrootd.test', 'https://plain.test'], ['storage.read:/cms']), ['storage.read:/cms'], 'several audiences: no single base');
  });

  it('selects wlcg.groups as the profile says: requested ones first, members only', () => {
    const groups = ['/cms', '/cms/production', '/atlas'];
    assert.equal(wlcgGroups(groups, ['openid']), undefined);
    assert.deepEqual(wlcgGroups(groups, ['wlcg.groups']), groups);
    assert.deepEqual(wlcgGroups(groups, ['wlcg.groups:/atlas', 'wlcg.groups:/lhcb']), ['/atlas']);
    assert.deepEqual(wlcgGroups(groups, ['wlcg.groups:/atlas', 'wlcg.groups']), ['/atlas', '/cms', '/cms/production']);
  });

  it('writes AARC-G069 entitlements and the AARC-G026 voperson_id', () => {
    const aarc = { entitlementNamespace: 'urn:geant:example.org', groupAuthority: 'aai.example.org' };
    assert.equal(aarcEntitlement('/cms/production', aarc), 'urn:geant:example.org:group:cms:production#aai.example.org');
    // RFC 8141 NSS characters stay, others (and `:`/`#`/`/`/`?`, which carry meaning) are percent-encoded.
    assert.equal(aarcEntitlement('/vo.example-1/a b:c#d?e@f~g', aarc), 'urn:geant:example.org:group:vo.example-1:a%20b%3Ac%23d%3Fe@f~g#aai.example.org');
    assert.equal(aarcEntitlement('/ü', aarc), 'urn:geant:example.org:group:%C3%BC#aai.example.org');
    assert.equal(vopersonId({ id: '0b7c3a5e-1d2f-4c39-9a55-3c1f8a6f4e21' }, aarc), '0b7c3a5e-1d2f-4c39-9a55-3c1f8a6f4e21@aai.example.org');
  });

  it('puts AARC-G080 claims in AARC access tokens and assurance in WLCG ones (WLCG profile §2.3)', async () => {
    const config = await loadConfig({});
    const account: Account = { id: 'acc-1', username: 'erin', groups: ['/cms/production'], disabled: false, identities: [], createdAt: 0, updatedAt: 0,
      assurance: ['https://refeds.org/assurance/IAP/medium'] };
    assert.deepEqual(profileTokenClaims('aarc', account, [], config), {
      eduperson_entitlement: ['urn:geant:fedgate.demo:group:cms#fedgate.demo', 'urn:geant:fedgate.demo:group:cms:production#fedgate.demo'],
      voperson_id: 'acc-1@fedgate.demo',
      eduperson_assurance: ['https://refeds.org/assurance/IAP/medium'],
    });
    assert.deepEqual(profileTokenClaims('wlcg', account, [], config), { 'wlcg.ver': '1.0', eduperson_assurance: ['https://refeds.org/assurance/IAP/medium'] });
    assert.deepEqual(profileTokenClaims('wlcg', { ...account, assurance: undefined }, [], config), { 'wlcg.ver': '1.0' });
    assert.deepEqual(profileTokenClaims('aarc', undefined, [], config), {}, 'a client\'s own token speaks for no person');
  });
});
