import { Redis } from 'ioredis';
import { parseUrl, RedisStore } from './redis-store.ts';
import { FedgateError } from '../util/errors.ts';

/**
 * Why the deployment's Redis cannot be used: `configuration` when the URL
 * itself is wrong (exit status 2, as any configuration error), `unreachable`
 * when nothing usable answers there (exit status 1).
 */
export class StoreProbeError extends FedgateError {
  readonly code = 'ERR_FEDGATE_STORE_PROBE';
  readonly kind: 'configuration' | 'unreachable';

  constructor(kind: 'configuration' | 'unreachable', message: string) {
    super(`store_${kind}`, message);
    this.kind = kind;
  }
}

/** The URL without its credentials, fit for a log line or an error message. */
export function redactRedisUrl(raw: string): string {
  return raw.replace(/^([a-z-]+:\/\/)[^@/]*@/i, '$1***@');
}

/**
 * Checks, once at start-up, that the Redis named by `url` answers and that
 * its database index exists. ioredis alone would log a failed SELECT and go
 * on with database 0 (so two deployments would silently share one database),
 * and would report an unreachable server in its own terms, without the URL.
 *
 * @throws StoreProbeError
 */
export async function probeRedis(url: string, timeoutMs = 5000): Promise<void> {
  const shown = redactRedisUrl(url);
  let parsed;
  try {
    parsed = parseUrl(url);
  } catch (err) {
    throw new StoreProbeError('configuration', `REDIS_URL: ${(err as Error).message} (got ${shown})`);
  }
  if (parsed.scheme === 'redis' || parsed.scheme === 'rediss') {
    const db = parsed.path === '' ? 0 : Number(parsed.path);
    if (!/^\d*$/.test(parsed.path) || !Number.isSafeInteger(db)) {
      throw new StoreProbeError('configuration', `REDIS_URL: the path must be a database index (a whole number), got ${JSON.stringify(parsed.path)}`);
    }
    const [node] = parsed.nodes;
    const client = new Redis({
      host: node!.host,
      port: node!.port ?? 6379,
      ...(parsed.username === undefined ? {} : { username: parsed.username }),
      ...(parsed.password === undefined ? {} : { password: parsed.password }),
      ...(parsed.scheme === 'rediss' ? { tls: { servername: node!.host } } : {}),
      // One attempt, no queueing: this is a question, not a connection to keep.
      lazyConnect: true,
      retryStrategy: () => null,
      maxRetriesPerRequest: 0,
      enableOfflineQueue: false,
      connectTimeout: timeoutMs,
    });
    // ioredis rejects connect() with a bare "Connection is closed"; the socket's own error says why.
    let socketError: Error | undefined;
    client.on('error', (err: Error) => { socketError ??= err; });
    try {
      try {
        await client.connect();
        await client.ping();
      } catch (err) {
        throw new StoreProbeError('unreachable', `cannot reach Redis at ${shown}: ${describe(socketError ?? err)}`);
      }
      if (db !== 0) {
        try {
          await client.select(db);
        } catch (err) {
          const message = (err as Error).message;
          if (/out of range/i.test(message)) {
            const databases = await client.config('GET', 'databases').then((r) => (r as string[])[1], () => undefined);
            throw new StoreProbeError('configuration', `REDIS_URL: database ${db} does not exist on ${shown}${databases ? ` (it has databases 0 to ${Number(databases) - 1})` : ''}`);
          }
          throw new StoreProbeError('unreachable', `cannot use database ${db} of Redis at ${shown}: ${message}`);
        }
      }
    } finally {
      client.disconnect();
    }
    return;
  }
  // Sentinel and Cluster: the store's own connection logic finds the master or the nodes.
  const store = new RedisStore({ url, connectTimeoutMs: timeoutMs });
  try {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    });
    await Promise.race([store.ping(), deadline]).finally(() => clearTimeout(timer));
  } catch (err) {
    throw new StoreProbeError('unreachable', `cannot reach Redis at ${shown}: ${describe(err)}`);
  } finally {
    await store.close().catch(() => {});
  }
}

function describe(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  if (e.code === 'ECONNREFUSED') return 'connection refused (is redis-server running there?)';
  if (e.code === 'ENOTFOUND' || e.code === 'EAI_AGAIN') return 'host name not found';
  if (e.code === 'ETIMEDOUT' || /timeout/i.test(e.message ?? '')) return 'no answer in time';
  if (/NOAUTH|WRONGPASS|invalid password|invalid username/i.test(e.message ?? '')) return 'authentication refused (check the user and password in the URL)';
  return e.message ?? String(err);
}
