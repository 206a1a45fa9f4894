/**
 * fedgate's policy decision engine: the decisions of Casbin's plain Enforcer
 * on policies/model.conf, from indexes instead of a scan of every rule.
 *
 * Casbin evaluates the matcher
 *
 *   g(r.sub, p.sub) && r.dom == p.dom && objectMatch(r.obj, p.obj)
 *     && (actionMatch(r.act, p.act) || g2(r.act, p.act, r.dom))
 *     && scopeMatch(r.scp, p.scope, r.obj)
 *
 * for every p rule, and allows when some allow rule matched and no deny rule
 * did. The engine gets the same answer by looking only at rules that can
 * match. Rules are indexed by domain, then by the literal leading segments of
 * their object pattern (a trie; `*` patterns apart), then by subject. A
 * decision resolves the subject's principals once (itself and what `g`
 * reaches within Casbin's 10 links; cached until the next change), walks the
 * trie along the request object, and at each node with rules looks up each
 * principal; the candidates found are checked against the rest of the
 * matcher. test/authz/differential.test.ts holds the engine to Casbin.
 *
 * The trie is keyed by object first, subject second: the top of a domain's
 * trie (`/store/<experiment>`) is shared by every request and stays in the
 * CPU cache, so a decision costs a few lookups in small maps rather than a
 * walk per principal (at 100,000 rules about 1.5 times as fast as indexing
 * by subject first; see bench/authz-decisions.ts).
 */
import { readFileSync } from 'node:fs';
import {
  actionMatch,
  compileObjectPattern,
  isPathScope,
  matchObjectSegments,
  objectSegments,
  scopeMatchTokens,
  type ObjectPattern,
} from './functions.ts';
import { lineKey } from './rules.ts';
import type { Decision, DecisionRequest, Explanation, PolicyDecisionPoint, PolicyLine } from './types.ts';

/** How many `g` (and `g2`) links Casbin's default role manager follows (its maxHierarchyLevel). */
export const MAX_HIERARCHY_LEVEL = 10;
/** Default bound of the decision cache. */
export const DEFAULT_CACHE_SIZE = 100_000;
/** How many decisions of requests seen once are kept, for the cache to take when they come again. */
const RECENT_SIZE = 8192;
/** Bound of the caches of resolved principals and operations (emptied when full). */
const RESOLUTION_CACHE_SIZE = 100_000;

/** The text of fedgate's Casbin model, policies/model.conf. */
export function loadModelText(): string {
  return readFileSync(new URL('../../policies/model.conf', import.meta.url), 'utf8');
}

/** A p line as the matcher sees it, compiled for the indexes. */
interface Rule {
  readonly seq: number;
  readonly line: PolicyLine;
  readonly subject: string;
  readonly pattern: ObjectPattern;
  readonly action: string;
  readonly actionAny: boolean;
  /** `actionMatch` may cover narrower WLCG storage scopes than the literal action. */
  readonly actionPathScope: boolean;
  readonly deny: boolean;
  readonly scope: string;
}

/** Rules by subject. */
type BySubject = Map<string, Rule[]>;

/** A node of a domain's trie of object pattern prefixes. */
interface TrieNode {
  /** Rules whose pattern's literal prefix ends at this node, by subject. */
  rules: BySubject | undefined;
  children: Map<string, TrieNode> | undefined;
  /** The only child and its segment, when there is exactly one: a string comparison instead of a hash lookup. */
  onlyKey: string | undefined;
  only: TrieNode | undefined;
}

/** The rules of one domain. */
interface DomainRules {
  /** Rules with the pattern `*`. */
  readonly any: BySubject;
  readonly root: TrieNode;
}

/** A stored line and, for a p line, its compiled rule. */
interface Entry {
  readonly line: PolicyLine;
  /** Set for p lines that can match at all. */
  readonly rule: Rule | undefined;
}

/** What {@link PolicyEngine} `#check` found a rule to do for a request. */
const NO = 0;
const ALLOW = 1;
const DENY = 2;

/** Links with a count: distinct lines may make the same link (extra values beyond the model's are ignored). */
type Links = Map<string, Map<string, number>>;

/** What one evaluation found. */
interface Findings {
  deny: Rule | undefined;
  allow: Rule | undefined;
  /** Allow rules that matched everything but the required scope. */
  scopeless: Rule[];
}

/** One request as the evaluation needs it; token scopes and g2 reach are computed on first use. */
interface RequestContext {
  readonly domain: string;
  readonly object: string;
  readonly action: string;
  readonly scopes: readonly string[] | undefined;
  tokens: string[] | undefined;
  operations: ReadonlySet<string> | undefined;
}

/** Options of {@link PolicyEngine}. */
export interface PolicyEngineOptions {
  /** Bound of the decision cache; it is emptied when full. 0 disables it. Default 100,000. */
  cacheSize?: number;
}

function newNode(): TrieNode {
  return { rules: undefined, children: undefined, onlyKey: undefined, only: undefined };
}

function addRule(bySubject: BySubject, rule: Rule): void {
  const rules = bySubject.get(rule.subject);
  if (rules === undefined) bySubject.set(rule.subject, [rule]);
  else rules.push(rule);
}

/** Removes a rule, and its subject when it has no rules left there. */
function removeRule(bySubject: BySubject, rule: Rule): void {
  const rules = bySubject.get(rule.subject);
  if (rules === undefined) return;
  const at = rules.indexOf(rule);
  if (at >= 0) rules.splice(at, 1);
  if (rules.length === 0) bySubject.delete(rule.subject);
}

/** Keeps a node's single-child shortcut in step with its children. */
function updateOnly(node: TrieNode): void {
  const first = node.children?.size === 1 ? node.children.entries().next().value : undefined;
  if (first !== undefined) {
    [node.onlyKey, node.only] = first;
  } else {
    node.onlyKey = undefined;
    node.only = undefined;
  }
}

function addLink(links: Links, from: string, to: string): void {
  let out = links.get(from);
  if (out === undefined) links.set(from, (out = new Map()));
  out.set(to, (out.get(to) ?? 0) + 1);
}

function removeLink(links: Links, from: string, to: string): void {
  const out = links.get(from);
  const count = out?.get(to);
  if (out === undefined || count === undefined) return;
  if (count > 1) out.set(to, count - 1);
  else {
    out.delete(to);
    if (out.size === 0) links.delete(from);
  }
}

/** Nodes reachable from `start` in at most `depth` links, `start` first, in breadth-first order. */
function reachable(links: Links | undefined, start: string, depth: number): string[] {
  const seen = new Set<string>([start]);
  const order = [start];
  if (links === undefined) return order;
  let frontier = [start];
  for (let level = 0; level < depth && frontier.length; level++) {
    const next: string[] = [];
    for (const node of frontier) {
      const out = links.get(node);
      if (out === undefined) continue;
      for (const target of out.keys()) {
        if (seen.has(target)) continue;
        seen.add(target);
        order.push(target);
        next.push(target);
      }
    }
    frontier = next;
  }
  return order;
}

/** A cache key no two different requests share (every part is length-prefixed). */
function requestKey(request: DecisionRequest): string {
  const { subject, domain, object, action } = request;
  const scopes = request.scopes === undefined ? '' : request.scopes.join(' ');
  let key = `${subject.length}:${subject}${domain.length}:${domain}${object.length}:${object}${action.length}:${action}${scopes.length}:${scopes}`;
  const groups = request.groups;
  if (groups?.length) {
    key += `${groups.length}`;
    for (const group of groups) key += `:${group.length}:${group}`;
  }
  return key;
}

function checkShape(line: PolicyLine): void {
  const ok = line !== null && typeof line === 'object' && Array.isArray(line.values) && line.values.every((v) => typeof v === 'string')
    && (line.ptype === 'p' || (line.ptype === 'g' && line.values.length >= 2) || (line.ptype === 'g2' && line.values.length >= 3));
  if (!ok) throw new TypeError(`not a policy line: ${JSON.stringify(line)} (p, g with 2 values or g2 with 3 values, all strings)`);
}

/**
 * The indexed decision point. Lines are added and removed incrementally
 * (duplicates and absent lines are ignored, as Casbin's model does);
 * every change raises {@link PolicyEngine.version} and drops the caches.
 *
 * Decisions are exactly those of Casbin's Enforcer (`enforceSync`) on
 * policies/model.conf holding the same lines, for the request
 * (subject, domain, object, action, scopes joined by spaces), where the
 * request's `groups` count as extra `g, subject, group` lines.
 *
 * `allowed` caches decisions per request until the next change; a decision
 * is cached from the second time its request comes (within the last 8,192
 * distinct requests), so one-off requests do not displace the working set.
 */
export class PolicyEngine implements PolicyDecisionPoint {
  readonly #cacheSize: number;
  #entries = new Map<string, Entry>();
  #seq = 0;
  #version = 0;
  /** domain → object pattern prefix (a trie) → subject → rules. */
  #rules = new Map<string, DomainRules>();
  /** g: member → group. */
  #members: Links = new Map();
  /** g2: domain → method/operation → operation. */
  #operations = new Map<string, Links>();
  #decisions = new Map<string, boolean>();
  /** Decisions of recent requests, seen once so far. */
  #recent = new Map<string, boolean>();
  readonly #recentSize: number;
  #principals = new Map<string, readonly string[]>();
  #reach = new Map<string, readonly string[]>();
  #groupReach = new Map<string, readonly string[]>();
  #operationReach = new Map<string, ReadonlySet<string>>();

  constructor(lines: readonly PolicyLine[] = [], options: PolicyEngineOptions = {}) {
    this.#cacheSize = options.cacheSize ?? DEFAULT_CACHE_SIZE;
    this.#recentSize = Math.min(this.#cacheSize, RECENT_SIZE);
    this.add(lines);
    this.#version = 0;
  }

  /** Raised by every change of the rules and by {@link PolicyEngine.invalidate}. */
  get version(): number {
    return this.#version;
  }

  /**
   * Adds lines; lines already present are ignored. Throws a TypeError, and
   * changes nothing, when a line is not a p, g (2 values) or g2 (3 values)
   * line of strings.
   */
  add(lines: readonly PolicyLine[]): void {
    for (const line of lines) checkShape(line);
    let changed = false;
    for (const line of lines) changed = this.#insert(line) || changed;
    if (changed) this.#changed();
  }

  /** Removes lines; lines not present are ignored. */
  remove(lines: readonly PolicyLine[]): void {
    let changed = false;
    for (const line of lines) {
      const key = lineKey(line);
      const entry = this.#entries.get(key);
      if (entry === undefined) continue;
      this.#entries.delete(key);
      this.#unindex(entry);
      changed = true;
    }
    if (changed) this.#changed();
  }

  /** Replaces every line (one version step). Throws, changing nothing, on a malformed line (see {@link PolicyEngine.add}). */
  replaceAll(lines: readonly PolicyLine[]): void {
    for (const line of lines) checkShape(line);
    this.#entries = new Map();
    this.#rules = new Map();
    this.#members = new Map();
    this.#operations = new Map();
    for (const line of lines) this.#insert(line);
    this.#changed();
  }

  /** Every line, in insertion order (a removed and re-added line comes last, as in Casbin). */
  lines(): PolicyLine[] {
    return [...this.#entries.values()].map(({ line }) => ({ ptype: line.ptype, values: [...line.values] }));
  }

  /** Whether the line is present (values compared exactly). */
  has(line: PolicyLine): boolean {
    return this.#entries.has(lineKey(line));
  }

  /** Raises the version and drops cached decisions and principals: for changes the engine cannot see (memberships passed in requests). */
  invalidate(): void {
    this.#changed();
  }

  /** Whether the request is allowed (cached until the next change). */
  allowed(request: DecisionRequest): boolean {
    if (this.#cacheSize <= 0) return this.#evaluate(request, undefined);
    const key = requestKey(request);
    const cached = this.#decisions.get(key);
    if (cached !== undefined) return cached;
    // A decision enters the cache when its request comes again while it is
    // still among the recent ones: a stream of one-off requests then neither
    // flushes the cached working set nor fills the old generation of the heap.
    const recent = this.#recent.get(key);
    if (recent !== undefined) {
      if (this.#decisions.size >= this.#cacheSize) this.#decisions.clear();
      this.#decisions.set(key, recent);
      return recent;
    }
    const allowed = this.#evaluate(request, undefined);
    if (this.#recent.size >= this.#recentSize) this.#recent.clear();
    this.#recent.set(key, allowed);
    return allowed;
  }

  /**
   * The decision with why: `deny` names the first matching deny rule (in
   * insertion order), `allow` the first matching allow rule, `no_match`
   * lists the scopes that allow rules matching in all else required.
   * `principals` are what the subject resolved to. Not cached.
   */
  explain(request: DecisionRequest): Decision {
    const findings: Findings = { deny: undefined, allow: undefined, scopeless: [] };
    const allowed = this.#evaluate(request, findings);
    const principals = [...this.#principalsOf(request.subject, request.groups)];
    const copy = (rule: Rule): PolicyLine => ({ ptype: 'p', values: [...rule.line.values] });
    let explanation: Explanation;
    if (findings.deny) explanation = { outcome: 'deny', rule: copy(findings.deny), principals };
    else if (findings.allow) explanation = { outcome: 'allow', rule: copy(findings.allow), principals };
    else {
      const missing = findings.scopeless.sort((a, b) => a.seq - b.seq).map((rule) => rule.scope);
      explanation = { outcome: 'no_match', missingScopes: [...new Set(missing)], principals };
    }
    return { allowed, explanation };
  }

  #changed(): void {
    this.#version++;
    this.#decisions.clear();
    this.#recent.clear();
    this.#principals.clear();
    this.#reach.clear();
    this.#groupReach.clear();
    this.#operationReach.clear();
  }

  #insert(line: PolicyLine): boolean {
    const key = lineKey(line);
    if (this.#entries.has(key)) return false;
    const stored: PolicyLine = { ptype: line.ptype, values: [...line.values] };
    const v = stored.values;
    let rule: Rule | undefined;
    if (stored.ptype === 'g') addLink(this.#members, v[0]!, v[1]!);
    else if (stored.ptype === 'g2') {
      let links = this.#operations.get(v[2]!);
      if (links === undefined) this.#operations.set(v[2]!, (links = new Map()));
      addLink(links, v[0]!, v[1]!);
    } else {
      rule = this.#compile(stored);
      if (rule) this.#index(rule, v[1]!);
    }
    this.#entries.set(key, { line: stored, rule });
    return true;
  }

  /**
   * The rule a p line is to the matcher, or undefined when it can never
   * match. Casbin passes a value missing from a short line as undefined:
   * a missing subject, action or scope then behaves as '', a missing domain
   * or object never matches, and a missing or empty effect counts as allow
   * (Casbin only looks at p.eft when it is truthy); an effect other than
   * allow/deny makes a match count for nothing.
   */
  #compile(line: PolicyLine): Rule | undefined {
    const [subject = '', domain, object, action = '', effect, scope = ''] = line.values;
    if (domain === undefined) return undefined;
    const pattern = compileObjectPattern(object);
    if (pattern.kind === 'none') return undefined;
    const deny = effect === 'deny';
    if (!deny && effect !== undefined && effect !== '' && effect !== 'allow') return undefined;
    return {
      seq: this.#seq++,
      line,
      subject,
      pattern,
      action,
      actionAny: action === '*',
      actionPathScope: isPathScope(action),
      deny,
      scope,
    };
  }

  #index(rule: Rule, domain: string): void {
    let mine = this.#rules.get(domain);
    if (mine === undefined) this.#rules.set(domain, (mine = { any: new Map(), root: newNode() }));
    if (rule.pattern.kind === 'any') {
      addRule(mine.any, rule);
      return;
    }
    let node = mine.root;
    const { segments, literalPrefix } = rule.pattern;
    for (let i = 0; i < literalPrefix; i++) {
      node.children ??= new Map();
      let next = node.children.get(segments[i]!);
      if (next === undefined) {
        node.children.set(segments[i]!, (next = newNode()));
        updateOnly(node);
      }
      node = next;
    }
    node.rules ??= new Map();
    addRule(node.rules, rule);
  }

  #unindex(entry: Entry): void {
    const v = entry.line.values;
    if (entry.line.ptype === 'g') {
      removeLink(this.#members, v[0]!, v[1]!);
      return;
    }
    if (entry.line.ptype === 'g2') {
      const links = this.#operations.get(v[2]!);
      if (links === undefined) return;
      removeLink(links, v[0]!, v[1]!);
      if (links.size === 0) this.#operations.delete(v[2]!);
      return;
    }
    const rule = entry.rule;
    if (rule === undefined) return;
    const domain = v[1]!;
    const mine = this.#rules.get(domain);
    if (mine === undefined) return;
    if (rule.pattern.kind === 'any') {
      removeRule(mine.any, rule);
    } else {
      // Walk down, remembering the path, so emptied nodes can be pruned.
      const path: TrieNode[] = [mine.root];
      const { segments, literalPrefix } = rule.pattern;
      for (let i = 0; i < literalPrefix; i++) path.push(path[i]!.children!.get(segments[i]!)!);
      const node = path[literalPrefix]!;
      removeRule(node.rules!, rule);
      if (node.rules!.size === 0) node.rules = undefined;
      for (let i = literalPrefix; i > 0; i--) {
        const child = path[i]!;
        if (child.rules !== undefined || child.children !== undefined) break;
        const parent = path[i - 1]!;
        parent.children!.delete(segments[i - 1]!);
        if (parent.children!.size === 0) parent.children = undefined;
        updateOnly(parent);
      }
    }
    if (mine.any.size === 0 && mine.root.rules === undefined && mine.root.children === undefined) this.#rules.delete(domain);
  }

  /** What `node` reaches within `depth` g links (10 for a subject, 9 for a group named in a request). */
  #reachOf(node: string, depth: number): readonly string[] {
    const cache = depth === MAX_HIERARCHY_LEVEL ? this.#reach : this.#groupReach;
    let found = cache.get(node);
    if (found === undefined) {
      found = reachable(this.#members, node, depth);
      if (cache.size >= RESOLUTION_CACHE_SIZE) cache.clear();
      cache.set(node, found);
    }
    return found;
  }

  /**
   * The subject, the groups it reaches within 10 `g` links, and the groups
   * the request names with what they reach within the 9 links left.
   */
  #principalsOf(subject: string, groups: readonly string[] | undefined): readonly string[] {
    if (groups === undefined || groups.length === 0) return this.#reachOf(subject, MAX_HIERARCHY_LEVEL);
    let key = `${subject.length}:${subject}`;
    for (const group of groups) key += `${group.length}:${group}`;
    let found = this.#principals.get(key);
    if (found === undefined) {
      const all = new Set(this.#reachOf(subject, MAX_HIERARCHY_LEVEL));
      for (const group of groups) {
        for (const node of this.#reachOf(group, MAX_HIERARCHY_LEVEL - 1)) all.add(node);
      }
      found = [...all];
      if (this.#principals.size >= RESOLUTION_CACHE_SIZE) this.#principals.clear();
      this.#principals.set(key, found);
    }
    return found;
  }

  /** What g2 lets the request's action stand for in its domain (itself included). */
  #operationsOf(context: RequestContext): ReadonlySet<string> {
    const { domain, action } = context;
    const key = `${domain.length}:${domain}${action}`;
    let found = this.#operationReach.get(key);
    if (found === undefined) {
      found = new Set(reachable(this.#operations.get(domain), action, MAX_HIERARCHY_LEVEL));
      if (this.#operationReach.size >= RESOLUTION_CACHE_SIZE) this.#operationReach.clear();
      this.#operationReach.set(key, found);
    }
    return found;
  }

  /**
   * Evaluates a request. Without `findings` it stops at the first matching
   * deny; with them it looks at every candidate and records the first deny
   * and allow (in insertion order) and the allow rules missing only a scope.
   */
  #evaluate(request: DecisionRequest, findings: Findings | undefined): boolean {
    const mine = this.#rules.get(request.domain);
    if (mine === undefined) return false;
    const principals = this.#principalsOf(request.subject, request.groups);
    const context: RequestContext = {
      domain: request.domain,
      object: request.object,
      action: request.action,
      scopes: request.scopes,
      tokens: undefined,
      operations: undefined,
    };
    let allowed = false;
    let denied = false;
    if (mine.any.size !== 0) {
      for (const principal of principals) {
        const rules = mine.any.get(principal);
        if (rules === undefined) continue;
        for (const rule of rules) {
          const verdict = this.#check(rule, context, findings);
          if (verdict === DENY) {
            if (findings === undefined) return false;
            denied = true;
          } else if (verdict === ALLOW) allowed = true;
        }
      }
    }
    const segments = objectSegments(request.object);
    if (segments === undefined) return allowed && !denied;
    let node: TrieNode | undefined = mine.root;
    for (let depth = 0; ; depth++) {
      const bySubject = node.rules;
      if (bySubject !== undefined) {
        for (const principal of principals) {
          const rules = bySubject.get(principal);
          if (rules === undefined) continue;
          for (const rule of rules) {
            if (!matchObjectSegments(segments, rule.pattern, depth)) continue;
            const verdict = this.#check(rule, context, findings);
            if (verdict === DENY) {
              if (findings === undefined) return false;
              denied = true;
            } else if (verdict === ALLOW) allowed = true;
          }
        }
      }
      if (depth >= segments.length || node.children === undefined) break;
      const segment = segments[depth]!;
      node = node.only !== undefined ? (node.onlyKey === segment ? node.only : undefined) : node.children.get(segment);
      if (node === undefined) break;
    }
    return allowed && !denied;
  }

  /** The rest of the matcher (action and scope) for a rule whose subject, domain and object match. */
  #check(rule: Rule, context: RequestContext, findings: Findings | undefined): number {
    const action = rule.action;
    if (!(rule.actionAny || action === context.action || (context.operations ??= this.#operationsOf(context)).has(action)
      || (rule.actionPathScope && actionMatch(context.action, action)))) return NO;
    if (rule.scope !== '') {
      // Casbin sees the scopes joined by spaces and scopeMatch splits them again.
      context.tokens ??= (context.scopes ?? []).join(' ').split(' ');
      if (!scopeMatchTokens(context.tokens, rule.scope, context.object)) {
        if (findings !== undefined && !rule.deny) findings.scopeless.push(rule);
        return NO;
      }
    }
    if (findings !== undefined) {
      if (rule.deny) {
        if (findings.deny === undefined || rule.seq < findings.deny.seq) findings.deny = rule;
      } else if (findings.allow === undefined || rule.seq < findings.allow.seq) findings.allow = rule;
    }
    return rule.deny ? DENY : ALLOW;
  }
}
