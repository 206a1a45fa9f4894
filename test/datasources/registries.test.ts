import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ResourceServerConfig, ServiceConfig } from '../../src/config/schema.ts';
import { ServiceRegistry } from '../../src/gateway/service-registry.ts';
import { ResourceServers } from '../../src/resource-servers/resource-servers.ts';

const rs = (audience: string, profile: ResourceServerConfig['profile'] = 'wlcg'): ResourceServerConfig => ({
  audience, kind: 'storage', scopes: ['storage.read:/'], profile, accessTokenFormat: 'jwt', signingAlg: 'ES256',
});
const service = (name: string, audience: string, hosts: string[] = []): ServiceConfig => ({ name, audience, hosts, authzHeaders: 'nginx', timeoutSeconds: 30, forwardToken: true });

describe('the run-time registries data sources change', () => {
  it('ResourceServers: set, alias and delete, each raising the version', () => {
    const servers = new ResourceServers([rs('https://static.test')]);
    const versions = [servers.version];
    servers.set(rs('https://new.test'));
    versions.push(servers.version);
    servers.alias('https://id.test/api/new', 'https://new.test');
    versions.push(servers.version);
    assert.equal(servers.get('https://id.test/api/new')?.audience, 'https://new.test', 'an alias names the server; the audience stays');
    assert.equal(servers.hasAudience('https://id.test/api/new'), false, 'an alias is not an audience');
    assert.equal(servers.hasAudience('https://wlcg.cern.ch/jwt/v1/any'), true);
    servers.set({ ...rs('https://new.test'), scopes: ['x'] });
    versions.push(servers.version);
    assert.deepEqual(servers.get('https://new.test')?.scopes, ['x']);
    assert.ok(servers.delete('https://new.test'));
    versions.push(servers.version);
    assert.equal(servers.get('https://new.test'), undefined);
    assert.equal(servers.get('https://id.test/api/new'), undefined, 'its aliases go with it');
    assert.equal(servers.delete('https://new.test'), false);
    assert.deepEqual(versions, [...versions].sort((a, b) => a - b));
    assert.equal(new Set(versions).size, versions.length, 'every change raises the version');
    assert.deepEqual(servers.list().map((s) => s.audience), ['https://static.test']);
  });

  it('ServiceRegistry: run-time services next to configured ones, looked up by name and host', () => {
    const registry = new ServiceRegistry({ gateway: { services: [service('data', 'https://static.test', ['shared.test'])] } as never, resourceServers: [rs('https://static.test')] });
    let changes = 0;
    registry.onChange(() => { changes += 1; });
    registry.set(service('tape', 'https://tape.test', ['tape.test', 'shared.test']), rs('https://tape.test', 'groups'));
    assert.equal(registry.byName('tape')?.audience.acceptsWlcgAny, false, 'the audience rule follows the resource server\'s profile');
    assert.equal(registry.byHost('TAPE.test:443')?.name, 'tape');
    assert.equal(registry.byHost('shared.test')?.name, 'data', 'configured services keep their hosts');
    assert.throws(() => registry.set(service('data', 'https://x.test'), rs('https://x.test')), TypeError);
    assert.ok(registry.isConfigured('data') && !registry.isConfigured('tape'));
    registry.set({ ...service('tape', 'https://tape.test'), upstream: 'http://10.0.0.1' }, rs('https://tape.test'));
    assert.equal(registry.byHost('tape.test'), undefined, 'a replaced service has its new hosts only');
    assert.equal(registry.byName('tape')?.audience.acceptsWlcgAny, true);
    assert.ok(registry.delete('tape'));
    assert.equal(registry.byName('tape'), undefined);
    assert.equal(registry.delete('data'), false, 'configured services stay');
    assert.equal(changes, 3);
    assert.deepEqual(registry.all().map((s) => s.name), ['data']);
  });
});
