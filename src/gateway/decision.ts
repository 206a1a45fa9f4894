/**
 * The decision step both enforcement points share: ask the policy decision
 * point, explain on demand, and turn a denial into a 403 with an audit event.
 */
import type { Context } from 'koa';
import type { DecisionRequest, Explanation, PolicyDecisionPoint } from '../authz/types.ts';
import type { Audit } from '../observability/audit.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { Authenticated } from './authenticate.ts';
import { AccessDenied } from './errors.ts';
import type { Identity } from './token-verifier.ts';
import { ADMIN_GROUP } from '../config/names.ts';

/** Request header an administrator sets to get the decision's explanation back. */
export const EXPLAIN_HEADER = 'X-Fedgate-Explain';

/** A service as the decision step sees it. */
export interface DecisionService {
  name: string;
  /** Policy domain (`service.domain ?? service.name`). */
  domain: string;
}

export interface DecisionDeps {
  pdp: PolicyDecisionPoint;
  audit: Audit;
  metrics?: Pick<Metrics, 'authzDecision'>;
}

/** The PDP request for an identity acting on a path (RFC 9110 method, decoded path). */
export function decisionRequest(identity: Identity, domain: string, method: string, path: string): DecisionRequest {
  return identity.username !== undefined
    ? { subject: `user:${identity.username}`, groups: identity.groups, domain, object: path, action: method, scopes: identity.scopes }
    : { subject: `client:${identity.clientId}`, domain, object: path, action: method, scopes: identity.scopes };
}

/** JSON for a header: compact, and ASCII only (Node refuses other characters in header values). */
function headerJson(value: unknown): string {
  return JSON.stringify(value).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/**
 * Decides whether the authenticated caller may apply `method` to `path` of
 * `service`. A caller in /admins that sends `X-Fedgate-Explain: true` gets
 * the explanation back in the response header of the same name (on allow and
 * on deny); anyone else's header is ignored.
 *
 * @throws AccessDenied (403) when the policy does not allow it; with the
 *   missing scopes (RFC 6750 §3.1 insufficient_scope) when nothing matched
 *   but a rule would have with more scope. Denials are audited as `authz.denied`.
 */
export function authorize(ctx: Context, deps: DecisionDeps, auth: Authenticated, service: DecisionService, method: string, path: string): void {
  const { identity } = auth;
  const request = decisionRequest(identity, service.domain, method, path);
  const explainAsked = ctx.get(EXPLAIN_HEADER).toLowerCase() === 'true' && identity.effectiveGroups.includes(ADMIN_GROUP);
  const allowed = deps.pdp.allowed(request);
  deps.metrics?.authzDecision(service.name, allowed ? 'allow' : 'deny');
  if (allowed && !explainAsked) return;

  const explanation: Explanation | undefined = deps.pdp.explain(request).explanation;
  if (explainAsked) ctx.set(EXPLAIN_HEADER, headerJson(explanation ?? null));
  if (allowed) return;

  void deps.audit.record({
    type: 'authz.denied',
    actor: identity.accountId ?? `client:${identity.clientId}`,
    outcome: 'failure',
    ip: ctx.ip,
    client: identity.clientId,
    detail: {
      service: service.name,
      method,
      path,
      outcome: explanation?.outcome ?? 'no_match',
      rule: explanation?.rule ? [explanation.rule.ptype, ...explanation.rule.values].join(', ') : null,
    },
  });
  const missing = explanation?.outcome === 'no_match' ? explanation.missingScopes : undefined;
  const err = new AccessDenied(`the policy does not allow ${method} ${path}`, missing);
  err.scheme = auth.scheme;
  throw err;
}
