import { Redis, Cluster } from 'ioredis';
import type { ClusterNode, RedisOptions } from 'ioredis';
import type { Store } from './store.ts';
import { assertPositiveInteger, encode } from './values.ts';

/** Options of {@link RedisStore}. */
export interface RedisStoreOptions {
  /**
   * Where Redis is:
   * - `redis://[user:pass@]host:port[/db]`, or `rediss://…` for TLS;
   * - `redis-sentinel://[:pass@]host:port[,host:port…]/<masterName>`: the
   *   Sentinels to ask for the master; the password is the master's;
   * - `redis-cluster://[:pass@]host:port[,host:port…]`: Cluster seed nodes.
   */
  url: string;
  /** Prepended to every key and channel name; default `fedgate:`. */
  keyPrefix?: string;
  /** How long to wait for a connection to be established; ioredis's default otherwise. */
  connectTimeoutMs?: number;
  /** Receives connection errors and errors thrown by subscribers; default no-op. */
  onError?: (err: Error) => void;
}

/** Lua scripts, each on exactly one key, so they run on Cluster unchanged. */
const SCRIPTS = {
  // SADD, then keep the set alive at least ARGV[2] seconds from now without
  // ever shortening its life; without ARGV[2] the set becomes persistent.
  fedgateAddToSet: {
    numberOfKeys: 1,
    lua: `
local created = redis.call('EXISTS', KEYS[1]) == 0
redis.call('SADD', KEYS[1], ARGV[1])
if ARGV[2] == nil or ARGV[2] == '' then
  redis.call('PERSIST', KEYS[1])
  return 0
end
local wanted = tonumber(ARGV[2]) * 1000
local current = redis.call('PTTL', KEYS[1])
if created or (current >= 0 and current < wanted) then
  redis.call('PEXPIRE', KEYS[1], wanted)
end
return 0`,
  },
  // INCR, and start the window when the counter has none (first increment,
  // or a value written without expiry).
  fedgateIncrement: {
    numberOfKeys: 1,
    lua: `
local value = redis.call('INCR', KEYS[1])
if redis.call('TTL', KEYS[1]) == -1 then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
end
return value`,
  },
  // XADD each entry (ARGV[2] holds the field count per entry, then the
  // flattened fields) with an approximate cap: a batch in one round trip.
  fedgateAppendToStream: {
    numberOfKeys: 1,
    lua: `
local ids = {}
local i = 2
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  local args = { KEYS[1], 'MAXLEN', '~', ARGV[1], '*' }
  for j = 1, n * 2 do args[#args + 1] = ARGV[i + j] end
  ids[#ids + 1] = redis.call('XADD', unpack(args))
  i = i + 1 + n * 2
end
return ids`,
  },
} as const;

interface ScriptCommands {
  fedgateAddToSet(key: string, member: string, ttlSeconds: string): Promise<number>;
  fedgateIncrement(key: string, ttlSeconds: number): Promise<number>;
  fedgateAppendToStream(key: string, ...args: Array<string | number>): Promise<string[]>;
}

type Client = (Redis | Cluster) & ScriptCommands;
type Subscriber = Redis | Cluster;

interface Subscription {
  handlers: Set<(message: string) => void>;
  /** Settles when Redis has confirmed (or refused) the SUBSCRIBE. */
  ready: Promise<void>;
}

const DEFAULT_KEY_PREFIX = 'fedgate:';
const PING_TIMEOUT_MS = 2000;
// Few enough that calls fail within a second or so while Redis is down
// instead of queueing forever; reconnecting itself never stops.
const MAX_RETRIES_PER_REQUEST = 2;
const MAX_RECONNECT_DELAY_MS = 1000;

/**
 * The {@link Store} on Redis (standalone, Sentinel or Cluster) through
 * ioredis, for deployments with more than one replica.
 *
 * Each key becomes `keyPrefix + '{' + key + '}'`, its own hash tag, unless
 * the key already contains a `{` (the caller chose its tag); every command
 * and script touches a single key, so everything runs on Cluster. Values
 * are JSON. Concurrent calls are auto-pipelined into one round trip.
 */
export class RedisStore implements Store {
  readonly kind = 'redis' as const;

  readonly #client: Client;
  readonly #prefix: string;
  readonly #onError: (err: Error) => void;
  #subscriber: Subscriber | undefined;
  #closed = false;
  readonly #subscriptions = new Map<string, Subscription>();

  constructor(options: RedisStoreOptions) {
    this.#prefix = options.keyPrefix ?? DEFAULT_KEY_PREFIX;
    this.#onError = options.onError ?? (() => {});
    this.#client = connect(options) as Client;
    // Without a listener ioredis reports errors as unhandled; the process must survive an outage.
    this.#client.on('error', (err: Error) => this.#onError(err));
  }

  async get<T = unknown>(key: string): Promise<T | undefined> {
    const raw = await this.#client.get(this.#key(key));
    return raw === null ? undefined : (JSON.parse(raw) as T);
  }

  async set(key: string, value: unknown, ttlSeconds?: number): Promise<void> {
    const encoded = encode(value);
    if (ttlSeconds === undefined) {
      await this.#client.set(this.#key(key), encoded);
    } else {
      assertPositiveInteger(ttlSeconds, 'ttlSeconds');
      await this.#client.set(this.#key(key), encoded, 'EX', ttlSeconds);
    }
  }

  async setIfAbsent(key: string, value: unknown, ttlSeconds?: number): Promise<boolean> {
    const encoded = encode(value);
    if (ttlSeconds === undefined) {
      return (await this.#client.set(this.#key(key), encoded, 'NX')) === 'OK';
    }
    assertPositiveInteger(ttlSeconds, 'ttlSeconds');
    return (await this.#client.set(this.#key(key), encoded, 'EX', ttlSeconds, 'NX')) === 'OK';
  }

  async replace(key: string, value: unknown): Promise<boolean> {
    return (await this.#client.set(this.#key(key), encode(value), 'KEEPTTL', 'XX')) === 'OK';
  }

  async delete(key: string): Promise<boolean> {
    return (await this.#client.del(this.#key(key))) > 0;
  }

  async ttl(key: string): Promise<number | undefined> {
    const ttl = await this.#client.ttl(this.#key(key));
    return ttl === -2 ? undefined : ttl;
  }

  async addToSet(key: string, member: string, ttlSeconds?: number): Promise<void> {
    if (ttlSeconds !== undefined) assertPositiveInteger(ttlSeconds, 'ttlSeconds');
    await this.#client.fedgateAddToSet(this.#key(key), member, ttlSeconds === undefined ? '' : String(ttlSeconds));
  }

  async removeFromSet(key: string, member: string): Promise<void> {
    await this.#client.srem(this.#key(key), member);
  }

  async setMembers(key: string): Promise<string[]> {
    return this.#client.smembers(this.#key(key));
  }

  async increment(key: string, ttlSeconds?: number): Promise<number> {
    if (ttlSeconds === undefined) return this.#client.incr(this.#key(key));
    assertPositiveInteger(ttlSeconds, 'ttlSeconds');
    return Number(await this.#client.fedgateIncrement(this.#key(key), ttlSeconds));
  }

  async appendToStream(key: string, entries: ReadonlyArray<Record<string, string>>, maxLength: number): Promise<string[]> {
    assertPositiveInteger(maxLength, 'maxLength');
    const args: Array<string | number> = [maxLength];
    for (const fields of entries) {
      const flat = Object.entries(fields).flat();
      if (flat.length === 0) throw new TypeError('a stream entry needs at least one field');
      args.push(flat.length / 2, ...flat);
    }
    if (entries.length === 0) throw new TypeError('a stream entry needs at least one field');
    // `~` lets Redis trim whole macro nodes only, which is far cheaper than an exact cap.
    return this.#client.fedgateAppendToStream(this.#key(key), ...args);
  }

  async readStream(key: string, count: number): Promise<Array<{ id: string; fields: Record<string, string> }>> {
    assertPositiveInteger(count, 'count');
    const entries = await this.#client.xrevrange(this.#key(key), '+', '-', 'COUNT', count);
    return entries.map(([id, flat]) => {
      const fields: Record<string, string> = {};
      for (let i = 0; i + 1 < flat.length; i += 2) fields[flat[i]!] = flat[i + 1]!;
      return { id, fields };
    });
  }

  async publish(channel: string, message: string): Promise<void> {
    await this.#client.publish(this.#prefix + channel, message);
  }

  async subscribe(channel: string, handler: (message: string) => void): Promise<() => Promise<void>> {
    const name = this.#prefix + channel;
    const subscriber = this.#getSubscriber();
    let subscription = this.#subscriptions.get(name);
    if (subscription === undefined) {
      const created: Subscription = {
        handlers: new Set(),
        ready: subscriber.subscribe(name).then(() => undefined),
      };
      created.ready.catch(() => {
        if (this.#subscriptions.get(name) === created) this.#subscriptions.delete(name);
      });
      this.#subscriptions.set(name, created);
      subscription = created;
    }
    // A wrapper per call, so the same handler subscribed twice is two subscriptions.
    const listener = (message: string): void => handler(message);
    subscription.handlers.add(listener);
    try {
      await subscription.ready;
    } catch (err) {
      subscription.handlers.delete(listener);
      throw err;
    }
    const current = subscription;
    let active = true;
    return async () => {
      if (!active) return;
      active = false;
      current.handlers.delete(listener);
      if (current.handlers.size > 0 || this.#subscriptions.get(name) !== current) return;
      this.#subscriptions.delete(name);
      await subscriber.unsubscribe(name);
    };
  }

  async ping(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`Redis did not answer PING within ${PING_TIMEOUT_MS} ms`)), PING_TIMEOUT_MS);
    });
    try {
      await Promise.race([this.#client.ping(), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#subscriptions.clear();
    const connections: Subscriber[] = [this.#client];
    if (this.#subscriber !== undefined) connections.push(this.#subscriber);
    this.#subscriber = undefined;
    await Promise.all(connections.map(closeConnection));
  }

  #key(key: string): string {
    return key.includes('{') ? this.#prefix + key : `${this.#prefix}{${key}}`;
  }

  /** The connection in subscriber mode, created on first subscribe. */
  #getSubscriber(): Subscriber {
    if (this.#subscriber !== undefined) return this.#subscriber;
    // Would open a connection nobody ever closes.
    if (this.#closed) throw new Error('the store is closed');
    // A connection in subscriber mode can run no other commands, hence its own.
    const client = this.#client;
    const subscriber: Subscriber = client instanceof Cluster ? client.duplicate() : client.duplicate();
    subscriber.on('error', (err: Error) => this.#onError(err));
    subscriber.on('message', (channel: string, message: string) => {
      const subscription = this.#subscriptions.get(channel);
      if (subscription === undefined) return;
      for (const handler of subscription.handlers) {
        // A throwing handler must neither starve the others nor break ioredis's parser.
        try {
          handler(message);
        } catch (err) {
          this.#onError(err instanceof Error ? err : new Error(String(err)));
        }
      }
    });
    this.#subscriber = subscriber;
    return subscriber;
  }
}

/** Creates the ioredis client for the URL forms of {@link RedisStoreOptions.url}. */
function connect(options: RedisStoreOptions): Redis | Cluster {
  const common = {
    enableAutoPipelining: true,
    lazyConnect: false,
    scripts: SCRIPTS,
  };
  const connection: RedisOptions = {
    maxRetriesPerRequest: MAX_RETRIES_PER_REQUEST,
    // ioredis backs off up to 5 s; capped at 1 s a call fails within about 2 s
    // during an outage (MAX_RETRIES_PER_REQUEST attempts) and recovery is quick.
    retryStrategy: (times: number) => Math.min(50 * 2 ** (times - 1), MAX_RECONNECT_DELAY_MS) + Math.floor(Math.random() * 100),
    // ioredis keeps a socket-destroy timer of this length alive even when the
    // socket is already gone (closing during an outage), delaying process exit.
    disconnectTimeout: 500,
    ...(options.connectTimeoutMs === undefined ? {} : { connectTimeout: options.connectTimeoutMs }),
  };
  const url = parseUrl(options.url);
  const auth = {
    ...(url.username === undefined ? {} : { username: url.username }),
    ...(url.password === undefined ? {} : { password: url.password }),
  };
  switch (url.scheme) {
    case 'redis':
    case 'rediss': {
      const [node] = url.nodes;
      const db = url.path === '' ? 0 : Number(url.path);
      if (!Number.isInteger(db) || db < 0) throw new TypeError(`invalid database number in Redis URL: ${url.path}`);
      return new Redis({
        ...common,
        ...connection,
        ...auth,
        host: node!.host,
        port: node!.port ?? 6379,
        db,
        ...(url.scheme === 'rediss' ? { tls: { servername: node!.host } } : {}),
      });
    }
    case 'redis-sentinel': {
      if (url.path === '') throw new TypeError('a redis-sentinel:// URL needs the master name as its path');
      return new Redis({
        ...common,
        ...connection,
        ...auth,
        name: url.path,
        sentinels: url.nodes.map(({ host, port }) => ({ host, port: port ?? 26379 })),
      });
    }
    case 'redis-cluster': {
      const nodes: ClusterNode[] = url.nodes.map(({ host, port }) => ({ host, port: port ?? 6379 }));
      // Cluster reconnects with its own clusterRetryStrategy; redisOptions may not carry one.
      const { retryStrategy: _unused, ...nodeOptions } = connection;
      return new Cluster(nodes, { ...common, redisOptions: { ...nodeOptions, ...auth } });
    }
  }
}

interface ParsedUrl {
  scheme: 'redis' | 'rediss' | 'redis-sentinel' | 'redis-cluster';
  username: string | undefined;
  password: string | undefined;
  nodes: Array<{ host: string; port: number | undefined }>;
  /** The path without its leading slash: the db number or the Sentinel master name. */
  path: string;
}

// WHATWG URL cannot hold a comma-separated host list, so the URL is split by hand.
function parseUrl(raw: string): ParsedUrl {
  const match = /^([a-z-]+):\/\/(?:([^@/]*)@)?([^/?#]+)(?:\/([^?#]*))?(?:[?#].*)?$/i.exec(raw);
  const scheme = match?.[1]?.toLowerCase();
  if (match === null || (scheme !== 'redis' && scheme !== 'rediss' && scheme !== 'redis-sentinel' && scheme !== 'redis-cluster')) {
    throw new TypeError('Redis URL must be redis://, rediss://, redis-sentinel:// or redis-cluster://');
  }
  const userinfo = match[2];
  let username: string | undefined;
  let password: string | undefined;
  if (userinfo !== undefined && userinfo !== '') {
    const colon = userinfo.indexOf(':');
    const user = decodeURIComponent(colon === -1 ? userinfo : userinfo.slice(0, colon));
    username = user === '' ? undefined : user;
    password = colon === -1 ? undefined : decodeURIComponent(userinfo.slice(colon + 1));
  }
  const nodes = match[3]!.split(',').map((hostPort) => {
    const node = /^(?:\[([^\]]+)\]|([^:]+))(?::(\d+))?$/.exec(hostPort);
    if (node === null) throw new TypeError(`invalid host in Redis URL: ${hostPort}`);
    return { host: (node[1] ?? node[2])!, port: node[3] === undefined ? undefined : Number(node[3]) };
  });
  if ((scheme === 'redis' || scheme === 'rediss') && nodes.length !== 1) {
    throw new TypeError(`a ${scheme}:// URL takes exactly one host`);
  }
  return { scheme, username, password, nodes, path: decodeURIComponent(match[4] ?? '') };
}

async function closeConnection(connection: Subscriber): Promise<void> {
  // QUIT waits for pending replies but would queue forever on a connection that never came up.
  if (connection.status !== 'ready') {
    connection.disconnect();
    return;
  }
  try {
    await connection.quit();
  } catch {
    connection.disconnect();
  }
}
