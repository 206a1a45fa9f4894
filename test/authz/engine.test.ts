import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { casbinDecide, createCasbinEnforcer } from '../support/casbin-reference.ts';
import { MAX_HIERARCHY_LEVEL, PolicyEngine, loadModelText } from '../../src/authz/engine.ts';
import type { DecisionRequest, PolicyLine } from '../../src/authz/types.ts';

const p = (...values: string[]): PolicyLine => ({ ptype: 'p', values });
const g = (...values: string[]): PolicyLine => ({ ptype: 'g', values });
const g2 = (...values: string[]): PolicyLine => ({ ptype: 'g2', values });

function req(subject: string, domain: string, object: string, action: string, scopes: string[] = [], groups?: string[]): DecisionRequest {
  return { subject, domain, object, action, scopes, ...(groups ? { groups } : {}) };
}

/** The engine's answer, checked against its own explain and against Casbin on the same lines. */
async function decide(engine: PolicyEngine, request: DecisionRequest): Promise<boolean> {
  const allowed = engine.allowed(request);
  assert.equal(engine.explain(request).allowed, allowed, 'explain agrees with allowed');
  const casbin = await createCasbinEnforcer(engine.lines());
  assert.equal(await casbinDecide(casbin, request), allowed, `casbin agrees on ${JSON.stringify(request)}`);
  return allowed;
}

describe('PolicyEngine: rule changes', () => {
  test('adds, ignores duplicates, removes, keeps insertion order and versions', () => {
    const engine = new PolicyEngine([p('/a', 'data', '/x/**', 'GET', 'allow', ''), g('user:u', '/a')]);
    assert.equal(engine.version, 0);
    assert.equal(engine.lines().length, 2);
    engine.add([p('/a', 'data', '/x/**', 'GET', 'allow', '')]);
    assert.equal(engine.version, 0, 'a duplicate changes nothing');
    engine.add([p('/b', 'data', '/y', 'GET', 'allow', ''), p('/b', 'data', '/y', 'GET', 'allow', '')]);
    assert.equal(engine.version, 1);
    assert.equal(engine.lines().length, 3);
    engine.remove([g('user:nobody', '/a')]);
    assert.equal(engine.version, 1, 'removing an absent line changes nothing');
    engine.remove([p('/a', 'data', '/x/**', 'GET', 'allow', '')]);
    assert.equal(engine.version, 2);
    assert.equal(engine.has(p('/a', 'data', '/x/**', 'GET', 'allow', '')), false);
    engine.add([p('/a', 'data', '/x/**', 'GET', 'allow', '')]);
    assert.deepEqual(engine.lines(), [g('user:u', '/a'), p('/b', 'data', '/y', 'GET', 'allow', ''), p('/a', 'data', '/x/**', 'GET', 'allow', '')]);
    assert.equal(engine.has(g('user:u', '/a')), true);
    engine.replaceAll([g2('GET', 'read', 'data')]);
    assert.equal(engine.version, 4);
    assert.deepEqual(engine.lines(), [g2('GET', 'read', 'data')]);
    engine.invalidate();
    assert.equal(engine.version, 5);
  });

  test('keeps its own copies of lines', () => {
    const line = p('/a', 'data', '/x', 'GET', 'allow', '');
    const engine = new PolicyEngine([line, g('user:u', '/a')]);
    line.values[0] = '/changed';
    assert.equal(engine.allowed(req('user:u', 'data', '/x', 'GET')), true);
    engine.lines()[0]!.values[0] = '/changed-too';
    assert.equal(engine.has(p('/a', 'data', '/x', 'GET', 'allow', '')), true);
  });

  test('refuses malformed lines without changing anything', () => {
    const engine = new PolicyEngine([g('user:u', '/a')]);
    assert.throws(() => engine.add([p('/b', 'data', '/x', 'GET', 'allow', ''), g('user:u')]), TypeError);
    assert.throws(() => engine.add([g2('GET', 'read')]), TypeError);
    assert.throws(() => engine.add([{ ptype: 'x' as 'p', values: [] }]), TypeError);
    assert.throws(() => engine.replaceAll([{ ptype: 'g', values: ['a', 1 as unknown as string] }]), TypeError);
    assert.deepEqual(engine.lines(), [g('user:u', '/a')]);
    assert.equal(engine.version, 0);
  });

  test('incremental changes decide like a fresh engine', async () => {
    const engine = new PolicyEngine();
    const r = req('user:u', 'data', '/store/a/f', 'GET');
    assert.equal(await decide(engine, r), false);
    engine.add([p('/a', 'data', '/store/a/**', 'read', 'allow', ''), g2('GET', 'read', 'data')]);
    assert.equal(await decide(engine, r), false, 'u is not in /a yet');
    engine.add([g('user:u', '/a')]);
    assert.equal(await decide(engine, r), true);
    engine.add([p('user:u', 'data', '/store/*/f', 'GET', 'deny', '')]);
    assert.equal(await decide(engine, r), false);
    engine.remove([p('user:u', 'data', '/store/*/f', 'GET', 'deny', '')]);
    assert.equal(await decide(engine, r), true);
    engine.remove([g2('GET', 'read', 'data')]);
    assert.equal(await decide(engine, r), false, 'GET no longer stands for read');
    engine.replaceAll([p('user:u', 'data', '*', '*', 'allow', '')]);
    assert.equal(await decide(engine, r), true);
    engine.replaceAll([]);
    assert.equal(await decide(engine, r), false);
  });
});

describe('PolicyEngine: caching', () => {
  test('a cached decision is dropped when the version changes', () => {
    const engine = new PolicyEngine([p('/a', 'data', '/x', 'GET', 'allow', ''), g('user:u', '/a')]);
    const r = req('user:u', 'data', '/x', 'GET');
    assert.equal(engine.allowed(r), true);
    assert.equal(engine.allowed(r), true, 'from the cache');
    engine.add([p('user:u', 'data', '/x', '*', 'deny', '')]);
    assert.equal(engine.allowed(r), false);
    engine.remove([g('user:u', '/a'), p('user:u', 'data', '/x', '*', 'deny', '')]);
    assert.equal(engine.allowed(r), false, 'principals are resolved again');
    engine.add([g('user:u', '/a')]);
    assert.equal(engine.allowed(r), true);
  });

  test('requests differing only in groups, scopes or field boundaries are distinct', () => {
    const engine = new PolicyEngine([p('/a', 'data', '/x', 'GET', 'allow', 's'), p('/a,b', 'data', '/x', 'GET', 'allow', '')]);
    assert.equal(engine.allowed(req('user:u', 'data', '/x', 'GET', ['s'], ['/a'])), true);
    assert.equal(engine.allowed(req('user:u', 'data', '/x', 'GET', [], ['/a'])), false);
    assert.equal(engine.allowed(req('user:u', 'data', '/x', 'GET', ['s'], ['/b'])), false);
    assert.equal(engine.allowed(req('user:u', 'data', '/x', 'GET', ['s'])), false);
    assert.equal(engine.allowed(req('user:u', 'data', '/x', 'GET', [], ['/a,b'])), true);
    assert.equal(engine.allowed(req('user:u', 'data', '/x', 'GET', [], ['/a', 'b'])), false);
    assert.equal(engine.allowed(req('user:u', 'data', '/x', 'GET', [], ['/a', 'b'])), false);
    assert.equal(engine.allowed(req('user:u', 'data', '/x', 'GET', ['s', ''])), false);
  });

  test('works with the cache disabled or tiny', () => {
    for (const cacheSize of [0, 1, 2]) {
      const engine = new PolicyEngine([p('/a', 'data', '/x/**', 'GET', 'allow', ''), g('user:u', '/a')], { cacheSize });
      for (let i = 0; i < 20; i++) {
        assert.equal(engine.allowed(req('user:u', 'data', `/x/${i % 5}`, 'GET')), true);
        assert.equal(engine.allowed(req('user:v', 'data', `/x/${i % 5}`, 'GET')), false);
        assert.equal(engine.allowed(req(`user:v${i % 3}`, 'data', '/x', 'GET', [], ['/a'])), true);
      }
    }
  });
});

describe('PolicyEngine: decisions', () => {
  test('a deny overrides any allow, whatever the order', async () => {
    for (const order of [0, 1]) {
      const allow = p('/a', 'data', '/store/**', '*', 'allow', '');
      const deny = p('user:u', 'data', '/store/secret/**', 'GET', 'deny', '');
      const engine = new PolicyEngine([...(order ? [deny, allow] : [allow, deny]), g('user:u', '/a')]);
      assert.equal(await decide(engine, req('user:u', 'data', '/store/secret/f', 'GET')), false);
      assert.equal(await decide(engine, req('user:u', 'data', '/store/secret/f', 'PUT')), true);
      assert.equal(await decide(engine, req('user:u', 'data', '/store/open', 'GET')), true);
      assert.equal(await decide(engine, req('user:w', 'data', '/store/secret/f', 'GET', [], ['/a'])), true);
    }
  });

  test('follows at most 10 g links, like Casbin, through cycles too', async () => {
    // user:u → /c1 → /c2 → ... → /c12 → /c1 (a cycle)
    const chain = [g('user:u', '/c1')];
    for (let i = 1; i <= 12; i++) chain.push(g(`/c${i}`, `/c${i === 12 ? 1 : i + 1}`));
    const rules = Array.from({ length: 12 }, (_, i) => p(`/c${i + 1}`, 'data', `/r${i + 1}`, 'GET', 'allow', ''));
    const engine = new PolicyEngine([...chain, ...rules]);
    for (let i = 1; i <= 12; i++) {
      assert.equal(await decide(engine, req('user:u', 'data', `/r${i}`, 'GET')), i <= MAX_HIERARCHY_LEVEL, `/c${i} is ${i} links away`);
    }
    // A group named in the request is one link away: 9 more remain.
    assert.equal(await decide(engine, req('user:v', 'data', '/r10', 'GET', [], ['/c1'])), true);
    assert.equal(await decide(engine, req('user:v', 'data', '/r11', 'GET', [], ['/c1'])), false);
    assert.equal(await decide(engine, req('user:v', 'data', '/r11', 'GET', [], ['/c1', '/c5'])), true);
    // A shortcut makes a far group near.
    engine.add([g('user:u', '/c11')]);
    assert.equal(await decide(engine, req('user:u', 'data', '/r12', 'GET')), true);
    assert.equal(engine.explain(req('user:u', 'data', '/x', 'GET')).explanation?.principals?.length, 13);
  });

  test('groups in the request count as memberships of the subject', async () => {
    const engine = new PolicyEngine([
      p('/cms', 'data', '/store/cms/**', 'GET', 'allow', ''),
      p('/cms/production', 'data', '/store/cms/**', 'PUT', 'allow', ''),
      g('/cms/production', '/cms'),
    ]);
    assert.equal(await decide(engine, req('user:alice', 'data', '/store/cms/f', 'GET')), false);
    assert.equal(await decide(engine, req('user:alice', 'data', '/store/cms/f', 'GET', [], ['/cms/production'])), true);
    assert.equal(await decide(engine, req('user:alice', 'data', '/store/cms/f', 'PUT', [], ['/cms/production'])), true);
    assert.equal(await decide(engine, req('user:alice', 'data', '/store/cms/f', 'PUT', [], ['/cms'])), false);
    assert.equal(await decide(engine, req('user:alice', 'data', '/store/cms/f', 'GET', [], ['user:alice'])), false);
    assert.equal(await decide(engine, req('/cms/production', 'data', '/store/cms/f', 'GET')), true, 'a group as the subject');
  });

  test('g2 operations are per domain and chain', async () => {
    const engine = new PolicyEngine([
      g2('POST', 'deploy', 'orchestrator'),
      g2('deploy', 'change', 'orchestrator'),
      p('user:u', 'orchestrator', '/d/**', 'change', 'allow', ''),
      p('user:u', 'data', '/d/**', 'deploy', 'allow', ''),
    ]);
    assert.equal(await decide(engine, req('user:u', 'orchestrator', '/d/1', 'POST')), true);
    assert.equal(await decide(engine, req('user:u', 'orchestrator', '/d/1', 'deploy')), true);
    assert.equal(await decide(engine, req('user:u', 'orchestrator', '/d/1', 'PUT')), false);
    assert.equal(await decide(engine, req('user:u', 'data', '/d/1', 'POST')), false, 'POST is deploy only in orchestrator');
    assert.equal(await decide(engine, req('user:u', 'data', '/d/1', 'deploy')), true, 'the literal operation name matches');
  });

  test('nothing is allowed without rules, even for an empty request', async () => {
    const engine = new PolicyEngine([g('', ''), g2('', '', '')]);
    for (const r of [req('', '', '', ''), req('user:u', 'data', '/x', 'GET'), req('', 'data', '', '', [''], [''])]) {
      assert.equal(await decide(engine, r), false);
    }
  });

  test('odd lines Casbin accepts are decided as Casbin decides them', async () => {
    const engine = new PolicyEngine([
      { ptype: 'p', values: ['user:a', 'data', '/x', 'GET', 'allow'] },
      { ptype: 'p', values: ['user:b', 'data', '/x', 'GET'] },
      p('user:c', 'data', '/x', 'GET', '', ''),
      p('user:d', 'data', '/x', 'GET', 'Allow', ''),
      p('user:e', 'data', '/x', 'GET', 'DENY', ''),
      { ptype: 'p', values: ['user:f', 'data'] },
      { ptype: 'p', values: [] },
      p('user:g', 'data', '/x', 'GET', 'allow', '', 'extra'),
      g('user:h', '/h', 'extra'),
      p('/h', 'data', '/x', 'GET', 'allow', ''),
      p('', 'data', '/x', 'GET', 'allow', ''),
      p('user:i', 'data', '/x', '', 'allow', ''),
      p('user:j', 'data', '/**/x', 'GET', 'allow', ''),
    ]);
    const expected: Record<string, boolean> = { a: true, b: true, c: true, d: false, e: false, f: false, g: true, h: true, i: false, j: false };
    for (const [who, allowed] of Object.entries(expected)) {
      assert.equal(await decide(engine, req(`user:${who}`, 'data', '/x', 'GET')), allowed, who);
    }
    assert.equal(await decide(engine, req('', 'data', '/x', 'GET')), true);
    assert.equal(await decide(engine, req('user:i', 'data', '/x', '')), true);
  });

  test('WLCG scope rules: narrower scopes are covered, required scopes checked', async () => {
    const engine = new PolicyEngine([
      p('user:u', 'scopes', '*', 'storage.read:/store/cms', 'allow', ''),
      p('user:u', 'data', '/store/cms/**', 'PUT', 'allow', 'storage.modify'),
      p('user:u', 'data', '/store/cms/**', 'GET', 'allow', 'storage.read:/store/cms'),
    ]);
    assert.equal(await decide(engine, req('user:u', 'scopes', 'https://s.demo', 'storage.read:/store/cms/run1')), true);
    assert.equal(await decide(engine, req('user:u', 'scopes', 'https://s.demo', 'storage.read:/store')), false);
    assert.equal(await decide(engine, req('user:u', 'data', '/store/cms/a/f', 'PUT', ['storage.modify:/store/cms/a'])), true);
    assert.equal(await decide(engine, req('user:u', 'data', '/store/cms/b/f', 'PUT', ['storage.modify:/store/cms/a'])), false);
    assert.equal(await decide(engine, req('user:u', 'data', '/store/cms/b/f', 'GET', ['storage.read:/store'])), true);
    assert.equal(await decide(engine, req('user:u', 'data', '/store/cms/b/f', 'GET', ['storage.read:/store/cms/b'])), false);
  });

  test('an object that is not normalised only matches *', async () => {
    const engine = new PolicyEngine([p('user:u', 'data', '/store/cms/**', 'GET', 'allow', ''), p('user:v', 'data', '*', 'GET', 'allow', '')]);
    assert.equal(await decide(engine, req('user:u', 'data', '/store/cms/../atlas', 'GET')), false);
    assert.equal(await decide(engine, req('user:v', 'data', '/store/cms/../atlas', 'GET')), true);
  });
});

describe('PolicyEngine: explain', () => {
  const lines = [
    g2('POST', 'write', 'data'),
    p('/a', 'data', '/store/**', 'write', 'allow', 'storage.modify'),
    p('/a', 'data', '/store/x/**', 'POST', 'allow', 'special'),
    p('/a', 'data', '/store/**', 'GET', 'allow', ''),
    p('/b', 'data', '/store/**', 'GET', 'allow', ''),
    p('user:u', 'data', '/store/secret/**', '*', 'deny', ''),
    p('/b', 'data', '/store/secret/*', 'GET', 'deny', ''),
    g('user:u', '/a'),
    g('/a', '/b'),
  ];
  const engine = new PolicyEngine(lines);

  test('allow: the first matching allow rule in insertion order', () => {
    assert.deepEqual(engine.explain(req('user:u', 'data', '/store/f', 'GET')), {
      allowed: true,
      explanation: { outcome: 'allow', rule: p('/a', 'data', '/store/**', 'GET', 'allow', ''), principals: ['user:u', '/a', '/b'] },
    });
  });

  test('deny: the first matching deny rule in insertion order', () => {
    assert.deepEqual(engine.explain(req('user:u', 'data', '/store/secret/f', 'GET')), {
      allowed: false,
      explanation: { outcome: 'deny', rule: p('user:u', 'data', '/store/secret/**', '*', 'deny', ''), principals: ['user:u', '/a', '/b'] },
    });
    assert.deepEqual(engine.explain(req('user:w', 'data', '/store/secret/f', 'GET', [], ['/b'])).explanation, {
      outcome: 'deny', rule: p('/b', 'data', '/store/secret/*', 'GET', 'deny', ''), principals: ['user:w', '/b'],
    });
  });

  test('no_match: which scopes allow rules wanted', () => {
    assert.deepEqual(engine.explain(req('user:u', 'data', '/store/x/f', 'POST', ['openid'])), {
      allowed: false,
      explanation: { outcome: 'no_match', missingScopes: ['storage.modify', 'special'], principals: ['user:u', '/a', '/b'] },
    });
    assert.deepEqual(engine.explain(req('user:u', 'data', '/store/y/f', 'POST', ['storage.modify:/store/x'])).explanation?.missingScopes, ['storage.modify']);
    assert.deepEqual(engine.explain(req('user:u', 'data', '/elsewhere', 'GET')).explanation, { outcome: 'no_match', missingScopes: [], principals: ['user:u', '/a', '/b'] });
    assert.deepEqual(engine.explain(req('user:z', 'nowhere', '/x', 'GET')).explanation, { outcome: 'no_match', missingScopes: [], principals: ['user:z'] });
  });

  test('agrees with allowed()', () => {
    for (const object of ['/store/f', '/store/secret/f', '/store/x/f', '/other']) {
      for (const action of ['GET', 'POST', 'PUT', 'write']) {
        for (const scopes of [[], ['storage.modify:/store'], ['special']]) {
          const r = req('user:u', 'data', object, action, scopes);
          assert.equal(engine.explain(r).allowed, engine.allowed(r));
        }
      }
    }
  });
});

test('loadModelText reads policies/model.conf', () => {
  assert.match(loadModelText(), /^m = g\(r\.sub, p\.sub\) && r\.dom == p\.dom/m);
});
