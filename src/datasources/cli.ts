/**
 * `npm run fedgate -- datasource add|list|show|remove|rotate-secret`: the
 * data source commands for operators on a host that sees the deployment's
 * store (REDIS_URL) and configuration. They act through the same registry as
 * the admin API, so running replicas pick a change up within a second.
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { ruleToJson } from '../authz/rules-json.ts';
import { DataSourceError } from './errors.ts';
import { onboardingBundle } from './onboarding.ts';
import type { ChangeContext } from './records.ts';
import type { DataSources } from './registry.ts';
import { FedgateError } from '../util/errors.ts';

export const DATASOURCE_USAGE = `  datasource add --name NAME --audience URI [options]
                                    onboard a data source; prints the onboarding bundle (JSON)
                                    with the introspection secret, shown this once
      --kind storage|compute|ml|sync|other   --display-name TEXT
      --base-path /PATH             storage: WLCG storage scopes rooted here
      --scope SCOPE ...             scopes it accepts (repeat)
      --profile wlcg|aarc|groups    --token-ttl SECONDS   --format jwt|opaque
      --upstream URL                proxy /api/NAME/* to it   --host HOST ... (Traefik, Envoy)
      --domain DOMAIN               policy domain (default: the name)
      --policy GROUP:PATH:ACTION[:SCOPE][:allow|deny] ...   default access rules
      --grant GROUP:SCOPE ...       who may get which of its scopes in tokens
      --introspection               its own introspection client (opaque tokens)
      --file FILE                   the whole record from a JSON or YAML file
  datasource list [--json]          every data source (configured ones are read-only)
  datasource show NAME              one data source with its onboarding bundle (no secret)
  datasource remove NAME            remove it: no new tokens, route and policies gone
  datasource rotate-secret NAME     a new introspection client secret
`;

/** A parsed `datasource` command line. */
export type DatasourceCommand =
  | { action: 'add'; input: Record<string, unknown> | undefined; file: string | undefined }
  | { action: 'list'; json: boolean }
  | { action: 'show' | 'remove' | 'rotate-secret'; name: string };

/** Bad command-line input (exit status 2). */
export class UsageError extends FedgateError {
  constructor(message: string) {
    super('usage', message);
  }
}

/** `GROUP:PATH:ACTION[:SCOPE][:allow|deny]` → a default policy. */
function policyArg(value: string): Record<string, string> {
  const parts = value.split(':');
  if (parts.length < 3) throw new UsageError(`--policy ${value}: expected GROUP:PATH:ACTION[:SCOPE][:allow|deny]`);
  const [group, path, action, ...rest] = parts as [string, string, string, ...string[]];
  const last = rest.at(-1);
  const effect = last === 'allow' || last === 'deny' ? rest.pop() : undefined;
  const scope = rest.join(':');
  return { group, path, action, ...(scope ? { scope } : {}), ...(effect ? { effect } : {}) };
}

/** `GROUP:SCOPE` → a scope grant (the scope may hold colons: storage.read:/data). */
function grantArg(value: string): Record<string, string> {
  const cut = value.indexOf(':');
  if (cut < 1 || cut === value.length - 1) throw new UsageError(`--grant ${value}: expected GROUP:SCOPE`);
  return { group: value.slice(0, cut), scope: value.slice(cut + 1) };
}

/**
 * Parses the arguments after `datasource`.
 *
 * @throws UsageError
 */
export function parseDatasourceCommand(argv: string[]): DatasourceCommand {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        name: { type: 'string' }, audience: { type: 'string' }, kind: { type: 'string' }, 'display-name': { type: 'string' },
        'base-path': { type: 'string' }, scope: { type: 'string', multiple: true }, profile: { type: 'string' },
        'token-ttl': { type: 'string' }, format: { type: 'string' }, upstream: { type: 'string' }, host: { type: 'string', multiple: true },
        domain: { type: 'string' }, policy: { type: 'string', multiple: true }, grant: { type: 'string', multiple: true },
        introspection: { type: 'boolean' }, file: { type: 'string' }, json: { type: 'boolean' },
      },
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const { positionals, values } = parsed;
  const [action, name] = positionals;
  if (action === 'list') return { action, json: values.json ?? false };
  if ((action === 'show' || action === 'remove' || action === 'rotate-secret') && name) return { action, name };
  if (action !== 'add') throw new UsageError(`unknown datasource command${action ? ` ${action}` : ''}`);
  const input: Record<string, unknown> = {};
  if (values.name !== undefined) input.name = values.name;
  if (values.audience !== undefined) input.audience = values.audience;
  if (values.kind !== undefined) input.kind = values.kind;
  if (values['display-name'] !== undefined) input.displayName = values['display-name'];
  if (values['base-path'] !== undefined) input.storage = { basePath: values['base-path'] };
  if (values.scope) input.scopes = values.scope;
  if (values.profile !== undefined) input.profile = values.profile;
  if (values['token-ttl'] !== undefined) input.accessTokenTtl = /^\d+$/.test(values['token-ttl']) ? Number(values['token-ttl']) : values['token-ttl'];
  if (values.format !== undefined) input.accessTokenFormat = values.format;
  if (values.upstream !== undefined) input.upstream = values.upstream;
  if (values.host) input.hosts = values.host;
  if (values.domain !== undefined) input.domain = values.domain;
  if (values.policy) input.defaultPolicies = values.policy.map(policyArg);
  if (values.grant) input.scopeGrants = values.grant.map(grantArg);
  if (values.introspection) input.introspection = true;
  if (values.file === undefined && !Object.keys(input).length) throw new UsageError('datasource add needs --name and --audience (or --file)');
  return { action, input: Object.keys(input).length ? input : undefined, file: values.file };
}

/** Where a command writes. */
export interface CommandOutput {
  out(text: string): void;
  err(text: string): void;
}

/**
 * Runs a parsed command against a deployment; returns the exit status
 * (0 done, 1 not found or refused, 2 invalid input).
 */
export async function runDatasourceCommand(command: DatasourceCommand, dataSources: DataSources, issuer: string, io: CommandOutput): Promise<number> {
  const context: ChangeContext = { actor: 'cli', via: 'cli' };
  try {
    switch (command.action) {
      case 'list': {
        const all = dataSources.list();
        if (command.json) {
          io.out(`${JSON.stringify(all.map((v) => ({ ...v.spec, effective: v.effective, source: v.source, readOnly: v.readOnly })), null, 2)}\n`);
          return 0;
        }
        for (const v of all) {
          const where = v.effective.gatewayUrl ? `/api/${v.spec.name} -> ${v.spec.upstream}` : '/authz only';
          io.out(`${v.spec.name}\t${v.spec.audience}\t${v.spec.kind}\t${where}\t${v.readOnly ? 'config (read-only)' : `store (${v.createdVia})`}\n`);
        }
        return 0;
      }
      case 'show': {
        const view = dataSources.get(command.name);
        if (!view) {
          io.err(`fedgate: no data source ${command.name}\n`);
          return 1;
        }
        io.out(`${JSON.stringify({ ...view.spec, effective: view.effective, source: view.source, readOnly: view.readOnly, managedRules: view.lines.map(ruleToJson), onboarding: onboardingBundle(issuer, view) }, null, 2)}\n`);
        return 0;
      }
      case 'add': {
        let input: unknown = command.input ?? {};
        if (command.file) {
          const text = await readFile(command.file, 'utf8').catch((err: NodeJS.ErrnoException) => {
            throw new UsageError(`--file ${command.file}: cannot read it (${err.code ?? 'error'})`);
          });
          let fromFile: unknown;
          try {
            fromFile = parseYaml(text);
          } catch {
            throw new UsageError(`--file ${command.file}: not valid JSON or YAML`);
          }
          if (!fromFile || typeof fromFile !== 'object' || Array.isArray(fromFile)) throw new UsageError(`--file ${command.file}: expected one data source record (an object)`);
          input = { ...fromFile, ...command.input };
        }
        const result = await dataSources.create(input, context);
        io.out(`${JSON.stringify(onboardingBundle(issuer, result.view, result.credentials), null, 2)}\n`);
        if (result.credentials) io.err(`the introspection client secret is shown this once; keep it now (a new one: datasource rotate-secret ${result.view.spec.name})\n`);
        return 0;
      }
      case 'remove': {
        await dataSources.remove(command.name, context);
        io.out(`${command.name} removed\n`);
        return 0;
      }
      case 'rotate-secret': {
        const credentials = await dataSources.rotateIntrospectionSecret(command.name, context);
        io.out(`${JSON.stringify(credentials, null, 2)}\n`);
        return 0;
      }
    }
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`fedgate: ${err.message}\n`);
      return 2;
    }
    if (err instanceof DataSourceError) {
      const lines = err.problems.length ? err.problems.map((p) => `${p.field}: ${p.message}`) : [err.message];
      for (const line of lines) io.err(`fedgate: ${line}\n`);
      return err.code === 'invalid_request' ? 2 : 1;
    }
    throw err;
  }
}
