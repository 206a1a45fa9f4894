/**
 * The shipped policies (policies/policy.csv and policies/scopes.csv) with
 * the group hierarchy fedgate adds, decided by the engine and by Casbin,
 * for the demo realm: alice in /cms and /cms/production, bob in /atlas and
 * /ml-users, admin in /admins, and the client demo-service.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { before, describe, test } from 'node:test';
import type { Enforcer } from 'casbin';
import { casbinDecide, createCasbinEnforcer } from '../support/casbin-reference.ts';
import { PolicyEngine } from '../../src/authz/engine.ts';
import { hierarchyLines, parsePolicyCsv, validateLine } from '../../src/authz/rules.ts';
import { DOMAINS, type PolicyLine } from '../../src/authz/types.ts';

const GROUP_PATHS = ['/admins', '/cms', '/cms/production', '/atlas', '/ml-users'];
const ALICE = ['user:alice', ['/cms', '/cms/production']] as const;
const BOB = ['user:bob', ['/atlas', '/ml-users']] as const;
const ADMIN = ['user:admin', ['/admins']] as const;
const SERVICE = ['client:demo-service', []] as const;

let lines: PolicyLine[];
let engine: PolicyEngine;
let casbin: Enforcer;

before(async () => {
  const files: PolicyLine[] = [];
  for (const name of ['policy.csv', 'scopes.csv']) {
    const { lines: parsed, problems } = parsePolicyCsv(await readFile(new URL(`../../policies/${name}`, import.meta.url), 'utf8'), name);
    assert.deepEqual(problems, [], name);
    files.push(...parsed);
  }
  lines = [...files, ...hierarchyLines(GROUP_PATHS)];
  engine = new PolicyEngine(lines);
  casbin = await createCasbinEnforcer(lines);
});

/** Decides with the engine (cached and explained) and with Casbin; all must say `allowed`. */
async function expectDecision(sub: string, groups: readonly string[], dom: string, obj: string, act: string, scopes: readonly string[], allowed: boolean): Promise<void> {
  const request = { subject: sub, groups, domain: dom, object: obj, action: act, scopes };
  const what = `${sub} [${groups.join(' ')}] ${dom} ${act} ${obj} with [${scopes.join(' ')}]`;
  assert.equal(await casbinDecide(casbin, request), allowed, `casbin: ${what}`);
  assert.equal(engine.allowed(request), allowed, `engine: ${what}`);
  assert.equal(engine.allowed(request), allowed, `engine (cached): ${what}`);
  assert.equal(engine.explain(request).allowed, allowed, `engine explain: ${what}`);
}

type Case = [who: readonly [string, readonly string[]], dom: string, obj: string, act: string, scopes: string[], allowed: boolean, why: string];

function cases(title: string, table: Case[]): void {
  describe(title, () => {
    for (const [[sub, groups], dom, obj, act, scopes, allowed, why] of table) {
      test(`${allowed ? 'allows' : 'denies'} ${sub} ${act} ${obj}${scopes.length ? ` [${scopes.join(' ')}]` : ''}: ${why}`, async () => {
        await expectDecision(sub, groups, dom, obj, act, scopes, allowed);
      });
    }
  });
}

describe('the shipped policy files', () => {
  test('parse and validate against the known domains', () => {
    const domains = new Set<string>(DOMAINS);
    const problems = lines.map((line) => validateLine(line, domains)).filter(Boolean);
    assert.deepEqual(problems, []);
    assert.ok(lines.some((l) => l.ptype === 'g2') && lines.some((l) => l.values[1] === 'scopes'));
  });

  test('the hierarchy makes /cms/production a member of /cms', () => {
    assert.deepEqual(hierarchyLines(GROUP_PATHS), [{ ptype: 'g', values: ['/cms/production', '/cms'] }]);
  });
});

cases('orchestrator: /cms/production may deploy', [
  [ALICE, 'orchestrator', '/deployments', 'POST', ['compute.create'], true, 'deploy with compute.create'],
  [ALICE, 'orchestrator', '/deployments/d1', 'PUT', ['compute.create'], true, 'PUT is deploy too'],
  [ALICE, 'orchestrator', '/deployments', 'POST', ['compute.read'], false, 'deploying needs compute.create'],
  [ALICE, 'orchestrator', '/deployments', 'POST', [], false, 'no scope'],
  [ALICE, 'orchestrator', '/deployments/d1', 'DELETE', ['compute.cancel'], true, 'undeploy one deployment'],
  [ALICE, 'orchestrator', '/deployments/d1/logs', 'DELETE', ['compute.cancel'], false, 'undeploy is for /deployments/* only'],
  [ALICE, 'orchestrator', '/deployments/d1', 'GET', [], true, '/cms reads deployments without a scope'],
  [['user:carol', ['/cms']], 'orchestrator', '/deployments', 'POST', ['compute.create'], false, 'plain /cms members do not deploy'],
  [['user:carol', ['/cms']], 'orchestrator', '/deployments', 'GET', [], true, 'plain /cms members see deployments'],
  [['user:dave', ['/cms/production']], 'orchestrator', '/deployments', 'GET', [], true, 'the hierarchy: /cms/production is in /cms'],
  [BOB, 'orchestrator', '/deployments', 'GET', [], false, 'bob is not in /cms'],
  [BOB, 'orchestrator', '/deployments', 'POST', ['compute.create'], false, 'nor in /cms/production'],
  [SERVICE, 'orchestrator', '/deployments/d1', 'GET', ['compute.read'], true, 'demo-service reads with compute.read'],
  [SERVICE, 'orchestrator', '/deployments/d1', 'GET', [], false, 'demo-service needs compute.read'],
  [SERVICE, 'orchestrator', '/deployments', 'POST', ['compute.read', 'compute.create'], false, 'demo-service does not deploy'],
  [ALICE, 'orchestrator', '/other', 'GET', [], false, 'nothing outside /deployments'],
  [ALICE, 'orchestrator', '/deployments/../admin', 'GET', [], false, 'no traversal'],
]);

cases('ml: /ml-users run inference but not training', [
  [BOB, 'ml', '/v1/models/x/infer', 'POST', ['ml.inference'], true, 'inference with ml.inference'],
  [BOB, 'ml', '/v1/models/x/infer', 'POST', [], false, 'inference needs ml.inference'],
  [BOB, 'ml', '/v1/models/x/train', 'POST', ['ml.training'], false, 'training is denied to /ml-users'],
  [BOB, 'ml', '/v1/models/x/train', 'POST', ['ml.training', 'ml.inference'], false, 'whatever the scopes'],
  [BOB, 'ml', '/v1/models/x', 'GET', [], true, '/ml-users read models'],
  [BOB, 'ml', '/v1/models/x/y/infer', 'POST', ['ml.inference'], false, 'one model segment only'],
  [ALICE, 'ml', '/v1/models/x/train', 'POST', ['ml.training'], true, '/cms/production trains'],
  [ALICE, 'ml', '/v1/models/x/train', 'POST', [], false, 'with ml.training'],
  [['user:eve', ['/ml-users', '/cms/production']], 'ml', '/v1/models/x/train', 'POST', ['ml.training'], false, 'the /ml-users deny beats the /cms/production allow'],
  [ALICE, 'ml', '/v1/models/x/infer', 'POST', ['ml.inference'], false, 'alice is not in /ml-users'],
]);

cases('data: /cms reads /store/cms, /cms/production also writes, with covering scopes', [
  [['user:carol', ['/cms']], 'data', '/store/cms/run1/f', 'GET', ['storage.read:/store/cms'], true, 'read with storage.read covering the path'],
  [['user:carol', ['/cms']], 'data', '/store/cms/run1/f', 'HEAD', ['storage.read:/store/cms/run1'], true, 'a narrower scope that still covers it'],
  [['user:carol', ['/cms']], 'data', '/store/cms/run2/f', 'GET', ['storage.read:/store/cms/run1'], false, 'a scope for another directory'],
  [['user:carol', ['/cms']], 'data', '/store/cms/f', 'GET', [], false, 'reading needs storage.read'],
  [['user:carol', ['/cms']], 'data', '/store/cms/f', 'PUT', ['storage.modify:/store/cms'], false, 'plain /cms members do not write'],
  [ALICE, 'data', '/store/cms/user/f', 'PUT', ['storage.modify:/store/cms/user'], true, 'write with storage.modify covering the path'],
  [ALICE, 'data', '/store/cms/other', 'PUT', ['storage.modify:/store/cms/user'], false, 'storage.modify:/store/cms/user does not cover /store/cms/other'],
  [ALICE, 'data', '/store/cms/user/f', 'PUT', ['storage.read:/store/cms'], false, 'storage.read does not write'],
  [ALICE, 'data', '/store/cms/user/f', 'DELETE', ['storage.modify:/'], true, 'storage.modify:/ covers everything'],
  [ALICE, 'data', '/store/cms/user/../../atlas/f', 'PUT', ['storage.modify:/'], false, 'no traversal out of /store/cms'],
  [ALICE, 'data', '/store/atlas/f', 'GET', ['storage.read:/store'], false, 'alice is not in /atlas'],
  [BOB, 'data', '/store/atlas/run/f', 'GET', ['storage.read:/store/atlas'], true, '/atlas reads its area'],
  [BOB, 'data', '/store/atlas/secret/f', 'GET', ['storage.read:/store/atlas'], false, 'bob is denied /store/atlas/secret/**'],
  [BOB, 'data', '/store/atlas/secret', 'GET', ['storage.read:/store/atlas'], false, 'including its root'],
  [['user:frank', ['/atlas']], 'data', '/store/atlas/secret/f', 'GET', ['storage.read:/store/atlas'], true, 'other /atlas members are not'],
  [BOB, 'data', '/store/cms/f', 'GET', ['storage.read:/store/cms'], false, 'bob is not in /cms'],
  [ADMIN, 'data', '/store/cms/f', 'GET', ['storage.read:/'], false, 'admins have no data rules'],
]);

cases('sync: everyone in /cms and /atlas uses their own group folder', [
  [ALICE, 'sync', '/groups/cms/doc.txt', 'PUT', [], true, '/cms writes its folder'],
  [ALICE, 'sync', '/groups/cms', 'GET', [], true, 'and reads it'],
  [ALICE, 'sync', '/groups/atlas/doc.txt', 'GET', [], false, 'not the /atlas folder'],
  [BOB, 'sync', '/groups/atlas/doc.txt', 'DELETE', [], true, '/atlas uses its folder'],
  [BOB, 'sync', '/groups/cms/doc.txt', 'GET', [], false, 'bob is not in /cms'],
  [ADMIN, 'sync', '/groups/cms/doc.txt', 'GET', [], false, 'admins are in neither'],
]);

cases('scopes: which scopes a token may carry', [
  [ALICE, 'scopes', 'https://storage.demo', 'storage.read:/store/cms/run1', [], true, 'a narrower path of storage.read:/store/cms'],
  [ALICE, 'scopes', 'https://storage.demo', 'storage.read:/store/cms', [], true, 'the allowed path itself'],
  [ALICE, 'scopes', 'https://storage.demo', 'storage.read:/store', [], false, 'not a wider path'],
  [ALICE, 'scopes', 'https://storage.demo', 'storage.read:/store/cms/../atlas', [], false, 'not through traversal'],
  [ALICE, 'scopes', 'https://storage.demo', 'storage.modify:/store/cms/user', [], true, '/cms/production may modify'],
  [['user:carol', ['/cms']], 'scopes', 'https://storage.demo', 'storage.modify:/store/cms/user', [], false, 'plain /cms members may not'],
  [ALICE, 'scopes', 'https://any.demo', 'compute.create', [], true, 'compute scopes for any audience'],
  [ALICE, 'scopes', 'https://ml.demo', 'ml.training', [], true, 'ml.training for the ML service'],
  [ALICE, 'scopes', 'https://storage.demo', 'ml.training', [], false, 'but only for it'],
  [BOB, 'scopes', 'https://ml.demo', 'ml.inference', [], true, '/ml-users get ml.inference'],
  [BOB, 'scopes', 'https://ml.demo', 'ml.training', [], false, 'not ml.training'],
  [BOB, 'scopes', 'https://storage.demo', 'storage.read:/store/atlas/run1', [], true, '/atlas reads its area'],
  [BOB, 'scopes', 'https://storage.demo', 'storage.read:/store/atlas/secret', [], false, 'bob is denied the secret area'],
  [BOB, 'scopes', 'https://storage.demo', 'storage.read:/store/atlas/secret/x', [], false, 'and anything under it'],
  // In the model a deny removes its own scope and narrower ones only; issuance
  // also withholds wider scopes that would carry the denied path along
  // (PolicyService.allowedScopes, test/e2e/scope-policy.test.ts).
  [BOB, 'scopes', 'https://storage.demo', 'storage.read:/store/atlas', [], true, 'the model alone allows the wider scope'],
  [BOB, 'scopes', 'https://sync.demo', 'sync.read', [], true, '/atlas reads sync'],
  [BOB, 'scopes', 'https://sync.demo', 'sync.write', [], false, 'but does not write it'],
  [ALICE, 'scopes', 'https://sync.demo', 'sync.write', [], true, '/cms writes sync'],
  [ADMIN, 'scopes', 'https://storage.demo', 'storage.read:/store', [], false, 'admins get no storage scopes'],
  [SERVICE, 'scopes', 'https://storage.demo', 'compute.read', [], false, 'clients are bound by their own scope list instead'],
]);

describe('explanations on the shipped policy', () => {
  test('a write with a scope that does not cover the path names the missing scope', () => {
    const decision = engine.explain({ subject: 'user:alice', groups: ['/cms', '/cms/production'], domain: 'data', object: '/store/cms/other', action: 'PUT', scopes: ['storage.modify:/store/cms/user'] });
    assert.deepEqual(decision, {
      allowed: false,
      explanation: { outcome: 'no_match', missingScopes: ['storage.modify'], principals: ['user:alice', '/cms', '/cms/production'] },
    });
  });

  test('training names the /ml-users deny', () => {
    const decision = engine.explain({ subject: 'user:bob', groups: ['/atlas', '/ml-users'], domain: 'ml', object: '/v1/models/x/train', action: 'POST', scopes: ['ml.training'] });
    assert.deepEqual(decision.explanation?.rule, { ptype: 'p', values: ['/ml-users', 'ml', '/v1/models/*/train', 'training', 'deny', ''] });
    assert.equal(decision.explanation?.outcome, 'deny');
  });
});
