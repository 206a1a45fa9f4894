/** The audit trail of data source changes (`admin.change` events on `resource-server:<name>`). */
import type { PolicyLine } from '../authz/types.ts';
import type { Audit } from '../observability/audit.ts';
import { DataSourceError } from './errors.ts';
import type { ChangeContext } from './records.ts';
import type { DataSourceView } from './views.ts';

/** Records a successful change: the spec before and after, and how many policy lines it added and removed. */
export async function auditChange(audit: Audit, context: ChangeContext, action: string, name: string, before: DataSourceView | null, after: DataSourceView | null, diff: { added: PolicyLine[]; removed: PolicyLine[] }): Promise<void> {
  await audit.record({
    type: 'admin.change', actor: context.actor, outcome: 'success', ip: context.ip, target: `resource-server:${name}`,
    detail: {
      action, via: context.via,
      before: before ? { ...before.spec, introspectionClientId: before.introspectionClientId } : null,
      after: after ? { ...after.spec, introspectionClientId: after.introspectionClientId } : null,
      policy_added: diff.added.length, policy_removed: diff.removed.length,
    },
  });
}

/** Records a new introspection client secret (never the secret). */
export async function auditSecretRotation(audit: Audit, context: ChangeContext, name: string, clientId: string): Promise<void> {
  await audit.record({
    type: 'admin.change', actor: context.actor, outcome: 'success', ip: context.ip, client: clientId, target: `resource-server:${name}`,
    detail: { action: 'rotate_introspection_secret', via: context.via },
  });
}

/** Records a refused change (only data source errors: anything else is not the caller's doing). */
export async function auditFailure(audit: Audit, context: ChangeContext, action: string, name: unknown, err: unknown): Promise<void> {
  if (!(err instanceof DataSourceError)) return;
  await audit.record({
    type: 'admin.change', actor: context.actor, outcome: 'failure', ip: context.ip, target: `resource-server:${typeof name === 'string' ? name.slice(0, 100) : '?'}`,
    detail: { action, via: context.via, error: err.code, problems: err.problems.slice(0, 20) },
  });
}
