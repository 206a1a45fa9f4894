import { parseArgs } from 'node:util';
import { createFedgate } from '../app.ts';
import { createInitialAccessToken } from '../admin/routes.ts';
import { hashPassword } from '../accounts/accounts.ts';
import { ConfigError, loadConfig, type Config } from '../config/index.ts';
import { createLogger } from '../observability/logger.ts';
import { loadOrCreateKeys, rotateKeys } from '../keys/index.ts';
import { DATASOURCE_USAGE, parseDatasourceCommand, runDatasourceCommand, UsageError, type DatasourceCommand } from '../datasources/cli.ts';
import { readStoredDataSources } from '../datasources/index.ts';
import { createStore } from '../store/index.ts';

const USAGE = `usage: npm run fedgate -- <command>

  keys rotate                       publish a new signing key and sign with it; keep the old
                                    one in the JWKS until every token it signed has expired
  keys list                         show signing keys (kid, algorithm, state, dates)
  initial-access-token create [--ttl SECONDS]
                                    create a token that allows one dynamic client registration
                                    (RFC 7591) until it expires (default 24 h)
  accounts disable|enable <username>
                                    disable (revoking its grants) or re-enable an account
  hash-password                     read a password on stdin, print its argon2id hash
${DATASOURCE_USAGE}`;

/** Seconds after which no token signed by a retired key can still be valid (data sources in the store included). */
async function signedTokenHorizon(config: Config): Promise<number> {
  const rsTtls = [...config.resourceServers, ...config.dataSources].map((rs) => rs.accessTokenTtl ?? 0);
  if (config.redisUrl) {
    const store = createStore({ redisUrl: config.redisUrl });
    try {
      rsTtls.push(...(await readStoredDataSources(store)).map((ds) => ds.spec.accessTokenTtl ?? 0));
    } catch (err) {
      process.stderr.write(`fedgate: warning: the data sources could not be read (${(err as Error).message}); their token lifetimes are not counted (at most 7 days)\n`);
    } finally {
      await store.close().catch(() => {});
    }
  }
  const clientTtls = config.clients.map((c) => c.accessTokenTtl ?? 0);
  const { accessToken, idToken, clientCredentials } = config.lifetimes;
  // Plus a margin for replicas that have not yet noticed the rotation, and clock skew.
  return Math.max(accessToken, idToken, clientCredentials, ...rsTtls, ...clientTtls) + 300;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

async function main(argv: string[]): Promise<number> {
  // The datasource commands have options of their own.
  let datasource: DatasourceCommand | undefined;
  if (argv[0] === 'datasource' && !argv.includes('--help') && !argv.includes('-h')) {
    try {
      datasource = parseDatasourceCommand(argv.slice(1));
    } catch (err) {
      if (!(err instanceof UsageError)) throw err;
      process.stderr.write(`fedgate: ${err.message}\n${USAGE}`);
      return 2;
    }
  }
  const { positionals, values } = datasource
    ? { positionals: ['datasource'], values: { ttl: undefined, help: false } }
    : parseArgs({ args: argv, allowPositionals: true, options: { ttl: { type: 'string' }, help: { type: 'boolean', short: 'h' } } });
  const [group, action, arg] = positionals;
  if (values.help || !group) {
    process.stdout.write(USAGE);
    return values.help ? 0 : 2;
  }
  if (group === 'hash-password') {
    const password = await readStdin();
    if (!password) { process.stderr.write('fedgate: empty password\n'); return 2; }
    process.stdout.write(`${await hashPassword(password)}\n`);
    return 0;
  }

  const config = await loadConfig(process.env);
  if (group === 'keys' && action === 'rotate') {
    const result = await rotateKeys(config.keysDir, { maxTokenLifetimeSeconds: await signedTokenHorizon(config) });
    process.stdout.write(`added: ${result.added.join(', ') || '-'}\nretired: ${result.retired.join(', ') || '-'}\npruned: ${result.pruned.join(', ') || '-'}\n`);
    process.stdout.write('running fedgate instances sharing this keys directory pick the new key up within a few seconds\n');
    return 0;
  }
  if (group === 'keys' && action === 'list') {
    const set = await loadOrCreateKeys(config.keysDir);
    for (const k of set.keys) {
      const state = k.retiredAt ? `retired ${new Date(k.retiredAt * 1000).toISOString()}` : 'active';
      process.stdout.write(`${k.jwk.kid}  ${k.jwk.alg}  created ${new Date(k.createdAt * 1000).toISOString()}  ${state}\n`);
    }
    return 0;
  }

  // The remaining commands act on a deployment's store (REDIS_URL).
  if (!config.redisUrl) process.stderr.write('fedgate: warning: REDIS_URL is not set, so this acts on a throw-away in-memory store\n');
  // Logs go to stderr: stdout carries the command's output (tokens, JSON).
  const fedgate = await createFedgate(config, { logger: createLogger('warn', process.stderr), watchKeys: false });
  try {
    if (group === 'initial-access-token' && action === 'create') {
      const ttl = values.ttl ? Number(values.ttl) : config.registration.initialAccessTokenTtl;
      if (!Number.isInteger(ttl) || ttl < 60) { process.stderr.write('fedgate: --ttl must be a whole number of seconds, at least 60\n'); return 2; }
      const { token, expiresAt } = await createInitialAccessToken(fedgate.provider(), ttl);
      await fedgate.audit.record({ type: 'admin.change', actor: 'cli', outcome: 'success', target: 'initial-access-token', detail: { action: 'create', expires_at: expiresAt } });
      process.stdout.write(`${token}\n`);
      process.stderr.write(`expires ${new Date(expiresAt * 1000).toISOString()}; register with: curl -X POST ${config.issuer}/reg -H "Authorization: Bearer <token>" -H "Content-Type: application/json" -d '{...}'\n`);
      return 0;
    }
    if (datasource) {
      return await runDatasourceCommand(datasource, fedgate.dataSources, config.issuer, {
        out: (text) => process.stdout.write(text),
        err: (text) => process.stderr.write(text),
      });
    }
    if (group === 'accounts' && (action === 'disable' || action === 'enable') && arg) {
      const account = await fedgate.accounts.findByUsername(arg);
      if (!account) { process.stderr.write(`fedgate: no account ${arg}\n`); return 1; }
      await fedgate.accounts.setDisabled(account.id, action === 'disable');
      await fedgate.audit.record({ type: action === 'disable' ? 'account.disabled' : 'account.enabled', actor: 'cli', outcome: 'success', target: account.id });
      process.stdout.write(`${arg} ${action}d\n`);
      return 0;
    }
    process.stderr.write(USAGE);
    return 2;
  } finally {
    await fedgate.close();
  }
}

main(process.argv.slice(2)).then((code) => process.exit(code), (err: Error) => {
  process.stderr.write(err instanceof ConfigError ? `fedgate: ${err.message}\n` : `fedgate: ${err.message}\n`);
  process.exit(err instanceof ConfigError ? 2 : 1);
});
