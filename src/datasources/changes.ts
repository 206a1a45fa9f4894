/**
 * The steps of a data source change, run under the change lock: validate,
 * write the record, apply it on this replica, write its introspection client
 * and policy lines, announce. All or nothing: a refused step undoes the ones
 * before it.
 */
import { randomUUID } from 'node:crypto';
import type Provider from 'oidc-provider';
import type { PolicyService } from '../authz/policy-service.ts';
import type { PolicyLine } from '../authz/types.ts';
import type { DataSourceSpec } from '../config/datasource-schema.ts';
import type { Store } from '../store/store.ts';
import type { AppliedDataSources } from './applied.ts';
import { assertNoConflicts, type ConflictDeps } from './conflicts.ts';
import { createIntrospectionClient, deleteIntrospectionClient, type IntrospectionCredentials } from './introspection-client.ts';
import { addPolicyLines, planPolicyLines, removePolicyLines } from './policy-writes.ts';
import type { ChangeContext, DataSourceRecords, StoredDataSource } from './records.ts';
import type { DataSourceSync } from './sync.ts';
import { storedView, type DataSourceView } from './views.ts';

/** What a change answers: the data source, and introspection credentials when a secret was just made (shown once). */
export interface ChangeResult {
  view: DataSourceView;
  credentials?: IntrospectionCredentials | undefined;
  /** Policy lines added and removed by the change. */
  added: PolicyLine[];
  removed: PolicyLine[];
}

/** The parts a change writes to. */
export interface ChangeParts extends ConflictDeps {
  store: Store;
  policy: PolicyService;
  records: DataSourceRecords;
  applied: AppliedDataSources;
  sync: DataSourceSync;
  /** The current oidc-provider instance (introspection clients are its clients). */
  provider(): Provider;
}

/** Writes a new data source from a validated spec. */
export async function createDataSource(parts: ChangeParts, spec: DataSourceSpec, context: ChangeContext): Promise<ChangeResult> {
  await assertNoConflicts(parts, spec, undefined);
  const { records, applied, sync, policy } = parts;
  const now = new Date().toISOString();
  const record: StoredDataSource = { id: randomUUID(), spec, lines: [], createdVia: context.via, createdAt: now, updatedAt: now };
  const credentials = spec.introspection ? await newIntrospectionClient(parts, spec) : undefined;
  if (credentials) record.introspectionClientId = credentials.client_id;
  // Live here first: the policy checks that scope grants name a known audience and lines a known domain.
  await records.insert(record);
  applied.apply(record);
  let added: PolicyLine[];
  try {
    added = await addPolicyLines(policy, planPolicyLines([], spec).wanted);
  } catch (err) {
    // Nothing half-created: the record and its client go again.
    await records.drop(record.id);
    if (record.introspectionClientId) await deleteIntrospectionClient(parts.store, record.introspectionClientId);
    applied.withdraw(record);
    await sync.commit(record.id);
    throw err;
  }
  const final: StoredDataSource = { ...record, lines: added };
  await records.save(final);
  applied.apply(final);
  await sync.commit(record.id);
  return { view: storedView(parts.config.issuer, final), credentials, added, removed: [] };
}

/** Replaces the spec of a stored data source; its policy lines follow the new spec. */
export async function updateDataSource(parts: ChangeParts, current: StoredDataSource, spec: DataSourceSpec): Promise<ChangeResult> {
  await assertNoConflicts(parts, spec, current.id);
  const { records, applied, sync, policy, store } = parts;
  let credentials: IntrospectionCredentials | undefined;
  const next: StoredDataSource = { ...current, spec, updatedAt: new Date().toISOString() };
  if (spec.introspection && !current.introspectionClientId) {
    credentials = await newIntrospectionClient(parts, spec);
    next.introspectionClientId = credentials.client_id;
  } else if (!spec.introspection) {
    delete next.introspectionClientId;
  }
  await records.save(next);
  applied.apply(next);
  const plan = planPolicyLines(current.lines, spec);
  let added: PolicyLine[];
  let removed: PolicyLine[];
  try {
    added = await addPolicyLines(policy, plan.wanted);
  } catch (err) {
    await records.save(current);
    applied.apply(current);
    if (credentials) await deleteIntrospectionClient(store, credentials.client_id);
    await sync.commit(current.id);
    throw err;
  }
  try {
    removed = await removePolicyLines(policy, plan.stale);
  } catch (err) {
    // The new lines are in; the old ones are still owned so that a retry removes them.
    await records.save({ ...next, lines: [...current.lines, ...added] });
    throw err;
  }
  const final: StoredDataSource = { ...next, lines: [...plan.kept, ...added] };
  await records.save(final);
  applied.apply(final);
  if (current.introspectionClientId && !spec.introspection) await deleteIntrospectionClient(store, current.introspectionClientId);
  await sync.commit(current.id);
  return { view: storedView(parts.config.issuer, final), credentials, added, removed };
}

/** Removes a stored data source with its policy lines and introspection client. */
export async function removeDataSource(parts: ChangeParts, current: StoredDataSource): Promise<{ view: DataSourceView; removed: PolicyLine[] }> {
  const { records, applied, sync, policy, store } = parts;
  const view = storedView(parts.config.issuer, current);
  const removed = await removePolicyLines(policy, current.lines);
  if (current.introspectionClientId) await deleteIntrospectionClient(store, current.introspectionClientId);
  await records.drop(current.id);
  applied.withdraw(current);
  await sync.commit(current.id);
  return { view, removed };
}

/**
 * The input of an update as a whole record: a JSON merge patch (RFC 7396,
 * `null` removes a field, objects are replaced whole) of the current spec,
 * or a replacement that keeps the current name unless it gives one.
 */
export function updatedInput(current: DataSourceSpec, name: string, input: unknown, merge: boolean): unknown {
  const body = input && typeof input === 'object' && !Array.isArray(input) ? input as Record<string, unknown> : input;
  if (merge) return mergePatch(current, body);
  return body && typeof body === 'object' && !Array.isArray(body) && !('name' in body) ? { ...body, name } : body;
}

function mergePatch(current: DataSourceSpec, patch: unknown): unknown {
  if (!patch || typeof patch !== 'object' || Array.isArray(patch)) return patch;
  const merged: Record<string, unknown> = { ...current };
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete merged[key];
    else merged[key] = value;
  }
  return merged;
}

function newIntrospectionClient(parts: ChangeParts, spec: DataSourceSpec): Promise<IntrospectionCredentials> {
  return createIntrospectionClient(parts.provider(), parts.store, spec.name, spec.displayName ?? spec.name);
}
