/**
 * The decision point's vocabulary, shared by the engine (authz/), the
 * enforcement points (gateway/, token issuance) and the admin API. Nothing
 * here knows HTTP.
 */

/** Policy domains: one per platform service, plus the scope policy. */
export const ACCESS_DOMAINS = ['orchestrator', 'data', 'ml', 'sync'] as const;
export const SCOPE_DOMAIN = 'scopes';
/**
 * Token exchange (RFC 8693), what a requesting client may obtain:
 * `p, client:<id>, exchange, <audience|*>, delegate|impersonate|outlive|offline_access|<scope>|*, allow|deny`.
 */
export const EXCHANGE_DOMAIN = 'exchange';
/**
 * Token exchange, whose tokens a client may exchange:
 * `p, <group|user:<name>|client:<id>>, exchange-by, <client:<id>|*>, delegate|impersonate|*, allow|deny`.
 */
export const EXCHANGE_BY_DOMAIN = 'exchange-by';
export const DOMAINS = [...ACCESS_DOMAINS, SCOPE_DOMAIN, EXCHANGE_DOMAIN, EXCHANGE_BY_DOMAIN] as const;
export type Domain = (typeof DOMAINS)[number];

/**
 * One stored policy line, as Casbin sees it: `ptype` and its values.
 * - `p`:  [subject, domain, object, action, effect, scope] (always six values; scope may be '')
 * - `g`:  [member, group]
 * - `g2`: [method, operation, domain]
 */
export interface PolicyLine {
  ptype: 'p' | 'g' | 'g2';
  values: string[];
}

/** A request to the decision point (the Casbin request r = sub, dom, obj, act, scp). */
export interface DecisionRequest {
  /** `user:<username>`, `client:<client_id>` or a group path. */
  subject: string;
  /**
   * Direct groups of the subject known outside the policy (an account's
   * groups). They count as `g, subject, group` lines; their ancestors follow
   * from the group hierarchy lines.
   */
  groups?: readonly string[];
  domain: string;
  /** A normalised path (`/store/cms/file`) or, in the scopes domain, an audience. */
  object: string;
  /** An HTTP method (upper case), a named operation, or a scope. */
  action: string;
  /** The token's scopes. */
  scopes?: readonly string[];
}

/** Why a decision came out as it did. */
export interface Explanation {
  /** `allow`: an allow rule matched and no deny; `deny`: a deny rule matched; `no_match`: nothing matched (default deny). */
  outcome: 'allow' | 'deny' | 'no_match';
  /** The deciding rule: the deny rule, or an allow rule that matched. */
  rule?: PolicyLine;
  /**
   * Allow rules that matched everything but their required scope: a 403
   * can then say which scope was missing (RFC 6750 insufficient_scope).
   */
  missingScopes?: string[];
  /** The principals the subject resolved to (itself, its groups, their ancestors). */
  principals?: string[];
}

export interface Decision {
  allowed: boolean;
  explanation?: Explanation;
}

/** What the enforcement points need from the decision point. */
export interface PolicyDecisionPoint {
  /** Fast path: allowed or not (cached per policy version). */
  allowed(request: DecisionRequest): boolean;
  /** The decision with its explanation (not cached; for 403 bodies, the admin API and tests). */
  explain(request: DecisionRequest): Decision;
}
