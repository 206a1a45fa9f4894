/**
 * Differential test: the engine against Casbin's plain Enforcer on
 * policies/model.conf, on random policies and requests drawn from a small
 * vocabulary (so that rules match often). Every failure names its seed:
 * rerun one with AUTHZ_SEED=<seed>.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Enforcer } from 'casbin';
import { casbinDecide, createCasbinEnforcer } from '../support/casbin-reference.ts';
import { PolicyEngine } from '../../src/authz/engine.ts';
import { formatPolicyCsv, lineKey } from '../../src/authz/rules.ts';
import type { DecisionRequest, PolicyLine } from '../../src/authz/types.ts';
import { mulberry32 } from '../support/random.ts';


class Random {
  readonly next: () => number;
  constructor(seed: number) {
    this.next = mulberry32(seed);
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
  some<T>(items: readonly T[], p: number): T[] {
    return items.filter(() => this.chance(p));
  }
}

const USERS = ['user:u0', 'user:u1', 'user:u2', 'user:u3', 'client:c0', 'client:c1'];
const GROUPS = ['/g0', '/g0/a', '/g0/a/b', '/g1', '/g1/x', '/g2', '/g3'];
/** A chain longer than Casbin follows: /k1 → /k2 → ... → /k12. */
const CHAIN = Array.from({ length: 12 }, (_, i) => `/k${i + 1}`);
const SUBJECTS = [...USERS, ...GROUPS, CHAIN[0]!];
const DOMAINS = ['data', 'ml', 'scopes', 'sync'];
const METHODS = ['GET', 'POST', 'PUT', 'DELETE'];
const OPERATIONS = ['read', 'write', 'deploy', 'view'];
const SEGMENTS = ['store', 'cms', 'atlas', 'x', 'secret'];
const AUDIENCES = ['https://s.demo', 'https://ml.demo', 'urn:aud'];
const PATH_SCOPES = ['storage.read:/store', 'storage.read:/store/cms', 'storage.modify:/store/cms', 'storage.modify:/', 'storage.read:/store/cms/x', 'storage.modify:/store/cms/../atlas'];
const OTHER_SCOPES = ['compute.read', 'ml.x', 'openid'];
const REQUIRED = ['storage.read', 'storage.modify', 'storage.read:/store/cms', 'storage.modify:/store', 'compute.read', 'ml.x'];

function randomPath(r: Random, maxDepth: number): string {
  const depth = r.int(maxDepth + 1);
  let path = '';
  for (let i = 0; i < depth; i++) path += `/${r.chance(0.03) ? r.pick(['', '..', '.']) : r.pick(SEGMENTS)}`;
  return path || '/';
}

function randomPattern(r: Random): string {
  const roll = r.next();
  if (roll < 0.12) return '*';
  if (roll < 0.2) return r.pick(AUDIENCES);
  if (roll < 0.23) return r.pick(['**', '/**', '/', '', '/store/**/x', '/store/*/']);
  const depth = 1 + r.int(3);
  let pattern = '';
  for (let i = 0; i < depth; i++) pattern += `/${r.chance(0.25) ? '*' : r.pick(SEGMENTS)}`;
  if (r.chance(0.45)) pattern += '/**';
  return pattern;
}

function randomAction(r: Random): string {
  const roll = r.next();
  if (roll < 0.15) return '*';
  if (roll < 0.4) return r.pick(METHODS);
  if (roll < 0.65) return r.pick(OPERATIONS);
  if (roll < 0.9) return r.pick(PATH_SCOPES);
  return r.pick(OTHER_SCOPES);
}

function randomRule(r: Random): PolicyLine {
  const effect = r.chance(0.02) ? r.pick(['', 'Allow']) : r.chance(0.3) ? 'deny' : 'allow';
  const scope = r.chance(0.5) ? '' : r.pick(REQUIRED);
  return { ptype: 'p', values: [r.pick([...SUBJECTS, ...CHAIN.slice(8)]), r.pick(DOMAINS), randomPattern(r), randomAction(r), effect, scope] };
}

function randomMembership(r: Random): PolicyLine {
  return { ptype: 'g', values: [r.pick(SUBJECTS), r.pick([...GROUPS, CHAIN[0]!, CHAIN[5]!])] };
}

function randomOperation(r: Random): PolicyLine {
  const from = r.chance(0.8) ? r.pick(METHODS) : r.pick(OPERATIONS);
  return { ptype: 'g2', values: [from, r.pick(OPERATIONS), r.pick(DOMAINS)] };
}

function randomPolicy(r: Random, rules: number): PolicyLine[] {
  const lines: PolicyLine[] = [];
  for (let i = 0; i < rules; i++) lines.push(randomRule(r));
  // Few memberships whatever the size: Casbin searches g links depth-first without
  // remembering visited nodes, so a dense graph with cycles costs it b^10 steps.
  const memberships = 4 + r.int(10);
  for (let i = 0; i < memberships; i++) lines.push(randomMembership(r));
  for (let i = 0; i < 3 + r.int(8); i++) lines.push(randomOperation(r));
  if (r.chance(0.7)) {
    for (let i = 0; i + 1 < CHAIN.length; i++) lines.push({ ptype: 'g', values: [CHAIN[i]!, CHAIN[i + 1]!] });
    if (r.chance(0.3)) lines.push({ ptype: 'g', values: [CHAIN[CHAIN.length - 1]!, CHAIN[0]!] });
  }
  // Shuffle, with some duplicates: the engine and Casbin both keep one.
  for (let i = lines.length - 1; i > 0; i--) {
    const j = r.int(i + 1);
    [lines[i], lines[j]] = [lines[j]!, lines[i]!];
  }
  if (r.chance(0.3)) lines.push(...r.some(lines, 0.1));
  return lines;
}

function randomRequest(r: Random): DecisionRequest {
  const domain = r.pick(DOMAINS);
  const roll = r.next();
  const object = roll < 0.2 ? r.pick(AUDIENCES) : roll < 0.23 ? r.pick(['', '/', 'store/cms']) : randomPath(r, 4);
  const action = r.chance(0.3) ? r.pick([...PATH_SCOPES, 'storage.read:/store/cms/x/y', 'storage.modify:/store/cms/secret', ...OTHER_SCOPES]) : r.pick([...METHODS, ...OPERATIONS]);
  const scopes = r.some([...PATH_SCOPES, ...OTHER_SCOPES, 'storage.modify:/store/atlas'], 0.2);
  const request: DecisionRequest = { subject: r.pick([...SUBJECTS, 'user:nobody']), domain, object, action, scopes };
  if (r.chance(0.35)) request.groups = r.some([...GROUPS, ...CHAIN.slice(0, 3)], 0.2);
  return request;
}

/** A concrete object a pattern matches (sometimes not quite). */
function instantiate(r: Random, pattern: string): string {
  if (pattern === '*' || pattern === '' || pattern === '**') return r.chance(0.5) ? randomPath(r, 3) : r.pick(AUDIENCES);
  const segments = pattern.split('/');
  const rest = segments[segments.length - 1] === '**';
  if (rest) segments.pop();
  const out = segments.map((s) => (s === '*' ? (r.chance(0.05) ? '' : r.pick(SEGMENTS)) : s));
  if (rest) for (let i = r.int(3); i > 0; i--) out.push(r.pick(SEGMENTS));
  return out.join('/') || '/';
}

/**
 * A request aimed at one of the policy's p rules: its subject (or a member
 * of it), domain, an object its pattern matches, an action it stands for,
 * and usually the scope it requires; so that rules match and near-misses
 * happen, both often.
 */
function targetedRequest(r: Random, lines: readonly PolicyLine[]): DecisionRequest {
  const rules = lines.filter((l) => l.ptype === 'p');
  if (!rules.length) return randomRequest(r);
  const [subject, domain, pattern, action, , scope] = r.pick(rules).values as [string, string, string, string, string, string];
  const request = randomRequest(r);
  if (r.chance(0.5)) request.subject = subject;
  else {
    request.subject = r.pick([...USERS, 'user:nobody']);
    request.groups = [subject, ...r.some(GROUPS, 0.1)];
  }
  if (r.chance(0.9)) request.domain = domain;
  if (r.chance(0.9)) request.object = instantiate(r, pattern);
  if (action !== '*' && r.chance(0.8)) {
    const methods = lines.filter((l) => l.ptype === 'g2' && l.values[1] === action && l.values[2] === request.domain).map((l) => l.values[0]!);
    if (methods.length && r.chance(0.6)) request.action = r.pick(methods);
    else request.action = action.startsWith('storage.') && r.chance(0.4) ? `${action}${r.pick(['/x', 'x', '/../y'])}` : action;
  }
  if (scope && r.chance(0.75)) {
    const held = /^storage\.[a-z]+$/.test(scope) ? `${scope}:${request.object.split('/').slice(0, 1 + r.int(4)).join('/')}` : scope;
    request.scopes = [...(request.scopes ?? []), held];
  }
  return request;
}

function describeFailure(seed: number, step: string, request: DecisionRequest, lines: readonly PolicyLine[]): string {
  return `seed ${seed}, ${step}: ${JSON.stringify(request)}\npolicy:\n${formatPolicyCsv(lines)}`;
}

async function compare(seed: number, step: string, engine: PolicyEngine, casbin: Enforcer, request: DecisionRequest, lines: readonly PolicyLine[]): Promise<boolean> {
  const expected = await casbinDecide(casbin, request);
  const allowed = engine.allowed(request);
  const decision = engine.explain(request);
  const why = () => describeFailure(seed, step, request, lines);
  assert.equal(allowed, expected, `engine.allowed differs from Casbin, ${why()}`);
  assert.equal(engine.allowed(request), expected, `cached engine.allowed differs from Casbin, ${why()}`);
  assert.equal(decision.allowed, expected, `engine.explain differs from Casbin, ${why()}`);
  const { outcome, rule } = decision.explanation!;
  assert.equal(outcome === 'allow', expected, `explain outcome ${outcome}, ${why()}`);
  if (outcome !== 'no_match') {
    assert.ok(rule, `explain names no rule, ${why()}`);
    assert.equal(rule.values[4] === 'deny', outcome === 'deny', `explain's rule has the wrong effect, ${why()}`);
  }
  return expected;
}

const ONLY = process.env.AUTHZ_SEED ? [Number(process.env.AUTHZ_SEED)] : undefined;
const seeds = (from: number, count: number) => ONLY ?? Array.from({ length: count }, (_, i) => from + i);

describe('engine vs Casbin', () => {
  test('40 small random policies × 300 requests', async () => {
    let allowed = 0;
    let total = 0;
    for (const seed of seeds(1, 40)) {
      const r = new Random(seed);
      const lines = randomPolicy(r, 10 + r.int(40));
      const engine = new PolicyEngine(lines, { cacheSize: 1 + r.int(400) });
      const casbin = await createCasbinEnforcer(lines);
      for (let i = 0; i < 300; i++) {
        const request = r.chance(0.6) ? targetedRequest(r, lines) : randomRequest(r);
        if (await compare(seed, `request ${i}`, engine, casbin, request, lines)) allowed++;
        total++;
      }
    }
    // The vocabulary is meant to make both outcomes common; a test that only sees denials proves little.
    if (!ONLY) assert.ok(allowed > total * 0.15 && allowed < total * 0.85, `allowed ${allowed} of ${total}`);
  });

  test('larger random policies × 200 requests', async () => {
    for (const seed of seeds(1001, 8)) {
      const r = new Random(seed);
      const lines = randomPolicy(r, 300 + r.int(300));
      const engine = new PolicyEngine(lines);
      const casbin = await createCasbinEnforcer(lines);
      for (let i = 0; i < 200; i++) {
        await compare(seed, `request ${i}`, engine, casbin, r.chance(0.6) ? targetedRequest(r, lines) : randomRequest(r), lines);
      }
    }
  });

  test('incremental add/remove/replaceAll sequences against a fresh Casbin after each step', async () => {
    for (const seed of seeds(2001, 16)) {
      const r = new Random(seed);
      const initial = randomPolicy(r, 20 + r.int(30));
      const engine = new PolicyEngine(initial, { cacheSize: 50 });
      // The expected state: lines in insertion order, once each.
      let expected = new Map<string, PolicyLine>();
      for (const line of initial) if (!expected.has(lineKey(line))) expected.set(lineKey(line), line);
      const removed: PolicyLine[] = [];
      for (let step = 0; step < 25; step++) {
        const roll = r.next();
        const current = [...expected.values()];
        let action: string;
        if (roll < 0.45) {
          const batch = Array.from({ length: 1 + r.int(4) }, () => {
            if (removed.length && r.chance(0.3)) return r.pick(removed);
            if (current.length && r.chance(0.1)) return r.pick(current);
            const kind = r.next();
            return kind < 0.6 ? randomRule(r) : kind < 0.9 ? randomMembership(r) : randomOperation(r);
          });
          engine.add(batch);
          for (const line of batch) if (!expected.has(lineKey(line))) expected.set(lineKey(line), line);
          action = `add ${JSON.stringify(batch)}`;
        } else if (roll < 0.93) {
          const batch = [...r.some(current, 0.15), ...(r.chance(0.2) ? [randomRule(r)] : [])];
          engine.remove(batch);
          for (const line of batch) {
            if (expected.delete(lineKey(line))) removed.push(line);
          }
          action = `remove ${JSON.stringify(batch)}`;
        } else {
          const next = randomPolicy(r, 10 + r.int(20));
          engine.replaceAll(next);
          expected = new Map();
          for (const line of next) if (!expected.has(lineKey(line))) expected.set(lineKey(line), line);
          action = 'replaceAll';
        }
        const lines = [...expected.values()];
        assert.deepEqual(engine.lines(), lines, `seed ${seed}, step ${step} (${action}): lines() differ`);
        const casbin = await createCasbinEnforcer(lines);
        for (let i = 0; i < 40; i++) {
          const request = r.chance(0.6) ? targetedRequest(r, lines) : randomRequest(r);
          await compare(seed, `step ${step} (${action}), request ${i}`, engine, casbin, request, lines);
        }
      }
    }
  });
});
