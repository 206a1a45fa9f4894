import { Redis, Cluster } from 'ioredis';
import type { ClusterNode, RedisOptions } from 'ioredis';
import { StoreUnavailable } from './errors.ts';
import { DEFAULT_INDEX_BUDGET, type ConsumeResult, type IndexPage, type IndexQuery, type Store, type StreamRange } from './store.ts';
import { assertPositiveInteger, assertStreamId, assertTimestamp, compareStreamIds, compareUtf8, encode } from './values.ts';

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
  /**
   * The deadline of every call, in milliseconds (default 2000): a call that
   * Redis has not answered by then rejects with {@link StoreUnavailable}.
   */
  deadlineMs?: number;
  /** Receives connection errors and errors thrown by subscribers; default no-op. */
  onError?: (err: Error) => void;
}

/** Lua scripts, each on one key (and that key's seal, in the same slot), so they run on Cluster unchanged. */
const SCRIPTS = {
  // SADD, then keep the set alive at least ARGV[2] seconds from now without
  // ever shortening its life; without ARGV[2] the set becomes persistent.
  // KEYS[2] is the set's seal (same hash tag): while it exists nothing is added.
  fedgateAddToSet: {
    numberOfKeys: 2,
    lua: `
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local created = redis.call('EXISTS', KEYS[1]) == 0
redis.call('SADD', KEYS[1], ARGV[1])
if ARGV[2] == nil or ARGV[2] == '' then
  redis.call('PERSIST', KEYS[1])
  return 1
end
local wanted = tonumber(ARGV[2]) * 1000
local current = redis.call('PTTL', KEYS[1])
if created or (current >= 0 and current < wanted) then
  redis.call('PEXPIRE', KEYS[1], wanted)
end
return 1`,
  },
  // SMEMBERS + DEL of KEYS[1] as one step; with ARGV[1], the seal KEYS[2]
  // (same hash tag) for at least ARGV[1] seconds.
  fedgateDrainSet: {
    numberOfKeys: 2,
    lua: `
local members = redis.call('SMEMBERS', KEYS[1])
redis.call('DEL', KEYS[1])
if ARGV[1] ~= '' then
  local wanted = tonumber(ARGV[1])
  if redis.call('TTL', KEYS[2]) < wanted then
    redis.call('SET', KEYS[2], '1', 'EX', wanted)
  end
end
return members`,
  },
  // SET KEYS[1] ARGV[2] KEEPTTL when its value is ARGV[1]: compare-and-set,
  // and (with ARGV[2] empty) compare-and-delete, e.g. a lock's release.
  fedgateCompareAndSet: {
    numberOfKeys: 1,
    lua: `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
end
return 1`,
  },
  // EXPIRE KEYS[1] ARGV[2] when its value is ARGV[1]: a lock's renewal by its owner.
  fedgateRenewLock: {
    numberOfKeys: 1,
    lua: `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1`,
  },
  // Adds "consumed": ARGV[1] to the JSON object at KEYS[1] unless it has
  // that property: {1, old} when this call did, {2, old} when it was there,
  // {0} when the key is absent. The text is appended to, not re-encoded:
  // cjson would turn empty arrays into objects.
  fedgateConsume: {
    numberOfKeys: 1,
    lua: `
local raw = redis.call('GET', KEYS[1])
if not raw then return {0} end
local ok, value = pcall(cjson.decode, raw)
if not ok or type(value) ~= 'table' or string.sub(raw, 1, 1) ~= '{' or string.sub(raw, -1) ~= '}' then
  return redis.error_reply('ERR the value is not a JSON object')
end
if value['consumed'] ~= nil then return {2, raw} end
local body = string.sub(raw, 1, -2)
if body ~= '{' then body = body .. ',' end
redis.call('SET', KEYS[1], body .. '"consumed":' .. ARGV[1] .. '}', 'KEEPTTL')
return {1, raw}`,
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
  // Walks the sorted index KEYS[1] in lex order from ARGV[1] to ARGV[2]
  // (ZRANGEBYLEX bounds) in chunks, keeping members that contain ARGV[3]
  // (plain find), until ARGV[4] matches or ARGV[5] members were examined:
  // {matches} when the range is done, {matches, last} to continue after last.
  fedgateScanIndex: {
    numberOfKeys: 1,
    lua: `
local start, stop, needle = ARGV[1], ARGV[2], ARGV[3]
local limit, budget = tonumber(ARGV[4]), tonumber(ARGV[5])
local found, examined, last = {}, 0, nil
while examined < budget do
  local n = math.min(1000, budget - examined)
  local batch = redis.call('ZRANGEBYLEX', KEYS[1], start, stop, 'LIMIT', 0, n)
  for _, member in ipairs(batch) do
    examined = examined + 1
    last = member
    if string.find(member, needle, 1, true) then
      found[#found + 1] = member
      if #found == limit then
        if #redis.call('ZRANGEBYLEX', KEYS[1], '(' .. member, stop, 'LIMIT', 0, 1) == 0 then return {found} end
        return {found, member}
      end
    end
  end
  if #batch < n then return {found} end
  start = '(' .. last
end
return {found, last}`,
  },
} as const;

interface ScriptCommands {
  fedgateAddToSet(key: string, seal: string, member: string, ttlSeconds: string): Promise<number>;
  fedgateDrainSet(key: string, seal: string, sealSeconds: string): Promise<string[]>;
  fedgateConsume(key: string, at: number): Promise<[0] | [1 | 2, string]>;
  fedgateCompareAndSet(key: string, expected: string, value: string): Promise<number>;
  fedgateRenewLock(key: string, owner: string, ttlSeconds: number): Promise<number>;
  fedgateIncrement(key: string, ttlSeconds: number): Promise<number>;
  fedgateAppendToStream(key: string, ...args: Array<string | number>): Promise<string[]>;
  fedgateScanIndex(key: string, start: string | Buffer, stop: string | Buffer, needle: string, limit: number, budget: number): Promise<[string[], string?]>;
}

type Client = (Redis | Cluster) & ScriptCommands;
type Subscriber = Redis | Cluster;

interface Subscription {
  handlers: Set<(message: string) => void>;
  /** Settles when Redis has confirmed (or refused) the SUBSCRIBE. */
  ready: Promise<void>;
}

const DEFAULT_KEY_PREFIX = 'fedgate:';
/** Default of {@link RedisStoreOptions.deadlineMs}. */
export const DEFAULT_DEADLINE_MS = 2000;
/** ioredis's message for its commandTimeout, used for the store's own deadline too. */
const TIMED_OUT = 'Command timed out';
/** While the store is marked unavailable, how often it is asked whether it is back. */
const PROBE_INTERVAL_MS = 250;
/**
 * Error replies that mean "not now" rather than "wrong command" (a replica
 * loading its data set, a failover, a Cluster resharding).
 */
const TRANSIENT_REPLY = /^(LOADING|BUSY|MASTERDOWN|READONLY|CLUSTERDOWN|TRYAGAIN|NOREPLICAS)\b/;
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
 * and script touches a single key (a set's seal shares its set's tag), so
 * everything runs on Cluster. Values
 * are JSON. Concurrent calls are auto-pipelined into one round trip.
 *
 * Failing fast: every command carries a deadline (ioredis `commandTimeout`,
 * which also runs while a command waits in the offline queue), and every
 * method goes through {@link RedisStore.#guard}, which turns a timeout or a
 * lost connection into {@link StoreUnavailable}. The first such failure marks
 * the store unavailable: later calls fail at once instead of each waiting
 * out the deadline (a request with several calls would otherwise wait
 * several deadlines), until a probing PING or a reconnect shows Redis is
 * back. So no request waits longer than one deadline for the store.
 */
export class RedisStore implements Store {
  readonly kind = 'redis' as const;

  readonly #client: Client;
  readonly #prefix: string;
  readonly #onError: (err: Error) => void;
  #subscriber: Subscriber | undefined;
  #closed = false;
  readonly #subscriptions = new Map<string, Subscription>();
  readonly #deadlineMs: number;
  /** Set while Redis is known not to answer: calls fail at once. */
  #unavailable: StoreUnavailable | undefined;
  #probe: NodeJS.Timeout | undefined;

  constructor(options: RedisStoreOptions) {
    this.#prefix = options.keyPrefix ?? DEFAULT_KEY_PREFIX;
    this.#onError = options.onError ?? (() => {});
    this.#deadlineMs = options.deadlineMs ?? DEFAULT_DEADLINE_MS;
    assertPositiveInteger(this.#deadlineMs, 'deadlineMs');
    this.#client = connect(options, this.#deadlineMs) as Client;
    // Without a listener ioredis reports errors as unhandled; the process must survive an outage.
    this.#client.on('error', (err: Error) => this.#onError(err));
    this.#client.on('ready', () => this.#markAvailable());
  }

  async get<T = unknown>(key: string): Promise<T | undefined> {
    const raw = await this.#guard(() => this.#client.get(this.#key(key)));
    return raw === null ? undefined : (JSON.parse(raw) as T);
  }

  async set(key: string, value: unknown, ttlSeconds?: number): Promise<void> {
    const encoded = encode(value);
    if (ttlSeconds === undefined) {
      await this.#guard(() => this.#client.set(this.#key(key), encoded));
    } else {
      assertPositiveInteger(ttlSeconds, 'ttlSeconds');
      await this.#guard(() => this.#client.set(this.#key(key), encoded, 'EX', ttlSeconds));
    }
  }

  async setIfAbsent(key: string, value: unknown, ttlSeconds?: number): Promise<boolean> {
    const encoded = encode(value);
    if (ttlSeconds === undefined) {
      return (await this.#guard(() => this.#client.set(this.#key(key), encoded, 'NX'))) === 'OK';
    }
    assertPositiveInteger(ttlSeconds, 'ttlSeconds');
    return (await this.#guard(() => this.#client.set(this.#key(key), encoded, 'EX', ttlSeconds, 'NX'))) === 'OK';
  }

  async replace(key: string, value: unknown): Promise<boolean> {
    const encoded = encode(value);
    return (await this.#guard(() => this.#client.set(this.#key(key), encoded, 'KEEPTTL', 'XX'))) === 'OK';
  }

  async compareAndSet(key: string, expected: unknown, value: unknown): Promise<boolean> {
    const before = encode(expected);
    const after = encode(value);
    return (await this.#guard(() => this.#client.fedgateCompareAndSet(this.#key(key), before, after))) === 1;
  }

  async acquireLock(key: string, owner: string, ttlSeconds: number): Promise<boolean> {
    return this.setIfAbsent(key, owner, ttlSeconds);
  }

  async renewLock(key: string, owner: string, ttlSeconds: number): Promise<boolean> {
    assertPositiveInteger(ttlSeconds, 'ttlSeconds');
    return (await this.#guard(() => this.#client.fedgateRenewLock(this.#key(key), encode(owner), ttlSeconds))) === 1;
  }

  async releaseLock(key: string, owner: string): Promise<boolean> {
    // An empty replacement is the script's delete (no encoded value is empty).
    return (await this.#guard(() => this.#client.fedgateCompareAndSet(this.#key(key), encode(owner), ''))) === 1;
  }

  async delete(key: string): Promise<boolean> {
    return (await this.#guard(() => this.#client.del(this.#key(key)))) > 0;
  }

  async ttl(key: string): Promise<number | undefined> {
    const ttl = await this.#guard(() => this.#client.ttl(this.#key(key)));
    return ttl === -2 ? undefined : ttl;
  }

  async consume<T = Record<string, unknown>>(key: string, at: number): Promise<ConsumeResult<T>> {
    assertTimestamp(at);
    const [outcome, raw] = await this.#guard(() => this.#client.fedgateConsume(this.#key(key), at));
    if (outcome === 0) return { outcome: 'absent' };
    return { outcome: outcome === 1 ? 'consumed' : 'already', value: JSON.parse(raw!) as T };
  }

  async addToSet(key: string, member: string, ttlSeconds?: number): Promise<boolean> {
    if (ttlSeconds !== undefined) assertPositiveInteger(ttlSeconds, 'ttlSeconds');
    const redisKey = this.#key(key);
    return (await this.#guard(() => this.#client.fedgateAddToSet(redisKey, sealOf(redisKey), member, ttlSeconds === undefined ? '' : String(ttlSeconds)))) === 1;
  }

  async drainSet(key: string, sealSeconds?: number): Promise<string[]> {
    if (sealSeconds !== undefined) assertPositiveInteger(sealSeconds, 'sealSeconds');
    const redisKey = this.#key(key);
    return this.#guard(() => this.#client.fedgateDrainSet(redisKey, sealOf(redisKey), sealSeconds === undefined ? '' : String(sealSeconds)));
  }

  async removeFromSet(key: string, member: string): Promise<void> {
    await this.#guard(() => this.#client.srem(this.#key(key), member));
  }

  async setMembers(key: string): Promise<string[]> {
    return this.#guard(() => this.#client.smembers(this.#key(key)));
  }

  async increment(key: string, ttlSeconds?: number): Promise<number> {
    if (ttlSeconds === undefined) return this.#guard(() => this.#client.incr(this.#key(key)));
    assertPositiveInteger(ttlSeconds, 'ttlSeconds');
    return Number(await this.#guard(() => this.#client.fedgateIncrement(this.#key(key), ttlSeconds)));
  }

  async appendToStream(key: string, entries: ReadonlyArray<Record<string, string>>, maxLength: number): Promise<string[]> {
    assertPositiveInteger(maxLength, 'maxLength');
    const args: Array<string | number> = [maxLength];
    for (const fields of entries) {
      const countAt = args.length;
      args.push(0);
      for (const name in fields) args.push(name, fields[name]!);
      const count = (args.length - countAt - 1) / 2;
      if (count === 0) throw new TypeError('a stream entry needs at least one field');
      args[countAt] = count;
    }
    if (entries.length === 0) throw new TypeError('a stream entry needs at least one field');
    // `~` lets Redis trim whole macro nodes only, which is far cheaper than an exact cap.
    return this.#guard(() => this.#client.fedgateAppendToStream(this.#key(key), ...args));
  }

  async readStream(key: string, count: number, range: StreamRange = {}): Promise<Array<{ id: string; fields: Record<string, string> }>> {
    assertPositiveInteger(count, 'count');
    const { before, newest, oldest } = range;
    if (before !== undefined) assertStreamId(before, 'before');
    if (newest !== undefined) assertStreamId(newest, 'newest');
    if (oldest !== undefined) assertStreamId(oldest, 'oldest');
    // XREVRANGE's bounds: `(id` is exclusive (Redis 6.2); a bare millisecond covers all its sequence numbers.
    let end = newest ?? '+';
    if (before !== undefined && (newest === undefined || compareStreamIds(before, newest, 'max') <= 0)) end = `(${before}`;
    const entries = await this.#guard(() => this.#client.xrevrange(this.#key(key), end, oldest ?? '-', 'COUNT', count));
    return entries.map(([id, flat]) => {
      const fields: Record<string, string> = {};
      for (let i = 0; i + 1 < flat.length; i += 2) fields[flat[i]!] = flat[i + 1]!;
      return { id, fields };
    });
  }

  async addToIndex(key: string, members: readonly string[]): Promise<void> {
    if (members.length === 0) return;
    const args = members.flatMap((m) => [0, m]);
    await this.#guard(() => this.#client.zadd(this.#key(key), ...args));
  }

  async removeFromIndex(key: string, members: readonly string[]): Promise<void> {
    if (members.length === 0) return;
    await this.#guard(() => this.#client.zrem(this.#key(key), ...members));
  }

  async indexSize(key: string): Promise<number> {
    return this.#guard(() => this.#client.zcard(this.#key(key)));
  }

  async scanIndex(key: string, query: IndexQuery): Promise<IndexPage> {
    const { after, prefix, contains, limit } = query;
    const budget = query.budget ?? DEFAULT_INDEX_BUDGET;
    assertPositiveInteger(limit, 'limit');
    assertPositiveInteger(budget, 'budget');
    const redisKey = this.#key(key);
    let start = after === undefined ? '-' : `(${after}`;
    if (prefix && (after === undefined || compareUtf8(after, prefix) < 0)) start = `[${prefix}`;
    // No UTF-8 text holds the byte 0xFF: `[prefix\xff` is past every member that starts with prefix.
    const stop = prefix ? Buffer.concat([Buffer.from(`[${prefix}`), Buffer.from([0xff])]) : '+';
    if (!contains) {
      const members = await this.#guard(() => this.#client.zrangebylex(redisKey, start, stop, 'LIMIT', 0, limit + 1));
      return members.length > limit ? { members: members.slice(0, limit), next: members[limit - 1] } : { members, next: undefined };
    }
    const [members, next] = await this.#guard(() => this.#client.fedgateScanIndex(redisKey, start, stop, contains, limit, budget));
    return { members, next: next ?? undefined };
  }

  async publish(channel: string, message: string): Promise<void> {
    await this.#guard(() => this.#client.publish(this.#prefix + channel, message));
  }

  async subscribe(channel: string, handler: (message: string) => void): Promise<() => Promise<void>> {
    const name = this.#prefix + channel;
    const subscriber = this.#getSubscriber();
    let subscription = this.#subscriptions.get(name);
    if (subscription === undefined) {
      const created: Subscription = {
        handlers: new Set(),
        ready: this.#guard(() => subscriber.subscribe(name)).then(() => undefined),
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
      await this.#guard(() => subscriber.unsubscribe(name));
    };
  }

  async ping(): Promise<void> {
    await this.#guard(() => this.#client.ping());
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#probe);
    this.#probe = undefined;
    this.#subscriptions.clear();
    const connections: Subscriber[] = [this.#client];
    if (this.#subscriber !== undefined) connections.push(this.#subscriber);
    this.#subscriber = undefined;
    await Promise.all(connections.map(closeConnection));
  }

  /**
   * Runs one call against Redis: fails at once while Redis is known to be
   * unavailable, and turns timeouts and connection failures into
   * {@link StoreUnavailable} (marking the store unavailable). Every method
   * that talks to Redis goes through here.
   */
  #guard<T>(call: () => Promise<T>): Promise<T> {
    if (this.#unavailable !== undefined) return Promise.reject(this.#unavailable);
    return this.#withDeadline(call()).catch((err: unknown) => {
      if (!isUnavailability(err)) throw err;
      throw this.#markUnavailable(err as Error);
    });
  }

  /**
   * The caller's own deadline. ioredis's commandTimeout starts only when a
   * command is written, and with auto-pipelining a command waits, unwritten,
   * for the pipeline before it: during a stall a call would wait one deadline
   * per pipeline ahead of it.
   */
  #withDeadline<T>(pending: Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(TIMED_OUT)), this.#deadlineMs);
      pending.then(
        (value) => { clearTimeout(timer); resolve(value); },
        (err: unknown) => { clearTimeout(timer); reject(err); },
      );
    });
  }

  #markUnavailable(cause: Error): StoreUnavailable {
    const err = new StoreUnavailable(cause.message === TIMED_OUT
      ? `the store did not answer within ${this.#deadlineMs} ms`
      : 'the store cannot be reached', { cause });
    if (this.#closed) return err;
    if (this.#unavailable === undefined) {
      this.#unavailable = new StoreUnavailable('the store is unavailable', { cause });
      this.#onError(err);
      this.#scheduleProbe();
    }
    return err;
  }

  #markAvailable(): void {
    clearTimeout(this.#probe);
    this.#probe = undefined;
    this.#unavailable = undefined;
  }

  /** Asks Redis (PING, with the same deadline) whether it answers again. */
  #scheduleProbe(): void {
    clearTimeout(this.#probe);
    this.#probe = setTimeout(() => {
      this.#probe = undefined;
      this.#withDeadline(this.#client.ping()).then(
        () => this.#markAvailable(),
        () => { if (!this.#closed && this.#unavailable !== undefined) this.#scheduleProbe(); },
      );
    }, PROBE_INTERVAL_MS);
    this.#probe.unref();
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

/**
 * True when an ioredis failure means Redis did not answer (timeout, no
 * connection, transient refusal), false for errors of the call itself
 * (a wrong type, a script error), which stay as they are.
 */
function isUnavailability(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if (err.name === 'ReplyError') return TRANSIENT_REPLY.test(err.message);
  return !(err instanceof TypeError || err instanceof RangeError || err instanceof SyntaxError);
}

/**
 * The Redis key of a set's seal: the set's key with a suffix, so it keeps
 * the set's hash tag (same Cluster slot, one script touches both).
 */
function sealOf(redisKey: string): string {
  return `${redisKey}:sealed`;
}

/** Creates the ioredis client for the URL forms of {@link RedisStoreOptions.url}. */
function connect(options: RedisStoreOptions, deadlineMs: number): Redis | Cluster {
  const common = {
    enableAutoPipelining: true,
    // The audit batch goes out alone every few milliseconds: an auto-pipeline around it is only cost.
    autoPipeliningIgnoredCommands: ['fedgateAppendToStream'],
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
    // The deadline of each command, also while it waits in the offline queue for a reconnect.
    commandTimeout: deadlineMs,
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

/** A Redis URL split into its parts (see {@link RedisStoreOptions.url}). */
export interface ParsedUrl {
  scheme: 'redis' | 'rediss' | 'redis-sentinel' | 'redis-cluster';
  username: string | undefined;
  password: string | undefined;
  nodes: Array<{ host: string; port: number | undefined }>;
  /** The path without its leading slash: the db number or the Sentinel master name. */
  path: string;
}

/**
 * Splits a Redis URL of the forms of {@link RedisStoreOptions.url}.
 * WHATWG URL cannot hold a comma-separated host list, so the URL is split by hand.
 *
 * @throws TypeError when the URL is not one of those forms.
 */
export function parseUrl(raw: string): ParsedUrl {
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
