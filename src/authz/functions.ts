/**
 * The custom functions of fedgate's Casbin matcher (policies/model.conf):
 * `objectMatch`, `actionMatch` and `scopeMatch`. Casbin calls them (see
 * casbin.ts) and the decision engine (engine.ts) calls them or their
 * precompiled forms, so both decide alike. They are pure and total: any
 * input, including the `undefined` Casbin passes for a value missing from a
 * short policy line, gives a boolean and never an exception.
 */
import { capabilityAuthorizes, isBareStorageCapability, isPathScope, parseStorageScope, pathWithin, scopeCovered } from '../scopes/wlcg.ts';

/** Whether a rule's action is a WLCG storage scope with a path, for which {@link actionMatch} does more than compare. */
export { isPathScope };

/**
 * An object pattern, compiled once for repeated matching.
 *
 * - `any`: the pattern `*`, matching every object.
 * - `none`: matches nothing (an empty pattern, or `**` before the last segment).
 * - `segments`: `segments` matched one to one (`*` is one non-empty
 *   segment, anything else is literal), followed by any number of further
 *   segments when `rest` is set (a trailing `**`).
 */
export interface ObjectPattern {
  readonly kind: 'any' | 'none' | 'segments';
  /** The segments before a trailing `**`, split on `/` with empty segments kept. */
  readonly segments: readonly string[];
  /** The pattern ended with `**`. */
  readonly rest: boolean;
  /** How many leading segments are literal (before the first `*`). */
  readonly literalPrefix: number;
}

const ANY: ObjectPattern = { kind: 'any', segments: [], rest: false, literalPrefix: 0 };
const NONE: ObjectPattern = { kind: 'none', segments: [], rest: false, literalPrefix: 0 };

/** Compiles an object pattern (see {@link objectMatch} for the syntax). */
export function compileObjectPattern(pattern: unknown): ObjectPattern {
  if (pattern === '*') return ANY;
  if (typeof pattern !== 'string' || pattern === '') return NONE;
  const segments = pattern.split('/');
  const rest = segments[segments.length - 1] === '**';
  if (rest) segments.pop();
  let literalPrefix = -1;
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i]!;
    if (segment === '**') return NONE;
    if (segment === '*' && literalPrefix < 0) literalPrefix = i;
  }
  return { kind: 'segments', segments, rest, literalPrefix: literalPrefix < 0 ? segments.length : literalPrefix };
}

/**
 * The segments of a request object, or `undefined` for an object only the
 * pattern `*` matches: the empty string, and any object with a `.` or `..`
 * segment (a path that is not normalised must not slip under an allow
 * pattern through a traversal).
 */
export function objectSegments(obj: unknown): string[] | undefined {
  if (typeof obj !== 'string' || obj === '') return undefined;
  const segments = obj.split('/');
  for (const segment of segments) {
    if (segment === '.' || segment === '..') return undefined;
  }
  return segments;
}

/**
 * Whether object segments (from {@link objectSegments}) match a compiled
 * `segments` pattern, comparing from segment `from` on (the engine's index
 * has already compared the segments before it).
 */
export function matchObjectSegments(objSegments: readonly string[], pattern: ObjectPattern, from = 0): boolean {
  const wanted = pattern.segments;
  const n = wanted.length;
  if (pattern.rest ? objSegments.length < n : objSegments.length !== n) return false;
  for (let i = from; i < n; i++) {
    const w = wanted[i]!;
    const o = objSegments[i]!;
    if (w === '*' ? o === '' : w !== o) return false;
  }
  return true;
}

/**
 * Whether object `obj` matches `pattern`.
 *
 * `*` matches anything. Otherwise both are split on `/` (empty segments
 * kept) and compared segment by segment: a pattern segment `*` matches
 * exactly one non-empty segment, `**` (allowed only as the last segment)
 * matches zero or more remaining segments, any other segment matches only
 * itself. So `/store/cms/**` matches `/store/cms` and `/store/cms/a/b`, and
 * an audience such as `https://storage.demo` is an exact literal. An empty
 * pattern matches nothing; an empty object, or one with a `.` or `..`
 * segment, matches only `*`.
 */
export function objectMatch(obj: string, pattern: string): boolean {
  if (pattern === '*') return true;
  const compiled = compileObjectPattern(pattern);
  if (compiled.kind !== 'segments') return false;
  const segments = objectSegments(obj);
  return segments !== undefined && matchObjectSegments(segments, compiled);
}

/**
 * Whether request action `act` matches a rule's action `pattern`: `*`
 * matches anything, equal strings match, and a WLCG storage scope with a
 * path covers the same capability on narrower paths
 * (`storage.read:/store` matches `storage.read:/store/cms`).
 */
export function actionMatch(act: string, pattern: string): boolean {
  if (pattern === '*') return true;
  if (typeof act !== 'string' || typeof pattern !== 'string') return false;
  // Equal strings match (rules.ts admits only storage scopes in normal form into a rule).
  return act === pattern || scopeCovered(act, [pattern]);
}

/**
 * Whether a token's scopes (`scopes`, space-separated) satisfy a rule's
 * required scope `required` for request object `obj`:
 *
 * - no required scope (empty or missing): always;
 * - a bare WLCG storage capability (`storage.modify`): a token scope of that
 *   capability whose path covers `obj` (`storage.modify:/store/cms` for
 *   `/store/cms/file`); `obj` must be an absolute path without `.` or `..`
 *   segments;
 * - a WLCG storage scope with a path: a token scope covering it;
 * - anything else: the token holds exactly that scope.
 */
export function scopeMatch(scopes: string, required: string, obj: string): boolean {
  if (typeof required !== 'string' || required === '') return true;
  if (typeof scopes !== 'string') return false;
  return scopeMatchTokens(scopes.split(' '), required, obj);
}

/** {@link scopeMatch} with the token's scopes already split on spaces. */
export function scopeMatchTokens(tokens: readonly string[], required: string, obj: string): boolean {
  if (typeof required !== 'string' || required === '') return true;
  if (isBareStorageCapability(required)) {
    if (typeof obj !== 'string' || obj[0] !== '/' || objectSegments(obj) === undefined) return false;
    for (const token of tokens) {
      // A token scope whose path is not in normal form covers nothing.
      const held = parseStorageScope(token);
      const capable = held !== undefined && capabilityAuthorizes(held.capability, required);
      if (capable && pathWithin(obj, held.path)) return true;
    }
    return false;
  }
  if (isPathScope(required)) {
    for (const token of tokens) {
      if (scopeCovered(required, [token])) return true;
    }
    return false;
  }
  return tokens.includes(required);
}
