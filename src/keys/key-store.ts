/**
 * The signing-key store: token-signing keys and cookie keys kept as files in
 * one directory (default `keys/`), shared by every replica.
 *
 * `signing-keys.json` holds private JWKs (ES256, the default, and RS256 for
 * clients that need it), each with its creation and, once superseded, its
 * retirement time. Retired keys are no longer used for signing but stay
 * published until every token they signed has expired; `rotateKeys` adds new
 * keys and prunes those. A scheduled rotation (WLCG common JWT profile
 * §4.3.1) publishes the new keys `prepublishSeconds` before they sign
 * anything, so resource servers that cache the JWKS know them in time: each
 * key's state (pending, active, retired) is a function of the time, which
 * {@link signingState} reads. `cookie-keys.json` holds the secrets
 * oidc-provider signs its cookies with.
 *
 * Every write goes to a temporary file in the same directory (mode 0600,
 * fsync'd) that then replaces the target in one step, so a reader on any
 * replica sees either the old or the new file, never half of one.
 */
import { randomBytes } from 'node:crypto';
import { watchFile, unwatchFile, type Stats } from 'node:fs';
import { mkdir, open, readFile, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { SIGNING_ALGORITHMS, type SigningAlg } from '../config/algorithms.ts';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, type JWK } from 'jose';
import { FedgateError } from '../util/errors.ts';
import { writeFileAtomic } from '../util/atomic-file.ts';

/** The signing algorithms the store generates keys for (one key of each). */
export { SIGNING_ALGORITHMS, type SigningAlg };

function isSigningAlg(alg: unknown): alg is SigningAlg {
  return SIGNING_ALGORITHMS.includes(alg as SigningAlg);
}

/** A private signing JWK as stored: always with `kid`, `alg` and `use: "sig"`. */
export type SigningJwk = JWK & { kid: string; alg: SigningAlg; use: 'sig' };

/** One key of the store. */
export interface StoredKey {
  /** The private JWK; `kid` is its RFC 7638 thumbprint. */
  jwk: SigningJwk;
  /** Creation time, epoch seconds. */
  createdAt: number;
  /**
   * When it starts signing, epoch seconds; absent = from `createdAt`. Until
   * then it is only published (a pending key of a scheduled rotation).
   */
  activatesAt?: number;
  /** When it stops (or stopped) signing, epoch seconds; absent while it is the newest key of its algorithm. */
  retiredAt?: number;
}

/** Where a key stands at a given time. */
export type KeyState = 'pending' | 'active' | 'retired';

/** The content of `signing-keys.json`. Keys are kept newest first. */
export interface KeySet {
  version: 1;
  keys: StoredKey[];
}

/** Options shared by the functions that need the time. */
export interface ClockOptions {
  /** Current time in epoch seconds; defaults to the system clock. */
  now?: () => number;
}

/** Options of {@link rotateKeys}. */
export interface RotateOptions extends ClockOptions {
  /**
   * The longest time, in seconds, a token signed by one of these keys can be
   * accepted: the longest token lifetime plus the time replicas need to pick
   * up a rotation and any allowed clock skew. A retired key is pruned only
   * once this much time has passed since its retirement.
   */
  maxTokenLifetimeSeconds: number;
  /**
   * Publish the new keys this many seconds before they sign (WLCG profile
   * §4.3.1: at least the JWKS cache expiration, 2 days). 0 (the default)
   * signs with them at once: the emergency path, which resource servers
   * holding a cached JWKS refuse until they fetch it again.
   */
  prepublishSeconds?: number;
}

/** Options of {@link maintainKeys}. */
export interface MaintainOptions extends RotateOptions {
  /** Age, in seconds, at which a signing key is replaced (the new one is published `prepublishSeconds` before). */
  rotationIntervalSeconds: number;
}

/** Options of {@link watchKeys}. */
export interface WatchOptions {
  /** How often the file is polled, in milliseconds (default 2000). */
  intervalMs?: number;
  /** Called when the file changed but could not be read or is invalid; the old set stays in use. */
  onError?: (error: Error) => void;
}

/** The outcome of {@link rotateKeys}: kids added, newly retired and removed, and when the new keys sign. */
export interface RotateResult {
  added: string[];
  retired: string[];
  pruned: string[];
  /** When the added keys start signing (and the retired ones stop), epoch seconds. */
  activatesAt: number;
}

/** A scheduled rotation is already waiting for its keys to activate; `keys rotate --now` overrides it. */
export class RotationPendingError extends FedgateError {
  readonly code = 'ERR_ROTATION_PENDING';
  /** When the pending keys start signing, epoch seconds. */
  readonly activatesAt: number;

  constructor(activatesAt: number) {
    super('rotation_pending', `a rotation is already scheduled: its keys sign from ${new Date(activatesAt * 1000).toISOString()}`);
    this.activatesAt = activatesAt;
  }
}

/** File name of the signing keys inside the keys directory. */
export const SIGNING_KEYS_FILE = 'signing-keys.json';

/** File name of the cookie keys inside the keys directory. */
export const COOKIE_KEYS_FILE = 'cookie-keys.json';

const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth'] as const;

const systemNow = (): number => Math.floor(Date.now() / 1000);

/**
 * Reads the signing keys from `<dir>/signing-keys.json`, creating the
 * directory (0700) and the file (0600) with one new ES256 and one new RS256
 * key when the file does not exist yet.
 *
 * When several replicas start at once on an empty shared directory, exactly
 * one file is created and all of them return its keys.
 *
 * @throws Error naming the file when it cannot be read, is not valid JSON or
 *   does not describe a valid key set. The message never contains key material.
 */
export async function loadOrCreateKeys(dir: string, options: ClockOptions = {}): Promise<KeySet> {
  return (await loadOrCreate(dir, options.now ?? systemNow)).set;
}

/**
 * Rotates the signing keys in `<dir>/signing-keys.json`: adds a new ES256
 * and a new RS256 key that sign from `now + prepublishSeconds`, retires the
 * current keys at that same moment (they stay published so tokens they signed
 * keep verifying) and removes retired keys whose `retiredAt +
 * maxTokenLifetimeSeconds` lies in the past. With `prepublishSeconds` 0 the
 * new keys sign at once, and keys still pending from a scheduled rotation
 * (which never signed anything) are withdrawn.
 * When the file does not exist yet it is only created, with nothing to retire.
 *
 * Runs under a lock file, so the `keys rotate` command and the replicas'
 * schedule ({@link maintainKeys}) never interleave; replicas pick the new
 * file up through {@link watchKeys}.
 *
 * @throws RotationPendingError when scheduling while a scheduled rotation still waits.
 * @returns the kids added, retired by this rotation and pruned.
 */
export async function rotateKeys(dir: string, options: RotateOptions): Promise<RotateResult> {
  const { maxTokenLifetimeSeconds } = options;
  const prepublishSeconds = options.prepublishSeconds ?? 0;
  checkSeconds('maxTokenLifetimeSeconds', maxTokenLifetimeSeconds);
  checkSeconds('prepublishSeconds', prepublishSeconds);
  const now = options.now ?? systemNow;
  return withKeysLock(dir, async () => {
    const { set: current, created } = await loadOrCreate(dir, now);
    // Keys made just now are already the fresh ones; retiring them would only add clutter.
    if (created) return { added: current.keys.map((key) => key.jwk.kid), retired: [], pruned: [], activatesAt: now() };
    const time = now();
    const pending = current.keys.filter((key) => keyState(key, time) === 'pending');
    if (prepublishSeconds > 0 && pending.length) throw new RotationPendingError(Math.min(...pending.map((key) => key.activatesAt!)));
    const next = await rotatedSet(current, time, prepublishSeconds, maxTokenLifetimeSeconds);
    await writeFileAtomic(join(dir, SIGNING_KEYS_FILE), serialize(next.set), { mode: 0o600, exclusive: false });
    return next.result;
  });
}

/**
 * The schedule every replica runs (WLCG profile §4.3.1, a key lives about 6
 * months): when the newest signing key of an algorithm will be
 * `rotationIntervalSeconds` old within `prepublishSeconds`, schedules a
 * rotation whose keys sign at that age; otherwise prunes retired keys whose
 * tokens have all expired. Several replicas may call it at once: it runs
 * under the keys lock and decides on the file as it is then.
 *
 * @returns what was done, or undefined when nothing was due.
 */
export async function maintainKeys(dir: string, options: MaintainOptions): Promise<RotateResult | undefined> {
  const { maxTokenLifetimeSeconds, rotationIntervalSeconds } = options;
  const prepublishSeconds = options.prepublishSeconds ?? 0;
  checkSeconds('maxTokenLifetimeSeconds', maxTokenLifetimeSeconds);
  checkSeconds('prepublishSeconds', prepublishSeconds);
  checkSeconds('rotationIntervalSeconds', rotationIntervalSeconds);
  const now = options.now ?? systemNow;
  return withKeysLock(dir, async () => {
    const { set: current } = await loadOrCreate(dir, now);
    const time = now();
    const states = current.keys.map((key) => keyState(key, time));
    let next: { set: KeySet; result: RotateResult } | undefined;
    if (!states.includes('pending')) {
      // The newest key of each algorithm: the one that signs now (there is no pending one).
      const newest = Math.min(...SIGNING_ALGORITHMS.map((alg) => Math.max(...current.keys.filter((key) => key.jwk.alg === alg).map(activation))));
      if (newest + rotationIntervalSeconds - prepublishSeconds <= time) {
        const activatesAt = Math.max(time, newest + rotationIntervalSeconds);
        next = await rotatedSet(current, time, activatesAt - time, maxTokenLifetimeSeconds);
      }
    }
    if (!next) {
      const kept = current.keys.filter((key) => !expired(key, time, maxTokenLifetimeSeconds));
      if (kept.length === current.keys.length) return undefined;
      const pruned = current.keys.filter((key) => !kept.includes(key)).map((key) => key.jwk.kid);
      next = { set: { version: 1, keys: kept }, result: { added: [], retired: [], pruned, activatesAt: time } };
    }
    await writeFileAtomic(join(dir, SIGNING_KEYS_FILE), serialize(next.set), { mode: 0o600, exclusive: false });
    return next.result;
  });
}

/** Where `key` stands at `time`. */
export function keyState(key: StoredKey, time: number): KeyState {
  if (key.retiredAt !== undefined && key.retiredAt <= time) return 'retired';
  return activation(key) > time ? 'pending' : 'active';
}

/**
 * When the signing keys next change by themselves (a pending key activates,
 * an active one retires), epoch seconds; undefined when nothing is scheduled.
 * A running instance rebuilds its provider then.
 */
export function nextKeyChange(set: KeySet, time: number): number | undefined {
  const moments = set.keys.flatMap((key) => [activation(key), key.retiredAt ?? Number.POSITIVE_INFINITY]).filter((t) => t > time);
  const next = Math.min(...moments);
  return Number.isFinite(next) ? next : undefined;
}

function activation(key: StoredKey): number {
  return key.activatesAt ?? key.createdAt;
}

function expired(key: StoredKey, time: number, maxTokenLifetimeSeconds: number): boolean {
  return key.retiredAt !== undefined && key.retiredAt <= time && key.retiredAt + maxTokenLifetimeSeconds < time;
}

function checkSeconds(name: string, value: number): void {
  if (!Number.isFinite(value) || value < 0) throw new TypeError(`${name} must be a non-negative number of seconds`);
}

async function rotatedSet(
  current: KeySet,
  time: number,
  prepublishSeconds: number,
  maxTokenLifetimeSeconds: number,
): Promise<{ set: KeySet; result: RotateResult }> {
  const activatesAt = time + prepublishSeconds;
  const retired: string[] = [];
  const pruned: string[] = [];
  const kept: StoredKey[] = [];
  for (const key of current.keys) {
    const state = keyState(key, time);
    if (state === 'pending') {
      // Only an immediate rotation gets here with pending keys: they never signed anything.
      pruned.push(key.jwk.kid);
    } else if (expired(key, time, maxTokenLifetimeSeconds)) {
      pruned.push(key.jwk.kid);
    } else if (state === 'active') {
      retired.push(key.jwk.kid);
      kept.push({ ...key, retiredAt: Math.min(key.retiredAt ?? activatesAt, activatesAt) });
    } else {
      kept.push(key);
    }
  }
  const added = [await newKey('ES256', time), await newKey('RS256', time)];
  if (prepublishSeconds > 0) for (const key of added) key.activatesAt = activatesAt;
  return {
    set: { version: 1, keys: [...added, ...kept] },
    result: { added: added.map((key) => key.jwk.kid), retired, pruned, activatesAt },
  };
}

const LOCK_STALE_MS = 30_000;

/**
 * Runs `work` holding `<dir>/signing-keys.json.lock` (created with O_EXCL). A
 * lock older than 30 s is left over from a crashed process and is broken.
 */
async function withKeysLock<T>(dir: string, work: () => Promise<T>): Promise<T> {
  await ensureDir(dir);
  const lock = join(dir, `${SIGNING_KEYS_FILE}.lock`);
  const deadline = Date.now() + 2 * LOCK_STALE_MS;
  for (;;) {
    try {
      const handle = await open(lock, 'wx', 0o600);
      await handle.close();
      break;
    } catch (error) {
      if (!isErrnoException(error) || error.code !== 'EEXIST') throw error;
      const age = await stat(lock).then((st) => Date.now() - st.mtimeMs, () => 0);
      if (age > LOCK_STALE_MS) await unlink(lock).catch(() => undefined);
      else if (Date.now() > deadline) throw new Error(`Signing keys are locked by another process (${lock})`);
      else await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  try {
    return await work();
  } finally {
    await unlink(lock).catch(() => undefined);
  }
}

/**
 * The private JWKs for oidc-provider's `jwks` option at `time`, ordered so
 * that it signs with the right one: oidc-provider takes the first key
 * matching the algorithm, so the keys active at `time` come first (newest
 * first), then the pending ones (published ahead of their use), then the
 * retired ones, which are only published for verification.
 */
export function jwksForProvider(set: KeySet, time: number = systemNow()): { keys: JWK[] } {
  const rank: Record<KeyState, number> = { active: 0, pending: 1, retired: 2 };
  const keys = [...set.keys].sort((a, b) =>
    rank[keyState(a, time)] - rank[keyState(b, time)]
    || activation(b) - activation(a)
    || (b.retiredAt ?? 0) - (a.retiredAt ?? 0)
    || b.createdAt - a.createdAt);
  return { keys: keys.map((key) => ({ ...key.jwk })) };
}

/**
 * The public parts of all keys (private members removed), in the same order
 * as {@link jwksForProvider}: what the provider publishes at its JWKS
 * endpoint, for tests and local verifiers.
 */
export function publicJwks(set: KeySet, time: number = systemNow()): { keys: JWK[] } {
  return { keys: jwksForProvider(set, time).keys.map(toPublicJwk) };
}

/** A copy of `jwk` without its private members. */
export function toPublicJwk(jwk: JWK): JWK {
  const copy: Record<string, unknown> = { ...jwk };
  for (const member of PRIVATE_MEMBERS) delete copy[member];
  return copy as JWK;
}

/**
 * Reads the cookie-signing secrets from `<dir>/cookie-keys.json`, creating
 * the file (0600) with one random 32-byte base64url secret when missing.
 * The first secret signs; any others are only accepted.
 *
 * @throws Error naming the file when it cannot be read or is invalid; the
 *   message never contains a secret.
 */
export async function loadOrCreateCookieKeys(dir: string): Promise<string[]> {
  const path = join(dir, COOKIE_KEYS_FILE);
  const existing = await readCookieKeys(path);
  if (existing) return existing;

  await ensureDir(dir);
  const keys = [randomBytes(32).toString('base64url')];
  if (await writeFileAtomic(path, `${JSON.stringify({ keys }, null, 2)}\n`, { mode: 0o600, exclusive: true })) {
    return keys;
  }
  const winner = await readCookieKeys(path);
  if (!winner) throw new Error(`Cookie keys file ${path} disappeared while it was being created`);
  return winner;
}

/**
 * Watches `<dir>/signing-keys.json` and calls `onChange` with the new key
 * set whenever the file is replaced or modified and the new content is
 * valid. An unreadable or invalid file is reported to `options.onError` and
 * otherwise ignored, so the caller keeps its current keys.
 *
 * The watcher does not keep the process alive.
 *
 * @returns a function that stops watching.
 */
export function watchKeys(
  dir: string,
  onChange: (set: KeySet) => void,
  options: WatchOptions = {},
): () => void {
  const path = join(dir, SIGNING_KEYS_FILE);
  const intervalMs = options.intervalMs ?? 2000;
  let stopped = false;
  let generation = 0;

  const reload = async (current: number): Promise<void> => {
    try {
      const set = await readKeySet(path);
      if (!set) throw new Error(`Signing keys file ${path} does not exist`);
      // A slower read of an older version must not overwrite a newer one.
      if (!stopped && current === generation) onChange(set);
    } catch (error) {
      if (!stopped && current === generation) options.onError?.(asError(error));
    }
  };

  const listener = (curr: Stats, prev: Stats): void => {
    // Atomic writes replace the inode, so compare it as well as the mtime.
    if (curr.mtimeMs === prev.mtimeMs && curr.ino === prev.ino && curr.size === prev.size) return;
    generation += 1;
    void reload(generation);
  };

  // Polling rather than fs.watch: inotify events do not cross NFS and other
  // shared volumes, and a stat every few seconds is cheap.
  watchFile(path, { interval: intervalMs, persistent: false }, listener);
  return () => {
    stopped = true;
    unwatchFile(path, listener);
  };
}

/**
 * Checks that `value` is a valid key set and returns it typed. `source`
 * names the file in error messages.
 *
 * @throws Error describing the first problem found, without key material.
 */
export async function parseKeySet(value: unknown, source: string): Promise<KeySet> {
  const fail = (problem: string): never => {
    throw new Error(`Invalid signing keys file ${source}: ${problem}`);
  };
  if (!isObject(value)) return fail('expected a JSON object');
  if (value.version !== 1) return fail('"version" must be 1');
  if (!Array.isArray(value.keys) || value.keys.length === 0) {
    return fail('"keys" must be a non-empty array');
  }

  const kids = new Set<string>();
  const activeAlgs = new Set<SigningAlg>();
  const presentAlgs = new Set<SigningAlg>();
  const keys: StoredKey[] = [];
  for (const [i, entry] of (value.keys as unknown[]).entries()) {
    const at = `keys[${i}]`;
    if (!isObject(entry)) return fail(`${at} must be an object`);
    const { jwk, createdAt, activatesAt, retiredAt } = entry;
    if (!isObject(jwk)) return fail(`${at}.jwk must be an object`);
    if (typeof jwk.kid !== 'string' || jwk.kid === '') return fail(`${at}.jwk.kid must be a non-empty string`);
    if (kids.has(jwk.kid)) return fail(`${at}.jwk.kid is a duplicate`);
    kids.add(jwk.kid);
    if (jwk.use !== 'sig') return fail(`${at}.jwk.use must be "sig"`);
    const alg = jwk.alg;
    if (!isSigningAlg(alg)) return fail(`${at}.jwk.alg must be one of ${SIGNING_ALGORITHMS.join(', ')}`);
    if (alg === 'ES256' && (jwk.kty !== 'EC' || jwk.crv !== 'P-256')) {
      return fail(`${at}.jwk must be an EC P-256 key for ES256`);
    }
    if (alg === 'RS256' && jwk.kty !== 'RSA') return fail(`${at}.jwk must be an RSA key for RS256`);
    if (typeof jwk.d !== 'string') return fail(`${at}.jwk must be a private key`);
    try {
      await importJWK(jwk as JWK, alg);
    } catch {
      return fail(`${at}.jwk is not a usable ${alg} private key`);
    }
    if (!isEpochSeconds(createdAt)) return fail(`${at}.createdAt must be a time in epoch seconds`);
    if (retiredAt !== undefined && !isEpochSeconds(retiredAt)) {
      return fail(`${at}.retiredAt must be a time in epoch seconds`);
    }
    if (activatesAt !== undefined && !isEpochSeconds(activatesAt)) {
      return fail(`${at}.activatesAt must be a time in epoch seconds`);
    }
    presentAlgs.add(alg);
    if (retiredAt === undefined) activeAlgs.add(alg);
    const key: StoredKey = { jwk: jwk as SigningJwk, createdAt };
    if (activatesAt !== undefined) key.activatesAt = activatesAt;
    if (retiredAt !== undefined) key.retiredAt = retiredAt;
    keys.push(key);
  }
  // Without an active key the provider would quietly keep signing with a retired one.
  for (const alg of presentAlgs) {
    if (!activeAlgs.has(alg)) fail(`no active (not retired) ${alg} key`);
  }
  return { version: 1, keys };
}

async function loadOrCreate(dir: string, now: () => number): Promise<{ set: KeySet; created: boolean }> {
  const path = join(dir, SIGNING_KEYS_FILE);
  const existing = await readKeySet(path);
  if (existing) return { set: existing, created: false };

  await ensureDir(dir);
  const createdAt = now();
  const set: KeySet = {
    version: 1,
    keys: [await newKey('ES256', createdAt), await newKey('RS256', createdAt)],
  };
  if (await writeFileAtomic(path, serialize(set), { mode: 0o600, exclusive: true })) return { set, created: true };
  // Another replica created the file first: its keys are the ones everybody uses.
  const winner = await readKeySet(path);
  if (!winner) throw new Error(`Signing keys file ${path} disappeared while it was being created`);
  return { set: winner, created: false };
}

async function readKeySet(path: string): Promise<KeySet | undefined> {
  const text = await readIfExists(path, 'signing keys');
  if (text === undefined) return undefined;
  return parseKeySet(parseJson(text, `signing keys file ${path}`), path);
}

async function readCookieKeys(path: string): Promise<string[] | undefined> {
  const text = await readIfExists(path, 'cookie keys');
  if (text === undefined) return undefined;
  const value = parseJson(text, `cookie keys file ${path}`);
  const keys = isObject(value) ? value.keys : undefined;
  if (
    !Array.isArray(keys) ||
    keys.length === 0 ||
    !keys.every((key): key is string => typeof key === 'string' && key.length >= 32)
  ) {
    throw new Error(
      `Invalid cookie keys file ${path}: "keys" must be a non-empty array of strings of at least 32 characters`,
    );
  }
  return keys;
}

async function readIfExists(path: string, what: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    if (isErrnoException(error) && error.code === 'ENOENT') return undefined;
    const code = isErrnoException(error) ? (error.code ?? 'error') : 'error';
    throw new Error(`Cannot read ${what} file ${path} (${code})`, { cause: error });
  }
}

function parseJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    // JSON.parse quotes the text around the error, which may be key material.
    throw new Error(`Invalid ${what}: not valid JSON (corrupt or half-written?)`);
  }
}

async function newKey(alg: SigningAlg, createdAt: number): Promise<StoredKey> {
  const { privateKey } = await generateKeyPair(alg, { extractable: true, modulusLength: 2048 });
  const exported = await exportJWK(privateKey);
  const kid = await calculateJwkThumbprint(exported, 'sha256');
  return { jwk: { ...exported, kid, alg, use: 'sig' }, createdAt };
}

function serialize(set: KeySet): string {
  return `${JSON.stringify(set, null, 2)}\n`;
}

async function ensureDir(dir: string): Promise<void> {
  // An existing directory (a mounted volume) keeps the mode its owner gave it.
  await mkdir(dir, { recursive: true, mode: 0o700 });
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isEpochSeconds(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0;
}

function isErrnoException(error: unknown): error is NodeJS.ErrnoException {
  return error instanceof Error && 'code' in error;
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}
