/**
 * The policy lines a data source owns: added and removed through the policy
 * service, whose refusals become data source errors.
 */
import { PolicyBusyError, PolicyValidationError, type PolicyService } from '../authz/policy-service.ts';
import { lineKey } from '../authz/rules.ts';
import type { PolicyLine } from '../authz/types.ts';
import type { DataSourceSpec } from '../config/datasource-schema.ts';
import { DataSourceError } from './errors.ts';
import { policyLinesOf } from './spec.ts';

/** Runs a policy change, turning its refusals into data source errors. */
async function policyChange<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if (err instanceof PolicyValidationError) throw new DataSourceError('invalid_request', err.problems.map((message) => ({ field: 'defaultPolicies', message })));
    if (err instanceof PolicyBusyError) throw new DataSourceError('temporarily_unavailable', err.message);
    throw err;
  }
}

/** Adds `lines`; answers those that were not there before. */
export async function addPolicyLines(policy: PolicyService, lines: PolicyLine[]): Promise<PolicyLine[]> {
  return (await policyChange(() => policy.add(lines))).added;
}

/** Removes `lines`; answers those that were there. */
export async function removePolicyLines(policy: PolicyService, lines: PolicyLine[]): Promise<PolicyLine[]> {
  return (await policyChange(() => policy.remove(lines))).removed;
}

/** What a spec change does to the lines a record owns. */
export interface PolicyLinePlan {
  /** Every line the new spec wants. */
  wanted: PolicyLine[];
  /** Owned lines the new spec no longer wants. */
  stale: PolicyLine[];
  /** Owned lines the new spec still wants. */
  kept: PolicyLine[];
}

export function planPolicyLines(owned: PolicyLine[], spec: DataSourceSpec): PolicyLinePlan {
  const wanted = policyLinesOf(spec).map((l) => l.line);
  const wantedKeys = new Set(wanted.map(lineKey));
  return {
    wanted,
    stale: owned.filter((l) => !wantedKeys.has(lineKey(l))),
    kept: owned.filter((l) => wantedKeys.has(lineKey(l))),
  };
}
