import { parseArgs } from 'node:util';
import { createFedgate } from '../app.ts';
import { createInitialAccessToken } from '../admin/routes.ts';
import { hashPassword } from '../accounts/accounts.ts';
import { ConfigError, loadConfig, type Config } from '../config/index.ts';
import { signedTokenHorizon } from '../config/lifetimes.ts';
import { createLogger } from '../observability/logger.ts';
import { keyState, loadOrCreateKeys, rotateKeys, RotationPendingError } from '../keys/index.ts';
import { runX509Command, X509_USAGE } from '../federation/x509/cli.ts';
import { DATASOURCE_USAGE, parseDatasourceCommand, runDatasourceCommand, UsageError, type DatasourceCommand } from '../datasources/cli.ts';
import { readStoredDataSources } from '../datasources/index.ts';
import { createStore, probeRedis, StoreProbeError } from '../store/index.ts';

const USAGE = `usage: npm run fedgate -- <command>

  keys rotate [--now]               publish new signing keys; they sign once keys.prepublishSeconds
                                    (default 2 days) have passed, so resource servers caching the
                                    JWKS know them; the old keys stay in the JWKS until every
                                    token they signed has expired. --now: sign with them at once
                                    (after a key compromise; says what it breaks)
  keys list                         show signing keys (kid, algorithm, state, dates)
  initial-access-token create [--ttl SECONDS]
                                    create a token that allows one dynamic client registration
                                    (RFC 7591) until it expires (default 24 h)
  accounts disable|enable <username>
                                    disable (revoking its grants) or re-enable an account
  hash-password                     read a password on stdin, print its argon2id hash
${DATASOURCE_USAGE}${X509_USAGE}`;

/** Seconds after which no token signed by a retired key can be valid (data sources in the store included). */
async function storedTokenHorizon(config: Config): Promise<number> {
  const stored: number[] = [];
  if (config.redisUrl) {
    const store = createStore({ redisUrl: config.redisUrl, deadlineMs: config.store.deadlineMs });
    try {
      stored.push(...(await readStoredDataSources(store)).map((ds) => ds.spec.accessTokenTtl ?? 0));
    } catch (err) {
      process.stderr.write(`fedgate: warning: the data sources could not be read (${(err as Error).message}); their token lifetimes are not counted (at most 7 days)\n`);
    } finally {
      await store.close().catch(() => {});
    }
  }
  return signedTokenHorizon(config, stored);
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

async function main(argv: string[]): Promise<number> {
  if (argv[0] === 'x509') return runX509Command(argv.slice(1), (await loadConfig(process.env)).x509, process);
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
    ? { positionals: ['datasource'], values: { ttl: undefined, now: false, help: false } }
    : parseArgs({ args: argv, allowPositionals: true, options: { ttl: { type: 'string' }, now: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } });
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
    const immediate = values.now === true;
    const { prepublishSeconds, jwksMaxAgeSeconds } = config.keys;
    let result;
    try {
      result = await rotateKeys(config.keysDir, {
        maxTokenLifetimeSeconds: await storedTokenHorizon(config),
        prepublishSeconds: immediate ? 0 : prepublishSeconds,
      });
    } catch (err) {
      if (!(err instanceof RotationPendingError)) throw err;
      process.stderr.write(`fedgate: ${err.message}; \`keys rotate --now\` replaces it at once\n`);
      return 1;
    }
    const when = new Date(result.activatesAt * 1000).toISOString();
    process.stdout.write(`added: ${result.added.join(', ') || '-'}\nretired: ${result.retired.join(', ') || '-'}\npruned: ${result.pruned.join(', ') || '-'}\n`);
    if (immediate || prepublishSeconds === 0) {
      process.stdout.write('the new keys sign now; running fedgate instances sharing this keys directory pick them up within a few seconds\n');
      process.stderr.write([
        'fedgate: warning: an immediate rotation breaks resource servers that cached the JWKS before it:',
        `  they refuse tokens signed with the new keys until they fetch the JWKS again (up to ${Math.round(jwksMaxAgeSeconds / 3600)} h, the JWKS max-age;`,
        '  longer for those that ignore it). Tokens signed before stay valid: the old keys stay published until they expire.',
        '  Use it after a key compromise; otherwise `keys rotate` publishes the new keys ahead of use.',
        '',
      ].join('\n'));
    } else {
      process.stdout.write(`the new keys are published now and sign from ${when}; the current ones sign until then and stay published until their tokens have expired\n`);
      if (prepublishSeconds < jwksMaxAgeSeconds) {
        process.stderr.write(`fedgate: warning: keys.prepublishSeconds (${prepublishSeconds}) is shorter than the JWKS max-age (${jwksMaxAgeSeconds}): resource servers may not know the new keys when they start signing\n`);
      }
    }
    return 0;
  }
  if (group === 'keys' && action === 'list') {
    const set = await loadOrCreateKeys(config.keysDir);
    const now = Math.floor(Date.now() / 1000);
    const at = (t: number | undefined) => new Date((t ?? 0) * 1000).toISOString();
    for (const k of set.keys) {
      const state = {
        pending: `pending, signs from ${at(k.activatesAt)}`,
        active: k.retiredAt ? `active until ${at(k.retiredAt)}` : 'active',
        retired: `retired ${at(k.retiredAt)}`,
      }[keyState(k, now)];
      process.stdout.write(`${k.jwk.kid}  ${k.jwk.alg}  created ${new Date(k.createdAt * 1000).toISOString()}  ${state}\n`);
    }
    return 0;
  }

  // The remaining commands act on a deployment's store (REDIS_URL).
  const storeCommand = datasource !== undefined
    || (group === 'initial-access-token' && action === 'create')
    || (group === 'accounts' && (action === 'disable' || action === 'enable') && arg !== undefined);
  if (!storeCommand) { process.stderr.write(USAGE); return 2; }
  if (!config.redisUrl) {
    // An in-memory store would be thrown away on exit: the command would change nothing anyone sees.
    process.stderr.write(`fedgate: no store is configured: '${argv.slice(0, 2).join(' ')}' acts on the deployment's store; set REDIS_URL (or redisUrl in the FEDGATE_CONFIG file) to its Redis\n`);
    return 2;
  }
  try {
    await probeRedis(config.redisUrl);
  } catch (err) {
    if (!(err instanceof StoreProbeError)) throw err;
    process.stderr.write(`fedgate: ${err.message}\n`);
    return err.kind === 'configuration' ? 2 : 1;
  }
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
