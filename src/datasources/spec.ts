/**
 * What a data source record turns into: the resource server fedgate issues
 * tokens for, the gateway service that fronts it, and the policy lines it
 * brings (named operations, default access rules, scope grants). Pure
 * functions: the registry (registry.ts) applies and stores the results.
 */
import { validateLine } from '../authz/rules.ts';
import type { PolicyLine } from '../authz/types.ts';
import {
  dataSourceSchema, OPERATION_METHODS,
  type DataSourceKind, type DataSourceSpec,
} from '../config/datasource-schema.ts';
import type { ResourceServerConfig, ServiceConfig } from '../config/schema.ts';
import { scopeCovered, WLCG_COMPUTE_SCOPES, WLCG_STORAGE_CAPABILITIES } from '../scopes/wlcg.ts';
import { DataSourceError, type FieldProblem } from './errors.ts';

/** The policy domain of scope rules (src/authz/types.ts SCOPE_DOMAIN). */
const SCOPE_DOMAIN = 'scopes';

type Method = (typeof OPERATION_METHODS)[number];

/** Named operations of a data source's policy domain when the record names none, by kind (as the demo's services use them). */
export const DEFAULT_OPERATIONS: Record<DataSourceKind, Record<string, Method[]>> = {
  storage: { read: ['GET', 'HEAD'], write: ['PUT', 'POST', 'PATCH', 'DELETE'] },
  sync: { read: ['GET', 'HEAD'], write: ['PUT', 'POST', 'PATCH', 'DELETE'] },
  other: { read: ['GET', 'HEAD'], write: ['PUT', 'POST', 'PATCH', 'DELETE'] },
  compute: { read: ['GET', 'HEAD'], deploy: ['POST', 'PUT'], undeploy: ['DELETE'] },
  ml: { read: ['GET', 'HEAD'], inference: ['POST'], training: ['POST'] },
};

/** One line a data source brings, with the record field it comes from (for error messages). */
export interface SourcedLine {
  line: PolicyLine;
  field: string;
}

/** The validated record for `input`, or a DataSourceError naming every bad field. */
export function parseDataSource(input: unknown): DataSourceSpec {
  const parsed = dataSourceSchema.safeParse(input);
  if (parsed.success) return parsed.data;
  const problems: FieldProblem[] = parsed.error.issues.map((issue) => ({
    field: issue.path.length ? issue.path.map(String).join('.') : '(body)',
    message: issue.code === 'unrecognized_keys' ? `unknown field(s) ${issue.keys.join(', ')}` : issue.message,
  }));
  throw new DataSourceError('invalid_request', problems);
}

/** The policy domain its requests are decided in. */
export function domainOf(spec: Pick<DataSourceSpec, 'name' | 'domain'>): string {
  return spec.domain ?? spec.name;
}

/** `jwt` unless said otherwise; `opaque` for a data source that introspects. */
export function accessTokenFormatOf(spec: Pick<DataSourceSpec, 'accessTokenFormat' | 'introspection'>): 'jwt' | 'opaque' {
  return spec.accessTokenFormat ?? (spec.introspection ? 'opaque' : 'jwt');
}

/**
 * The scopes it accepts: the explicit list, plus the WLCG storage
 * capabilities at its base path (WLCG profile §2.2.1, `storage.read:/data`
 * covers `storage.read:/data/cms`), plus, for a compute data source without
 * an explicit list, the WLCG compute capabilities.
 */
export function effectiveScopes(spec: Pick<DataSourceSpec, 'kind' | 'scopes' | 'storage'>): string[] {
  const scopes = new Set(spec.scopes ?? []);
  if (spec.storage) {
    const base = spec.storage.basePath === '/' ? '/' : spec.storage.basePath.replace(/\/+$/, '');
    for (const capability of WLCG_STORAGE_CAPABILITIES) scopes.add(`${capability}:${base}`);
  }
  if (spec.kind === 'compute' && !spec.scopes?.length) for (const scope of WLCG_COMPUTE_SCOPES) scopes.add(scope);
  return [...scopes];
}

/** Its named operations: the record's, else the defaults of its kind. */
export function operationsOf(spec: Pick<DataSourceSpec, 'kind' | 'operations'>): Record<string, Method[]> {
  return spec.operations && Object.keys(spec.operations).length ? spec.operations : DEFAULT_OPERATIONS[spec.kind];
}

/** The resource server it is for oidc-provider (getResourceServerInfo). */
export function resourceServerOf(spec: DataSourceSpec): ResourceServerConfig {
  return {
    audience: spec.audience,
    name: spec.displayName ?? spec.name,
    kind: spec.kind,
    scopes: effectiveScopes(spec),
    profile: spec.profile,
    ...(spec.accessTokenTtl !== undefined ? { accessTokenTtl: spec.accessTokenTtl } : {}),
    accessTokenFormat: accessTokenFormatOf(spec),
    signingAlg: spec.signingAlg,
    ...(storageBasePathOf(spec) ? { storageBasePath: storageBasePathOf(spec)! } : {}),
  };
}

/** The base path its tokens' storage paths are relative to (WLCG profile §2.2.3), or undefined for `/`. */
export function storageBasePathOf(spec: Pick<DataSourceSpec, 'storage'>): string | undefined {
  const base = spec.storage?.basePath.replace(/\/+$/, '');
  return base ? base : undefined;
}

/** The gateway service that fronts it (`/authz` always, `/api/<name>` with an upstream). */
export function serviceOf(spec: DataSourceSpec): ServiceConfig {
  return {
    name: spec.name,
    ...(spec.domain ? { domain: spec.domain } : {}),
    audience: spec.audience,
    ...(spec.upstream ? { upstream: spec.upstream } : {}),
    hosts: spec.hosts,
    authzHeaders: spec.authzHeaders,
    timeoutSeconds: spec.timeoutSeconds,
    forwardToken: spec.forwardToken,
  };
}

/**
 * The policy lines it brings: `g2` lines for its named operations, `p`
 * lines for its default access rules (in its domain), and scope grants
 * (`p, <group>, scopes, <audience>, <scope>, allow`).
 */
export function policyLinesOf(spec: DataSourceSpec): SourcedLine[] {
  const domain = domainOf(spec);
  const lines: SourcedLine[] = [];
  const operations = operationsOf(spec);
  for (const [operation, methods] of Object.entries(operations)) {
    for (const method of new Set(methods)) lines.push({ line: { ptype: 'g2', values: [method, operation, domain] }, field: `operations.${operation}` });
  }
  spec.defaultPolicies.forEach((rule, i) => {
    lines.push({ line: { ptype: 'p', values: [rule.group, domain, rule.path, rule.action, rule.effect, rule.scope ?? ''] }, field: `defaultPolicies.${i}` });
  });
  spec.scopeGrants.forEach((grant, i) => {
    lines.push({ line: { ptype: 'p', values: [grant.group, SCOPE_DOMAIN, spec.audience, grant.scope, 'allow', ''] }, field: `scopeGrants.${i}` });
  });
  return lines;
}

/**
 * Syntax problems of its lines (`domains`: the policy domains that exist,
 * its own included), and references to groups `groupExists` denies. A
 * default rule's action must be an HTTP method, `*` or one of its operations.
 */
export async function policyProblems(spec: DataSourceSpec, domains: ReadonlySet<string>, groupExists: (path: string) => Promise<boolean>): Promise<FieldProblem[]> {
  const problems: FieldProblem[] = [];
  const withOwn = new Set([...domains, domainOf(spec), SCOPE_DOMAIN]);
  const operations = new Set(Object.keys(operationsOf(spec)));
  const methods = new Set<string>(OPERATION_METHODS);
  for (const { line, field } of policyLinesOf(spec)) {
    const problem = validateLine(line, withOwn);
    if (problem) problems.push({ field, message: problem });
  }
  spec.defaultPolicies.forEach((rule, i) => {
    if (rule.action !== '*' && !methods.has(rule.action) && !operations.has(rule.action)) {
      problems.push({ field: `defaultPolicies.${i}.action`, message: `${rule.action} is not an HTTP method, * or an operation of this data source (${[...operations].join(', ')})` });
    }
  });
  spec.scopeGrants.forEach((grant, i) => {
    if (!scopeCovered(grant.scope, effectiveScopes(spec))) {
      problems.push({ field: `scopeGrants.${i}.scope`, message: `${grant.scope} is not a scope this data source accepts (${effectiveScopes(spec).join(' ') || 'none'})` });
    }
  });
  const groups = new Map<string, string>();
  spec.defaultPolicies.forEach((rule, i) => { if (!groups.has(rule.group)) groups.set(rule.group, `defaultPolicies.${i}.group`); });
  spec.scopeGrants.forEach((grant, i) => { if (!groups.has(grant.group)) groups.set(grant.group, `scopeGrants.${i}.group`); });
  for (const [group, field] of groups) {
    if (!(await groupExists(group))) problems.push({ field, message: `group ${group} does not exist` });
  }
  return problems;
}

