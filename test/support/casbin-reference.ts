/**
 * A real Casbin Enforcer on fedgate's model: the reference the decision
 * engine is tested and benchmarked against (a devDependency: the server never
 * loads Casbin). fedgate itself decides with the
 * engine (src/authz/engine.ts); nothing on the request path uses this module.
 */
import { newEnforcer, newModelFromString, type Enforcer } from 'casbin';
import { loadModelText } from '../../src/authz/engine.ts';
import { actionMatch, objectMatch, scopeMatch } from '../../src/authz/functions.ts';
import { lineKey } from '../../src/authz/rules.ts';
import type { DecisionRequest, PolicyLine } from '../../src/authz/types.ts';

/**
 * A Casbin Enforcer on policies/model.conf with the matcher functions
 * registered and `lines` added (duplicates once, in order, as Casbin's own
 * dedup would leave them).
 */
export async function createCasbinEnforcer(lines: readonly PolicyLine[]): Promise<Enforcer> {
  const enforcer = await newEnforcer(newModelFromString(loadModelText()));
  await enforcer.addFunction('objectMatch', objectMatch);
  await enforcer.addFunction('actionMatch', actionMatch);
  await enforcer.addFunction('scopeMatch', scopeMatch);
  const seen = new Set<string>();
  const byType: Record<PolicyLine['ptype'], string[][]> = { p: [], g: [], g2: [] };
  for (const line of lines) {
    const key = lineKey(line);
    if (seen.has(key)) continue;
    seen.add(key);
    byType[line.ptype].push([...line.values]);
  }
  // Casbin refuses a whole batch when one of its rules exists, so each type goes in once.
  if (byType.p.length) await enforcer.addPolicies(byType.p);
  if (byType.g.length) await enforcer.addNamedGroupingPolicies('g', byType.g);
  if (byType.g2.length) await enforcer.addNamedGroupingPolicies('g2', byType.g2);
  return enforcer;
}

/** The request as Casbin's request definition takes it: sub, dom, obj, act, scp. */
export function casbinRequest(request: DecisionRequest): [string, string, string, string, string] {
  return [request.subject, request.domain, request.object, request.action, (request.scopes ?? []).join(' ')];
}

/**
 * Casbin's decision for a request, its `groups` added as `g, subject, group`
 * lines for the call (and removed after; lines the policy already has stay).
 */
export async function casbinDecide(enforcer: Enforcer, request: DecisionRequest): Promise<boolean> {
  const added: string[][] = [];
  for (const group of request.groups ?? []) {
    if (await enforcer.hasNamedGroupingPolicy('g', request.subject, group)) continue;
    await enforcer.addNamedGroupingPolicy('g', request.subject, group);
    added.push([request.subject, group]);
  }
  try {
    return enforcer.enforceSync(...casbinRequest(request));
  } finally {
    for (const rule of added) await enforcer.removeNamedGroupingPolicy('g', ...rule);
  }
}
