/**
 * The signing-key store: token-signing keys and cookie keys kept as files in
 * one directory (default `keys/`), shared by every replica.
 *
 * `signing-keys.json` holds private JWKs (ES256, the default, and RS256 for
 * clients that need it), each with its creation and, once superseded, its
 * retirement time. Retired keys are no longer used for signing but stay
 * published until every token they signed has expired; `rotateKeys` adds new
 * keys and prunes those. `cookie-keys.json` holds the secrets oidc-provider
 * signs its cookies with.
 *
 * Every write goes to a temporary file in the same directory (mode 0600,
 * fsync'd) that then replaces the target in one step, so a reader on any
 * replica sees either the old or the new file, never half of one.
 */
import { randomBytes } from 'node:crypto';
import { watchFile, unwatchFile, type Stats } from 'node:fs';
import { link, mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, type JWK } from 'jose';

/** The signing algorithms the store generates keys for. */
export type SigningAlg = 'ES256' | 'RS256';

/** A private signing JWK as stored: always with `kid`, `alg` and `use: "sig"`. */
export type SigningJwk = JWK & { kid: string; alg: SigningAlg; use: 'sig' };

/** One key of the store. */
export interface StoredKey {
  /** The private JWK; `kid` is its RFC 7638 thumbprint. */
  jwk: SigningJwk;
  /** Creation time, epoch seconds. */
  createdAt: number;
  /** When it stopped being used for signing, epoch seconds; absent while active. */
  retiredAt?: number;
}

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
}

/** Options of {@link watchKeys}. */
export interface WatchOptions {
  /** How often the file is polled, in milliseconds (default 2000). */
  intervalMs?: number;
  /** Called when the file changed but could not be read or is invalid; the old set stays in use. */
  onError?: (error: Error) => void;
}

/** The outcome of {@link rotateKeys}: kids added, newly retired and removed. */
export interface RotateResult {
  added: string[];
  retired: string[];
  pruned: string[];
}

/** File name of the signing keys inside the keys directory. */
export const SIGNING_KEYS_FILE = 'signing-keys.json';

/** File name of the cookie keys inside the keys directory. */
export const COOKIE_KEYS_FILE = 'cookie-keys.json';

const ALGS: readonly SigningAlg[] = ['ES256', 'RS256'];
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
 * and a new RS256 key, retires the previously active key of each algorithm
 * (they stay published so tokens they signed keep verifying) and removes
 * retired keys whose `retiredAt + maxTokenLifetimeSeconds` lies in the past.
 * When the file does not exist yet it is only created, with nothing to retire.
 *
 * Meant to be run by one process at a time (the `keys rotate` command);
 * replicas pick the new file up through {@link watchKeys}.
 *
 * @returns the kids added, retired by this rotation and pruned.
 */
export async function rotateKeys(dir: string, options: RotateOptions): Promise<RotateResult> {
  const { maxTokenLifetimeSeconds } = options;
  if (!Number.isFinite(maxTokenLifetimeSeconds) || maxTokenLifetimeSeconds < 0) {
    throw new Error('maxTokenLifetimeSeconds must be a non-negative number of seconds');
  }
  const now = options.now ?? systemNow;
  const path = join(dir, SIGNING_KEYS_FILE);
  const { set: current, created } = await loadOrCreate(dir, now);
  // Keys made just now are already the fresh ones; retiring them would only add clutter.
  if (created) return { added: current.keys.map((key) => key.jwk.kid), retired: [], pruned: [] };
  const time = now();

  const retired: string[] = [];
  const pruned: string[] = [];
  const kept: StoredKey[] = [];
  for (const key of current.keys) {
    if (key.retiredAt === undefined) {
      retired.push(key.jwk.kid);
      kept.push({ ...key, retiredAt: time });
    } else if (key.retiredAt + maxTokenLifetimeSeconds < time) {
      pruned.push(key.jwk.kid);
    } else {
      kept.push(key);
    }
  }

  const added = [await newKey('ES256', time), await newKey('RS256', time)];
  const next: KeySet = { version: 1, keys: [...added, ...kept] };
  await writeFileAtomic(path, serialize(next), { exclusive: false });
  return { added: added.map((key) => key.jwk.kid), retired, pruned };
}

/**
 * The private JWKs for oidc-provider's `jwks` option, ordered so that it
 * signs with the right one: oidc-provider takes the first key matching the
 * algorithm, so active keys come first (newest first), followed by the
 * retired ones, which are only published for verification.
 */
export function jwksForProvider(set: KeySet): { keys: JWK[] } {
  const active = set.keys.filter((key) => key.retiredAt === undefined);
  const retired = set.keys.filter((key) => key.retiredAt !== undefined);
  active.sort((a, b) => b.createdAt - a.createdAt);
  retired.sort((a, b) => (b.retiredAt ?? 0) - (a.retiredAt ?? 0) || b.createdAt - a.createdAt);
  return { keys: [...active, ...retired].map((key) => ({ ...key.jwk })) };
}

/**
 * The public parts of all keys (private members removed), in the same order
 * as {@link jwksForProvider}: what the provider publishes at its JWKS
 * endpoint, for tests and local verifiers.
 */
export function publicJwks(set: KeySet): { keys: JWK[] } {
  return { keys: jwksForProvider(set).keys.map(toPublicJwk) };
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
  if (await writeFileAtomic(path, `${JSON.stringify({ keys }, null, 2)}\n`, { exclusive: true })) {
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
    const { jwk, createdAt, retiredAt } = entry;
    if (!isObject(jwk)) return fail(`${at}.jwk must be an object`);
    if (typeof jwk.kid !== 'string' || jwk.kid === '') return fail(`${at}.jwk.kid must be a non-empty string`);
    if (kids.has(jwk.kid)) return fail(`${at}.jwk.kid is a duplicate`);
    kids.add(jwk.kid);
    if (jwk.use !== 'sig') return fail(`${at}.jwk.use must be "sig"`);
    const alg = jwk.alg;
    if (alg !== 'ES256' && alg !== 'RS256') return fail(`${at}.jwk.alg must be one of ${ALGS.join(', ')}`);
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
    presentAlgs.add(alg);
    if (retiredAt === undefined) activeAlgs.add(alg);
    const key: StoredKey = { jwk: jwk as SigningJwk, createdAt };
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
  if (await writeFileAtomic(path, serialize(set), { exclusive: true })) return { set, created: true };
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

/**
 * Writes `content` to `path` through a fsync'd 0600 temporary file. With
 * `exclusive`, an existing file is left alone and false returned.
 */
async function writeFileAtomic(
  path: string,
  content: string,
  { exclusive }: { exclusive: boolean },
): Promise<boolean> {
  const tmp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  let tmpExists = false;
  try {
    const handle = await open(tmp, 'wx', 0o600);
    tmpExists = true;
    try {
      // The mode given to open is filtered through the umask.
      await handle.chmod(0o600);
      await handle.writeFile(content, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    if (exclusive) {
      if (!(await linkNoClobber(tmp, path))) return false;
    } else {
      await rename(tmp, path);
      tmpExists = false;
    }
    await syncDir(path);
    return true;
  } finally {
    if (tmpExists) await unlink(tmp).catch(() => undefined);
  }
}

/**
 * Publishes `tmp` at `path` only if nothing is there yet: a hard link fails
 * with EEXIST instead of replacing, unlike rename. Returns false when `path`
 * already exists. The caller removes `tmp`.
 */
async function linkNoClobber(tmp: string, path: string): Promise<boolean> {
  try {
    await link(tmp, path);
    return true;
  } catch (error) {
    if (!isErrnoException(error)) throw error;
    if (error.code === 'EEXIST') return false;
    // Some volume drivers have no hard links; racing first starts then fall
    // back to last-writer-wins, which watchKeys reconciles.
    if (error.code === 'EPERM' || error.code === 'ENOTSUP' || error.code === 'ENOSYS' || error.code === 'EOPNOTSUPP') {
      await rename(tmp, path);
      return true;
    }
    throw error;
  }
}

async function syncDir(path: string): Promise<void> {
  // Makes the rename itself durable; not every platform can open a directory.
  const dir = dirname(path);
  try {
    const handle = await open(dir, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // Best effort.
  }
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
