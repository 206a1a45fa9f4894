import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as oidc from 'openid-client';
import { adminApi, adminToken as obtainAdminToken, rp, startServer, type TestServer } from '../support/harness.ts';

type Json = Record<string, unknown>;

describe('admin API: groups and policies', () => {
  let server: TestServer;
  let adminToken: string;
  let aliceToken: string;
  let robotToken: string;

  const call = async (path: string, init: { method?: string; body?: unknown; token?: string; type?: string; accept?: string } = {}) => {
    const res = await fetch(`${server.issuer}/admin/api${path}`, {
      method: init.method ?? 'GET',
      headers: {
        authorization: `Bearer ${init.token ?? adminToken}`,
        ...(init.body !== undefined ? { 'content-type': init.type ?? 'application/json' } : {}),
        ...(init.accept ? { accept: init.accept } : {}),
      },
      ...(init.body !== undefined ? { body: typeof init.body === 'string' ? init.body : JSON.stringify(init.body) } : {}),
    });
    const text = await res.text();
    let json: Json = {};
    try {
      json = text ? JSON.parse(text) as Json : {};
    } catch { /* CSV */ }
    return { status: res.status, json, text, headers: res.headers };
  };

  before(async () => {
    server = await startServer({
      redis: true,
      configure: (config) => {
        config.clients.push({
          clientId: 'admin-robot', clientSecret: 'admin-robot-secret-0123', name: 'Automation', applicationType: 'web',
          grantTypes: ['client_credentials'], redirectUris: [], postLogoutRedirectUris: [], scopes: ['fedgate.admin'], consentRequired: false,
        });
      },
    });
    adminToken = await obtainAdminToken(server.issuer);
    aliceToken = await obtainAdminToken(server.issuer, { username: 'alice', password: 'alice-password' });
    const robot = await rp(server.issuer, 'admin-robot', 'admin-robot-secret-0123');
    robotToken = (await oidc.clientCredentialsGrant(robot, { resource: adminApi(server.issuer), scope: 'fedgate.admin' })).access_token;
  });
  after(() => server.cleanup());

  it('admits /admins members and administrative clients, nobody else', async () => {
    assert.equal((await call('/policies', { token: aliceToken })).status, 403);
    assert.equal((await call('/policies', { token: 'nonsense' })).status, 401);
    const robot = await call('/policies', { token: robotToken });
    assert.equal(robot.status, 200);
    // A client without the scope in its configuration cannot get it.
    const service = await rp(server.issuer, 'demo-service', 'demo-service-secret');
    const serviceToken = await oidc.clientCredentialsGrant(service, { resource: adminApi(server.issuer), scope: 'fedgate.admin' });
    assert.equal(serviceToken.scope, undefined);
    assert.equal((await call('/policies', { token: serviceToken.access_token })).status, 403);
  });

  it('manages groups: create, members, rename with its rules, refuse to orphan, delete', async () => {
    assert.equal((await call('/groups', { method: 'POST', body: { path: '/cms/analysis', description: 'Analysis' } })).status, 201);
    assert.equal((await call('/groups', { method: 'POST', body: { path: '/cms/analysis' } })).status, 409);
    const orphan = await call('/groups', { method: 'POST', body: { path: '/lhcb/analysis' } });
    assert.equal(orphan.status, 400);
    assert.match(String(orphan.json.error_description), /parent group \/lhcb does not exist/);
    assert.equal((await call('/groups', { method: 'POST', body: { path: 'no-slash' } })).status, 400);

    const added = await call('/groups/cms%2Fanalysis/members/bob', { method: 'PUT' });
    assert.equal(added.status, 200);
    assert.deepEqual(added.json.effective_groups, ['/atlas', '/cms', '/cms/analysis', '/ml-users']);
    const members = await call('/groups/%2Fcms%2Fanalysis/members');
    assert.deepEqual((members.json.members as Json[]).map((m) => m.username), ['bob']);
    const effective = await call('/groups/cms/members?effective=true');
    assert.deepEqual((effective.json.members as Json[]).map((m) => m.username), ['alice', 'bob']);

    const rule = { type: 'p', subject: '/cms/analysis', domain: 'data', object: '/store/cms/analysis/**', action: 'read', effect: 'allow', scope: '' };
    assert.equal((await call('/policies', { method: 'POST', body: { rules: [rule] } })).status, 201);
    const refused = await call('/groups/cms%2Fanalysis', { method: 'DELETE' });
    assert.equal(refused.status, 409, 'members and rules would be orphaned');

    const renamed = await call('/groups/cms%2Fanalysis', { method: 'PATCH', body: { path: '/cms/physics' } });
    assert.equal(renamed.status, 200, renamed.text);
    const rules = await call('/policies?subject=/cms/physics');
    assert.deepEqual((rules.json.rules as Json[]).map((r) => r.object), ['/store/cms/analysis/**'], 'the rule followed the rename');
    assert.equal(((await call('/policies?subject=/cms/analysis')).json.rules as Json[]).length, 0);
    const bob = await call('/accounts/bob');
    assert.deepEqual(bob.json.groups, ['/atlas', '/cms/physics', '/ml-users']);

    assert.equal((await call('/groups/cms%2Fphysics/members/bob', { method: 'DELETE' })).status, 200);
    assert.equal((await call('/groups/cms%2Fphysics/members/bob', { method: 'DELETE' })).status, 404);
    assert.equal((await call('/groups/cms%2Fphysics', { method: 'DELETE' })).status, 409, 'a rule still names it');
    assert.equal((await call('/policies', { method: 'DELETE', body: { rules: [{ ...rule, subject: '/cms/physics' }] } })).status, 200);
    assert.equal((await call('/groups/cms%2Fphysics', { method: 'DELETE' })).status, 204);
    assert.equal((await call('/groups/cms%2Fphysics')).status, 404);
    assert.equal((await call('/groups/cms', { method: 'DELETE' })).status, 409, '/cms has subgroups and members');

    const events = await server.fedgate.audit.recent(100);
    const renameEvent = events.find((e) => e.type === 'group.renamed');
    assert.ok(renameEvent);
    assert.deepEqual((renameEvent.detail as Json).before, { path: '/cms/analysis' });
    assert.deepEqual((renameEvent.detail as Json).after, { path: '/cms/physics' });
    assert.ok(events.some((e) => e.type === 'group.member.added' && e.target === '/cms/analysis'));
  });

  it('validates every rule and says why, changing nothing', async () => {
    const before = (await call('/policies')).json.rules as Json[];
    const cases: Array<[Json, RegExp]> = [
      [{ type: 'p', subject: '/cms', domain: 'weather', object: '/x', action: 'GET' }, /domain/],
      [{ type: 'p', subject: '/cms', domain: 'data', object: '/store/../atlas', action: 'GET' }, /\.\./],
      [{ type: 'p', subject: '/cms', domain: 'data', object: 'store/cms', action: 'GET' }, /object|pattern/],
      [{ type: 'p', subject: '/nonexistent', domain: 'data', object: '/x', action: 'GET' }, /group \/nonexistent does not exist/],
      [{ type: 'p', subject: 'user:mallory', domain: 'data', object: '/x', action: 'GET' }, /user mallory does not exist/],
      [{ type: 'p', subject: '/cms', domain: 'data', object: '/x', action: 'GET', effect: 'deny', scope: 'storage.read' }, /deny/],
      [{ type: 'p', subject: '/cms', domain: 'scopes', object: 'https://unknown.example', action: 'storage.read:/x' }, /not the audience of a configured resource server/],
    ];
    for (const [rule, reason] of cases) {
      const res = await call('/policies', { method: 'POST', body: { rules: [{ type: 'p', subject: '/cms', domain: 'data', object: '/ok/**', action: 'GET' }, rule] } });
      assert.equal(res.status, 400, JSON.stringify(rule));
      assert.equal(res.json.error, 'invalid_request');
      assert.match(String(res.json.error_description), reason);
    }
    assert.equal((await call('/policies', { method: 'POST', body: { rules: [{ type: 'x' }] } })).status, 400);
    assert.equal((await call('/policies', { method: 'POST', body: '{not json', type: 'application/json' })).status, 400);
    assert.deepEqual((await call('/policies')).json.rules, before, 'nothing half-applied');
  });

  it('exports and imports CSV, and replaces a group\'s rules', async () => {
    const exported = await call('/policies/export');
    assert.equal(exported.status, 200);
    assert.match(exported.headers.get('content-type') ?? '', /text\/csv/);
    assert.match(exported.text, /p, \/cms, data, \/store\/cms\/\*\*, read, allow, storage\.read/);

    const merged = await call('/policies/import', { method: 'POST', type: 'text/csv', body: 'p, /atlas, sync, /groups/shared/**, read, allow,\n' });
    assert.equal(merged.status, 200, merged.text);
    assert.equal((merged.json.added as Json[]).length, 1);
    const badCsv = await call('/policies/import', { method: 'POST', type: 'text/csv', body: 'p, /atlas, sync, /x, read, maybe,\n' });
    assert.equal(badCsv.status, 400);
    // A large invalid import is not echoed back: the answer names a bounded number of problems, each cut short.
    const huge = `${'m'.repeat(400_000)}, /atlas\n${'x, y\n'.repeat(100_000)}`;
    const hugeAnswer = await call('/policies/import', { method: 'POST', type: 'text/csv', body: huge });
    assert.equal(hugeAnswer.status, 400);
    assert.ok(hugeAnswer.text.length < 10_000, `the 400 answer is ${hugeAnswer.text.length} bytes`);
    assert.match(String(hugeAnswer.json.error_description), /and \d+ more/);

    // replace: the exported policy plus nothing else → the merged line goes away.
    const replaced = await call('/policies/import?mode=replace', { method: 'POST', type: 'text/csv', body: exported.text });
    assert.equal(replaced.status, 200, replaced.text);
    assert.deepEqual((replaced.json.removed as Json[]).map((r) => r.object), ['/groups/shared/**']);
    assert.equal((replaced.json.added as Json[]).length, 0);

    const group = await call('/groups/atlas/policies', { method: 'PUT', body: { rules: [
      { type: 'p', domain: 'data', object: '/store/atlas/**', action: 'read', effect: 'allow', scope: 'storage.read' },
      { type: 'p', domain: 'sync', object: '/groups/atlas/**', action: 'read', effect: 'allow' },
    ] } });
    assert.equal(group.status, 200, group.text);
    assert.deepEqual((group.json.rules as Json[]).map((r) => `${r.domain} ${r.object} ${r.action}`).sort(), ['data /store/atlas/** read', 'sync /groups/atlas/** read']);
    const changed = (await server.fedgate.audit.recent(10)).find((e) => e.type === 'policy.changed');
    const detail = changed?.detail as Json;
    assert.equal(detail.action, 'replace_subject');
    assert.ok(Array.isArray(detail.before) && Array.isArray(detail.after), 'the audit event holds before and after');
  });

  it('evaluates "what would happen" with an explanation, without changing anything', async () => {
    const version = (await call('/policies')).json.version;
    const denied = await call('/policies/evaluate', { method: 'POST', body: { username: 'bob', domain: 'data', object: '/store/atlas/secret/x', action: 'GET', scopes: ['storage.read:/store/atlas'] } });
    assert.equal(denied.status, 200);
    assert.equal(denied.json.allowed, false);
    const explanation = denied.json.explanation as { outcome: string; rule: Json };
    assert.equal(explanation.outcome, 'deny');
    assert.deepEqual(explanation.rule, { type: 'p', subject: 'user:bob', domain: 'data', object: '/store/atlas/secret/**', action: '*', effect: 'deny', scope: '' });

    const allowed = await call('/policies/evaluate', { method: 'POST', body: { username: 'alice', domain: 'orchestrator', object: '/deployments', action: 'POST', scopes: ['compute.create'] } });
    assert.equal(allowed.json.allowed, true);
    assert.equal((allowed.json.explanation as Json).outcome, 'allow');
    const none = await call('/policies/evaluate', { method: 'POST', body: { client_id: 'demo-cli', domain: 'ml', object: '/v1/models/x/infer', action: 'POST' } });
    assert.equal((none.json.explanation as Json).outcome, 'no_match');
    assert.equal((await call('/policies/evaluate', { method: 'POST', body: { username: 'alice', domain: 'nowhere', object: '/', action: 'GET' } })).status, 400);
    assert.equal((await call('/policies')).json.version, version, 'evaluating changes nothing');
  });
});
