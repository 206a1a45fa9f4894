import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as oidc from 'openid-client';
import { adminToken as obtainAdminToken, decodeJwt, rawRequest, rp, startServer, startUpstream, type TestServer } from '../support/harness.ts';

const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;

interface Problem { field: string; message: string }

/**
 * The admin API for data sources on one fedgate with Redis: validation with
 * the field at fault and nothing half-created, configured entries read-only,
 * updates (rename, scopes, introspection) that keep the record, and the
 * audit trail.
 */
describe('admin API: /admin/api/resource-servers', () => {
  let server: TestServer;
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  let adminToken: string;
  let service: oidc.Configuration;

  before(async () => {
    upstream = await startUpstream();
    server = await startServer({ redis: true });
    adminToken = await obtainAdminToken(server.issuer);
    service = await rp(server.issuer, 'demo-service', 'demo-service-secret');
  });
  after(async () => {
    await server.cleanup();
    await upstream.close();
  });

  const admin = async (path: string, method = 'GET', body?: unknown, token = adminToken) => {
    const res = await fetch(`${server.issuer}/admin/api${path}`, {
      method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) as any : undefined };
  };
  const clientToken = (resource: string, scope: string) => fetch(`${server.issuer}/token`, {
    method: 'POST',
    headers: { authorization: basic('demo-service', 'demo-service-secret'), 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'client_credentials', resource, scope }),
  });
  const storeKeys = async () => ({
    ids: await server.store.setMembers('datasource:ids'),
    policy: (await server.fedgate.policy.list()).length,
  });

  it('lists the configured resource servers and services, read-only, with the same policy domains', async () => {
    const res = await admin('/resource-servers');
    assert.equal(res.status, 200);
    const byName = new Map((res.body.resource_servers as Array<Record<string, any>>).map((r) => [r.name, r]));
    for (const [name, audience] of [['orchestrator', 'https://orchestrator.demo'], ['data', 'https://storage.demo'], ['ml', 'https://ml.demo'], ['sync', 'https://sync.demo']]) {
      const entry = byName.get(name);
      assert.ok(entry, name);
      assert.equal(entry.audience, audience);
      assert.equal(entry.source, 'config');
      assert.equal(entry.readOnly, true);
      assert.equal(entry.effective.domain, name);
    }
    for (const [method, body] of [['PUT', { audience: 'https://storage.demo', kind: 'storage', scopes: ['storage.read:/'] }], ['PATCH', { displayName: 'x' }], ['DELETE', undefined]] as const) {
      const refused = await admin('/resource-servers/data', method, body);
      assert.equal(refused.status, 409, method);
      assert.equal(refused.body.error, 'read_only');
    }
    assert.equal((await admin('/resource-servers/nope')).status, 404);
  });

  it('refuses bad input with 400 naming the field and the reason, and creates nothing', async () => {
    const before = await storeKeys();
    const valid = { name: 'bad-input', audience: 'https://bad-input.test', kind: 'storage', storage: { basePath: '/data' } };
    const cases: Array<[string, Record<string, unknown>, string, RegExp]> = [
      ['duplicate audience', { ...valid, audience: 'https://storage.demo' }, 'audience', /already the audience/],
      ['duplicate name', { ...valid, name: 'data' }, 'name', /already exists/],
      ['relative audience', { ...valid, audience: 'storage.partner' }, 'audience', /absolute URI/],
      ['audience with a fragment', { ...valid, audience: 'https://x.test/#f' }, 'audience', /absolute URI/],
      ['relative base path', { ...valid, storage: { basePath: 'data' } }, 'storage.basePath', /absolute path/],
      ['base path escaping', { ...valid, storage: { basePath: '/data/../etc' } }, 'storage.basePath', /absolute path/],
      ['ftp upstream', { ...valid, upstream: 'ftp://files.partner.test/' }, 'upstream', /http/],
      ['upstream with credentials', { ...valid, upstream: 'https://u:p@files.partner.test/' }, 'upstream', /credentials/],
      ['unknown profile', { ...valid, profile: 'saml' }, 'profile', /wlcg/],
      ['upper-case name', { ...valid, name: 'Partner' }, 'name', /lower-case/],
      ['storage kind without base path', { name: 'bad-input', audience: 'https://bad-input.test', kind: 'storage' }, 'storage.basePath', /basePath/],
      ['relative storage scope', { ...valid, scopes: ['storage.read:data'] }, 'scopes.0', /absolute/],
      ['unknown group', { ...valid, defaultPolicies: [{ group: '/nobody', path: '/data/**', action: 'read' }] }, 'defaultPolicies.0.group', /does not exist/],
      ['unknown operation', { ...valid, defaultPolicies: [{ group: '/cms', path: '/data/**', action: 'deploy' }] }, 'defaultPolicies.0.action', /operation/],
      ['bad path pattern', { ...valid, defaultPolicies: [{ group: '/cms', path: 'data/**', action: 'read' }] }, 'defaultPolicies.0', /object pattern/],
      ['grant of a foreign scope', { ...valid, scopeGrants: [{ group: '/cms', scope: 'compute.create' }] }, 'scopeGrants.0.scope', /not a scope this data source accepts/],
      ['reserved domain', { ...valid, domain: 'scopes' }, 'domain', /fedgate's own/],
      ['unknown field', { ...valid, colour: 'blue' }, '(body)', /unknown field/],
      ['host of another service', { ...valid, hosts: ['data.example'] }, 'hosts.0', /already a host/],
      ['the admin API\'s audience', { ...valid, audience: `${server.issuer}/admin/api` }, 'audience', /admin API/],
      ['the admin API\'s scope', { ...valid, scopes: ['notes.read', 'fedgate.admin'] }, 'scopes.1', /admin API only/],
    ];
    // A host to collide with.
    assert.equal((await admin('/resource-servers', 'POST', { name: 'host-owner', audience: 'https://host-owner.test', hosts: ['data.example'] })).status, 201);
    const withOwner = await storeKeys();
    for (const [label, body, field, reason] of cases) {
      const res = await admin('/resource-servers', 'POST', body);
      assert.equal(res.status, 400, `${label}: ${JSON.stringify(res.body)}`);
      assert.equal(res.body.error, 'invalid_request', label);
      const problem = (res.body.problems as Problem[]).find((p) => p.field === field);
      assert.ok(problem, `${label}: ${JSON.stringify(res.body.problems)}`);
      assert.match(problem.message, reason, label);
      assert.match(res.body.error_description, new RegExp(field.replace(/[.()]/g, '\\$&')), label);
    }
    assert.deepEqual(await storeKeys(), withOwner, 'nothing half-created: no record, no policy line');
    assert.equal((await admin('/resource-servers/host-owner', 'DELETE')).status, 204);
    assert.deepEqual(await storeKeys(), before);
    const notJson = await fetch(`${server.issuer}/admin/api/resource-servers`, { method: 'POST', headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'text/plain' }, body: 'name=x' });
    assert.equal(notJson.status, 415);
    // Refusals are audited too.
    const audit = await admin('/audit?limit=100');
    assert.ok((audit.body.events as Array<{ type: string; outcome: string; target?: string }>).some((e) => e.type === 'admin.change' && e.outcome === 'failure' && e.target === 'resource-server:bad-input'));
  });

  it('renames and changes scopes as an update: same record, policy lines moved, route and tokens follow', async () => {
    const created = await admin('/resource-servers', 'POST', {
      name: 'hpc-old', audience: 'https://hpc.partner.test', kind: 'compute', upstream: `${upstream.url}/hpc`,
      defaultPolicies: [{ group: '/cms/production', path: '/jobs/**', action: 'deploy', scope: 'compute.create' }],
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.deepEqual(created.body.resource_server.effective.scopes, ['compute.read', 'compute.modify', 'compute.create', 'compute.cancel'], 'compute defaults to the WLCG compute scopes');
    const createdAt = created.body.resource_server.createdAt as string;
    const oldRules = await admin('/policies?domain=hpc-old');
    assert.deepEqual(oldRules.body.rules.filter((r: { type: string }) => r.type === 'p').map((r: { object: string }) => r.object), ['/jobs/**']);
    assert.equal(oldRules.body.rules.filter((r: { type: string }) => r.type === 'g2').length, 5, 'the compute operations: read (GET, HEAD), deploy (POST, PUT), undeploy (DELETE)');

    const renamed = await admin('/resource-servers/hpc-old', 'PATCH', { name: 'hpc', scopes: ['compute.read', 'compute.create', 'hpc.submit'] });
    assert.equal(renamed.status, 200, JSON.stringify(renamed.body));
    assert.equal(renamed.body.resource_server.name, 'hpc');
    assert.equal(renamed.body.resource_server.createdAt, createdAt, 'the same record');
    assert.deepEqual((await admin('/policies?domain=hpc-old')).body.rules, [], 'no line left in the old domain');
    const moved = (await admin('/policies?domain=hpc')).body.rules as Array<{ type: string; subject: string; object: string }>;
    assert.ok(moved.some((r) => r.type === 'p' && r.subject === '/cms/production' && r.object === '/jobs/**'));
    assert.equal((await admin('/resource-servers/hpc-old')).status, 404);

    const token = await clientToken('https://hpc.partner.test', 'compute.read hpc.submit compute.cancel');
    assert.equal(token.status, 200);
    const access = (await token.json() as { access_token: string }).access_token;
    assert.equal(decodeJwt(access).payload.scope, 'compute.read hpc.submit', 'compute.cancel is no longer accepted');
    assert.equal((await rawRequest(server.issuer, '/api/hpc-old/jobs', { headers: { authorization: `Bearer ${access}` } })).status, 404);
    const routed = await rawRequest(server.issuer, '/api/hpc/jobs', { headers: { authorization: `Bearer ${access}` } });
    assert.equal(routed.status, 403, 'the route is there; the client has no rule');

    // GET, edit, PUT back: the read-only parts of the answer are ignored.
    const current = (await admin('/resource-servers/hpc')).body;
    delete current.onboarding;
    const put = await admin('/resource-servers/hpc', 'PUT', { ...current, displayName: 'Partner HPC' });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    assert.equal(put.body.resource_server.displayName, 'Partner HPC');
    assert.deepEqual(put.body.added, []);
    assert.deepEqual(put.body.removed, []);
    // A merge patch (sent as what it is, RFC 7396 §4) removes a field with null.
    const patchResponse = await fetch(`${server.issuer}/admin/api/resource-servers/hpc`, {
      method: 'PATCH', headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/merge-patch+json' }, body: JSON.stringify({ upstream: null }),
    });
    assert.equal(patchResponse.status, 200);
    const patched = { body: await patchResponse.json() as any };
    assert.equal(patched.body.resource_server.upstream, undefined);
    const patchAsText = await fetch(`${server.issuer}/admin/api/resource-servers/hpc`, {
      method: 'PATCH', headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'text/plain' }, body: '{"displayName":"x"}',
    });
    assert.equal(patchAsText.status, 415);
    assert.equal((await rawRequest(server.issuer, '/api/hpc/jobs', { headers: { authorization: `Bearer ${access}` } })).status, 404, 'no upstream, no route');
    assert.equal((await admin('/resource-servers/hpc', 'DELETE')).status, 204);
    assert.equal((await admin('/resource-servers/hpc', 'DELETE')).status, 404);
  });

  it('gives an introspecting data source opaque tokens, its own client (secret once), and rotates the secret', async () => {
    const created = await admin('/resource-servers', 'POST', {
      name: 'sync-partner', audience: 'https://sync.partner.test', kind: 'sync', scopes: ['sync.read', 'sync.write'], profile: 'aarc', introspection: true,
    });
    assert.equal(created.status, 201);
    const bundle = created.body.onboarding;
    assert.equal(bundle.issuer, server.issuer);
    assert.equal(bundle.jwks_uri, `${server.issuer}/jwks`);
    assert.equal(bundle.token_endpoint, `${server.issuer}/token`);
    assert.equal(bundle.introspection_endpoint, `${server.issuer}/token/introspection`);
    assert.equal(bundle.audience, 'https://sync.partner.test');
    assert.deepEqual(bundle.scopes, ['sync.read', 'sync.write']);
    assert.equal(bundle.access_token_format, 'opaque');
    assert.equal(bundle.gateway_url, null);
    assert.deepEqual(bundle.protected_resource_metadata, [`${server.issuer}/.well-known/oauth-protected-resource?resource=${encodeURIComponent('https://sync.partner.test')}`]);
    assert.match(bundle.snippets.nginx, /auth_request \/_fedgate_authz;/);
    assert.match(bundle.snippets.nginx, new RegExp(`proxy_pass ${server.issuer}/authz\\?service=sync-partner;`));
    assert.match(bundle.snippets.envoy, /envoy\.filters\.http\.ext_authz/);
    assert.match(bundle.snippets.envoy, /path_prefix: \/authz/);
    assert.match(bundle.snippets.traefik, new RegExp(`address: "${server.issuer}/authz\\?service=sync-partner"`));
    const { client_id: clientId, client_secret: secret } = bundle.introspection as { client_id: string; client_secret: string };
    assert.ok(clientId && secret && secret.length >= 43);
    const again = await admin('/resource-servers/sync-partner');
    assert.equal(again.body.onboarding.introspection.client_id, clientId);
    assert.equal(again.body.onboarding.introspection.client_secret, undefined, 'the secret is shown once');
    assert.ok(!server.logs.text.includes(secret), 'never logged');
    assert.ok(!JSON.stringify((await admin('/audit?limit=50')).body).includes(secret), 'never audited');

    const issued = await clientToken('https://sync.partner.test', 'sync.read');
    const opaque = (await issued.json() as { access_token: string }).access_token;
    assert.equal(opaque.split('.').length, 1, 'an opaque token');
    const introspect = (id: string, pass: string) => fetch(`${server.issuer}/token/introspection`, {
      method: 'POST', headers: { authorization: basic(id, pass), 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ token: opaque }),
    });
    const active = await (await introspect(clientId, secret)).json() as { active: boolean; aud: string; scope: string };
    assert.equal(active.active, true);
    assert.equal(active.aud, 'https://sync.partner.test');
    assert.equal(active.scope, 'sync.read');
    // The client can introspect, and nothing else: no grant at the token endpoint.
    const grant = await fetch(`${server.issuer}/token`, {
      method: 'POST', headers: { authorization: basic(clientId, secret), 'content-type': 'application/x-www-form-urlencoded' }, body: 'grant_type=client_credentials',
    });
    assert.equal(grant.status, 400);
    const refusal = await grant.json() as { error: string; error_description: string };
    assert.equal(refusal.error, 'invalid_request', refusal.error_description);

    const rotated = await admin('/resource-servers/sync-partner/introspection-secret', 'POST');
    assert.equal(rotated.status, 200);
    assert.equal(rotated.body.client_id, clientId);
    assert.equal((await introspect(clientId, secret)).status, 401, 'the old secret stops working');
    assert.equal((await introspect(clientId, rotated.body.client_secret)).status, 200);

    // Introspection switched off: the client goes.
    const off = await admin('/resource-servers/sync-partner', 'PATCH', { introspection: false, accessTokenFormat: 'jwt' });
    assert.equal(off.status, 200);
    assert.equal(off.body.resource_server.introspectionClientId, undefined);
    assert.equal((await introspect(clientId, rotated.body.client_secret)).status, 401);
    assert.equal((await admin('/resource-servers/sync-partner/introspection-secret', 'POST')).status, 400);
    assert.equal((await admin('/resource-servers/sync-partner', 'DELETE')).status, 204);
  });

  it('shows a storage token\'s paths at introspection relative to the base path, as its JWT carries them', async () => {
    const created = await admin('/resource-servers', 'POST', {
      name: 'vo-archive', audience: 'https://vo-archive.partner.test', kind: 'storage', storage: { basePath: '/archive' }, introspection: true,
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const { client_id: clientId, client_secret: secret } = created.body.onboarding.introspection as { client_id: string; client_secret: string };
    const introspect = async (token: string) => await (await fetch(`${server.issuer}/token/introspection`, {
      method: 'POST', headers: { authorization: basic(clientId, secret), 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ token }),
    })).json() as { active: boolean; aud: string; scope: string };
    const issue = async () => {
      const res = await clientToken('https://vo-archive.partner.test', 'storage.read:/archive/cms storage.create:/archive/cms/out');
      assert.equal(res.status, 200);
      return (await res.json() as { access_token: string }).access_token;
    };
    const opaque = await issue();
    assert.equal(opaque.split('.').length, 1, 'an opaque token');
    const seen = await introspect(opaque);
    assert.equal(seen.active, true);
    assert.equal(seen.aud, 'https://vo-archive.partner.test');
    assert.equal(seen.scope, 'storage.read:/cms storage.create:/cms/out');
    // The same data source issuing JWTs: they carry exactly those paths.
    assert.equal((await admin('/resource-servers/vo-archive', 'PATCH', { accessTokenFormat: 'jwt' })).status, 200);
    assert.equal(decodeJwt(await issue()).payload.scope, seen.scope);
    assert.equal((await admin('/resource-servers/vo-archive', 'DELETE')).status, 204);
  });

  it('answers the very same client credentials request by the data source as it is now, after each change', async () => {
    const created = await admin('/resource-servers', 'POST', { name: 'memo-probe', audience: 'https://memo-probe.partner.test', kind: 'compute', upstream: `${upstream.url}/memo`, scopes: ['compute.read', 'compute.create'] });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const scopeOf = async () => {
      const res = await clientToken('https://memo-probe.partner.test', 'compute.read compute.create');
      assert.equal(res.status, 200);
      return decodeJwt((await res.json() as { access_token: string }).access_token).payload.scope;
    };
    assert.equal(await scopeOf(), 'compute.read compute.create');
    assert.equal(await scopeOf(), 'compute.read compute.create', 'asked again');
    assert.equal((await admin('/resource-servers/memo-probe', 'PATCH', { scopes: ['compute.read'] })).status, 200);
    assert.equal(await scopeOf(), 'compute.read', 'compute.create is no longer accepted');
    assert.equal((await admin('/resource-servers/memo-probe', 'PATCH', { scopes: ['compute.read', 'compute.create'] })).status, 200);
    assert.equal(await scopeOf(), 'compute.read compute.create', 'and is again');
    assert.equal((await admin('/resource-servers/memo-probe', 'DELETE')).status, 204);
  });

  it('answers a client credentials request for an unknown or removed audience with invalid_target', async () => {
    await assert.rejects(oidc.clientCredentialsGrant(service, { resource: 'https://never.partner.test', scope: 'x' }), (err: { error?: string }) => err.error === 'invalid_target');
  });

  it('is for administrators only', async () => {
    const bob = await obtainAdminToken(server.issuer, { username: 'bob', password: 'bob-password' });
    assert.equal((await admin('/resource-servers', 'GET', undefined, bob)).status, 403);
    assert.equal((await admin('/resource-servers', 'POST', { name: 'x', audience: 'https://x.test' }, bob)).status, 403);
    assert.equal((await fetch(`${server.issuer}/admin/api/resource-servers`)).status, 401);
  });
});
