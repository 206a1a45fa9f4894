/**
 * The configuration's `dataSources`: checked against the rest of the
 * configuration, and written to the store once each (later edits through the
 * API or the command line are not overwritten at the next start).
 */
import type { Config } from '../config/schema.ts';
import { ConfigError } from '../config/index.ts';
import type { Audit } from '../observability/audit.ts';
import type { Logger } from '../observability/logger.ts';
import { auditChange } from './change-audit.ts';
import { createDataSource, type ChangeParts } from './changes.ts';
import { DataSourceError } from './errors.ts';
import type { ChangeContext } from './records.ts';

const CONFIG_CONTEXT: ChangeContext = { actor: 'config', via: 'config' };

/**
 * @throws ConfigError when a seed has the name or audience of a configured resource server or service.
 */
export function checkSeeds(config: Config, isConfiguredName: (name: string) => boolean, configuredAudiences: ReadonlySet<string>): void {
  const problems: string[] = [];
  config.dataSources.forEach((ds, i) => {
    if (isConfiguredName(ds.name)) problems.push(`dataSources.${i}.name: ${ds.name} is already a configured resource server or gateway service`);
    if (configuredAudiences.has(ds.audience)) problems.push(`dataSources.${i}.audience: ${ds.audience} is already a configured resource server`);
  });
  if (problems.length) throw new ConfigError('dataSources', problems);
}

/**
 * Writes the seeds not written before, under the change lock.
 *
 * @throws ConfigError when a seed is invalid.
 */
export async function writeSeeds(parts: ChangeParts, audit: Audit, logger: Logger): Promise<void> {
  const { config, records, applied, sync } = parts;
  if (!config.dataSources.length) return;
  const seeded = await records.seeded();
  const pending = config.dataSources.filter((ds) => !seeded.has(ds.name));
  if (!pending.length) return;
  const problems: string[] = [];
  await records.locked(async () => {
    await sync.reload();
    const again = await records.seeded();
    for (const spec of pending) {
      if (again.has(spec.name)) continue;
      const index = config.dataSources.indexOf(spec);
      const taken = [...applied.records()].find((r) => r.spec.name === spec.name || r.spec.audience === spec.audience);
      if (taken) {
        // The store holds the truth: a data source created meanwhile (API, CLI) is not replaced.
        logger.warn({ name: spec.name, existing: taken.spec.name }, 'configured data source not seeded: the store already has one with its name or audience');
      } else {
        try {
          const result = await createDataSource(parts, spec, CONFIG_CONTEXT);
          await auditChange(audit, CONFIG_CONTEXT, 'create', spec.name, null, result.view, result);
          logger.info({ name: spec.name, audience: spec.audience }, 'data source seeded from configuration');
        } catch (err) {
          if (!(err instanceof DataSourceError)) throw err;
          problems.push(...(err.problems.length ? err.problems.map((p) => `dataSources.${index}.${p.field}: ${p.message}`) : [`dataSources.${index}: ${err.message}`]));
          continue;
        }
      }
      await records.markSeeded(spec.name);
    }
  });
  if (problems.length) throw new ConfigError('dataSources', problems);
}
