import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT, createLocalJWKSet, importJWK, jwtVerify, type JWK } from 'jose';
import {
  jwksForProvider,
  loadOrCreateCookieKeys,
  loadOrCreateKeys,
  maintainKeys,
  nextKeyChange,
  publicJwks,
  rotateKeys,
  type RotationPendingError,
  watchKeys,
} from '../../src/keys/index.ts';
import type { KeySet } from '../../src/keys/index.ts';

const T0 = 1_700_000_000;
const LIFETIME = 3600;
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth'];

const dirs: string[] = [];
after(async () => {
  await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'fedgate-keys-'));
  dirs.push(dir);
  return dir;
}

/** A clock that only moves when told to. */
function pinnedClock(start: number): { now: () => number; advance: (seconds: number) => void } {
  let time = start;
  return { now: () => time, advance: (seconds) => { time += seconds; } };
}

function activeKid(set: KeySet, alg: string): string | undefined {
  return set.keys.find((key) => key.jwk.alg === alg && key.retiredAt === undefined)?.jwk.kid;
}

/** The kid oidc-provider would sign with: the first key of the algorithm. */
function signingKid(jwks: { keys: JWK[] }, alg: string): string | undefined {
  return jwks.keys.find((jwk) => jwk.alg === alg)?.kid;
}

function decodeKid(token: string): string {
  return (JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString()) as { kid: string }).kid;
}

describe('key store', () => {
  it('creates one ES256 and one RS256 key at first load, private file mode 0600', async () => {
    const dir = join(await tempDir(), 'nested', 'keys');
    const clock = pinnedClock(T0);
    const set = await loadOrCreateKeys(dir, clock);

    assert.equal(set.version, 1);
    assert.deepEqual(set.keys.map((key) => key.jwk.alg).sort(), ['ES256', 'RS256']);
    for (const key of set.keys) {
      assert.equal(key.createdAt, T0);
      assert.equal(key.retiredAt, undefined);
      assert.equal(key.jwk.use, 'sig');
      assert.equal(typeof key.jwk.d, 'string');
    }
    const es = set.keys.find((key) => key.jwk.alg === 'ES256')!.jwk;
    assert.equal(es.crv, 'P-256');
    const rs = set.keys.find((key) => key.jwk.alg === 'RS256')!.jwk;
    assert.equal(Buffer.from(rs.n!, 'base64url').length * 8, 2048);

    const fileStat = await stat(join(dir, 'signing-keys.json'));
    assert.equal(fileStat.mode & 0o777, 0o600);
    assert.equal((await stat(dir)).mode & 0o777, 0o700);
    // No temporary files left behind.
    assert.deepEqual(await readdir(dir), ['signing-keys.json']);
  });

  it('returns the same keys on the next load', async () => {
    const dir = await tempDir();
    const first = await loadOrCreateKeys(dir, pinnedClock(T0));
    const second = await loadOrCreateKeys(dir, pinnedClock(T0 + 100));
    assert.deepEqual(
      second.keys.map((key) => key.jwk.kid),
      first.keys.map((key) => key.jwk.kid),
    );
    assert.deepEqual(second, first);
  });

  it('creates a single file when several loads race on an empty directory', async () => {
    const dir = await tempDir();
    const sets = await Promise.all([1, 2, 3, 4].map(() => loadOrCreateKeys(dir, pinnedClock(T0))));
    const kids = sets.map((set) => set.keys.map((key) => key.jwk.kid).join(','));
    assert.equal(new Set(kids).size, 1);
    assert.deepEqual(await readdir(dir), ['signing-keys.json']);
  });

  it('uses the RFC 7638 thumbprint as kid', async () => {
    const { calculateJwkThumbprint } = await import('jose');
    const set = await loadOrCreateKeys(await tempDir(), pinnedClock(T0));
    for (const key of set.keys) {
      assert.equal(key.jwk.kid, await calculateJwkThumbprint(key.jwk, 'sha256'));
    }
  });

  it('rotation signs with the new key first and keeps the old one published', async () => {
    const dir = await tempDir();
    const clock = pinnedClock(T0);
    const before = await loadOrCreateKeys(dir, clock);
    const oldEs = activeKid(before, 'ES256')!;
    const oldRs = activeKid(before, 'RS256')!;

    clock.advance(600);
    const result = await rotateKeys(dir, { now: clock.now, maxTokenLifetimeSeconds: LIFETIME });
    assert.equal(result.added.length, 2);
    assert.deepEqual([...result.retired].sort(), [oldEs, oldRs].sort());
    assert.deepEqual(result.pruned, []);

    const after = await loadOrCreateKeys(dir, clock);
    const newEs = activeKid(after, 'ES256')!;
    const newRs = activeKid(after, 'RS256')!;
    assert.deepEqual([newEs, newRs].sort(), [...result.added].sort());
    assert.notEqual(newEs, oldEs);
    assert.equal(after.keys.find((key) => key.jwk.kid === oldEs)?.retiredAt, T0 + 600);

    const jwks = jwksForProvider(after);
    assert.equal(signingKid(jwks, 'ES256'), newEs);
    assert.equal(signingKid(jwks, 'RS256'), newRs);
    const kids = jwks.keys.map((jwk) => jwk.kid);
    assert.ok(kids.includes(oldEs));
    assert.ok(kids.includes(oldRs));
    // Active keys before retired ones.
    assert.deepEqual(kids.slice(0, 2).sort(), [newEs, newRs].sort());
    assert.equal((await stat(join(dir, 'signing-keys.json'))).mode & 0o777, 0o600);
    assert.deepEqual(await readdir(dir), ['signing-keys.json']);
  });

  it('walks a scheduled rollover with a fake clock: resource servers holding a cached JWKS never see an unknown kid', async () => {
    const DAY = 24 * 3600;
    const PREPUBLISH = 2 * DAY;
    const dir = await tempDir();
    const clock = pinnedClock(T0);
    const set0 = await loadOrCreateKeys(dir, clock);
    const oldEs = activeKid(set0, 'ES256')!;
    /** What a resource server's JWKS cache holds, and a token signed the way oidc-provider would at this time. */
    const jwksAt = async () => publicJwks(await loadOrCreateKeys(dir, clock), clock.now());
    const signNow = async (): Promise<string> => {
      const set = await loadOrCreateKeys(dir, clock);
      const jwk = jwksForProvider(set, clock.now()).keys.find((k) => k.alg === 'ES256')!;
      return new SignJWT({ sub: 'alice' }).setProtectedHeader({ alg: 'ES256', kid: jwk.kid! })
        .setIssuedAt(clock.now()).setExpirationTime(clock.now() + LIFETIME).sign(await importJWK(jwk, 'ES256'));
    };
    const verifyWith = (jwks: { keys: JWK[] }, token: string) =>
      jwtVerify(token, createLocalJWKSet(jwks), { currentDate: new Date(clock.now() * 1000) });

    clock.advance(10 * DAY);
    assert.equal(decodeKid(await signNow()), oldEs);
    const scheduled = await rotateKeys(dir, { now: clock.now, maxTokenLifetimeSeconds: LIFETIME, prepublishSeconds: PREPUBLISH });
    assert.equal(scheduled.activatesAt, T0 + 10 * DAY + PREPUBLISH);
    const newEs = scheduled.added.find((kid) => kid !== activeKid(set0, 'RS256') && kid !== oldEs)!;
    // Published at once, signing nothing yet.
    const cachedAtSchedule = await jwksAt();
    assert.ok(cachedAtSchedule.keys.some((k) => k.kid === newEs));
    assert.equal(decodeKid(await signNow()), oldEs);
    await assert.rejects(
      rotateKeys(dir, { now: clock.now, maxTokenLifetimeSeconds: LIFETIME, prepublishSeconds: PREPUBLISH }),
      (err: RotationPendingError) => err.code === 'ERR_ROTATION_PENDING' && err.activatesAt === scheduled.activatesAt,
    );
    assert.equal(nextKeyChange(await loadOrCreateKeys(dir, clock), clock.now()), scheduled.activatesAt);

    clock.advance(PREPUBLISH - 1);
    assert.equal(decodeKid(await signNow()), oldEs, 'the old key signs until the new one activates');
    clock.advance(1);
    const afterToken = await signNow();
    assert.equal(decodeKid(afterToken), newEs, 'the new key signs once published for the prepublish period');
    // A resource server that fetched the JWKS when the rotation was scheduled (its cache at most 2 days old) accepts it,
    await verifyWith(cachedAtSchedule, afterToken);
    // and the old key's tokens still verify with the JWKS of now.
    clock.advance(-1);
    const lastOld = await signNow();
    clock.advance(1);
    await verifyWith(await jwksAt(), lastOld);

    // The old key stays until its last token has expired (plus the horizon), then the schedule prunes it.
    clock.advance(LIFETIME);
    assert.equal(await maintainKeys(dir, { now: clock.now, maxTokenLifetimeSeconds: LIFETIME, prepublishSeconds: PREPUBLISH, rotationIntervalSeconds: 180 * DAY }), undefined);
    assert.ok((await jwksAt()).keys.some((k) => k.kid === oldEs));
    clock.advance(1);
    const pruned = await maintainKeys(dir, { now: clock.now, maxTokenLifetimeSeconds: LIFETIME, prepublishSeconds: PREPUBLISH, rotationIntervalSeconds: 180 * DAY });
    assert.ok(pruned?.pruned.includes(oldEs));
    assert.deepEqual(pruned?.added, []);
    assert.ok(!(await jwksAt()).keys.some((k) => k.kid === oldEs));
  });

  it('the schedule rotates at the key age, published ahead; replicas racing rotate once', async () => {
    const DAY = 24 * 3600;
    const dir = await tempDir();
    const clock = pinnedClock(T0);
    await loadOrCreateKeys(dir, clock);
    const options = { now: clock.now, maxTokenLifetimeSeconds: LIFETIME, prepublishSeconds: 2 * DAY, rotationIntervalSeconds: 180 * DAY };
    clock.advance(178 * DAY - 1);
    assert.equal(await maintainKeys(dir, options), undefined, 'not due before interval - prepublish');
    clock.advance(1);
    const results = await Promise.all([1, 2, 3, 4].map(() => maintainKeys(dir, options)));
    const rotations = results.filter((r) => r?.added.length);
    assert.equal(rotations.length, 1, 'exactly one replica rotates');
    assert.equal(rotations[0]!.activatesAt, T0 + 180 * DAY, 'the new keys sign at the key age');
    const set = await loadOrCreateKeys(dir, clock);
    assert.equal(set.keys.length, 4);
    assert.deepEqual(await readdir(dir), ['signing-keys.json'], 'no lock file left behind');
  });

  it('an immediate rotation over a scheduled one withdraws the pending keys and signs at once', async () => {
    const dir = await tempDir();
    const clock = pinnedClock(T0);
    const set0 = await loadOrCreateKeys(dir, clock);
    const scheduled = await rotateKeys(dir, { now: clock.now, maxTokenLifetimeSeconds: LIFETIME, prepublishSeconds: 3600 });
    clock.advance(60);
    const now = await rotateKeys(dir, { now: clock.now, maxTokenLifetimeSeconds: LIFETIME });
    assert.deepEqual([...now.pruned].sort(), [...scheduled.added].sort(), 'pending keys never signed: withdrawn');
    assert.equal(now.activatesAt, T0 + 60);
    const set = await loadOrCreateKeys(dir, clock);
    const jwks = jwksForProvider(set, clock.now());
    assert.ok(now.added.includes(signingKid(jwks, 'ES256')!));
    for (const key of set0.keys) assert.equal(set.keys.find((k) => k.jwk.kid === key.jwk.kid)?.retiredAt, T0 + 60);
  });

  it('prunes a retired key once every token it signed has expired', async () => {
    const dir = await tempDir();
    const clock = pinnedClock(T0);
    const first = await loadOrCreateKeys(dir, clock);
    const firstKids = first.keys.map((key) => key.jwk.kid).sort();

    clock.advance(60);
    await rotateKeys(dir, { now: clock.now, maxTokenLifetimeSeconds: LIFETIME });

    // Exactly at retiredAt + lifetime a token could still be valid: keep.
    clock.advance(LIFETIME);
    const early = await rotateKeys(dir, { now: clock.now, maxTokenLifetimeSeconds: LIFETIME });
    assert.deepEqual(early.pruned, []);

    clock.advance(1);
    const late = await rotateKeys(dir, { now: clock.now, maxTokenLifetimeSeconds: LIFETIME });
    assert.deepEqual([...late.pruned].sort(), firstKids);

    const set = await loadOrCreateKeys(dir, clock);
    const kids = set.keys.map((key) => key.jwk.kid);
    for (const kid of firstKids) assert.ok(!kids.includes(kid));
    // Two generations retired (not yet expired) plus the active pair.
    assert.equal(set.keys.length, 6);
    assert.equal(set.keys.filter((key) => key.retiredAt === undefined).length, 2);
  });

  it('tokens signed with the old key still verify after rotation', async () => {
    const dir = await tempDir();
    const clock = pinnedClock(T0);
    const before = await loadOrCreateKeys(dir, clock);
    const oldEs = before.keys.find((key) => key.jwk.alg === 'ES256')!.jwk;
    const oldRs = before.keys.find((key) => key.jwk.alg === 'RS256')!.jwk;

    const sign = async (jwk: JWK, alg: string): Promise<string> =>
      new SignJWT({ sub: 'alice' })
        .setProtectedHeader({ alg, kid: jwk.kid! })
        .setIssuer('https://fedgate.test')
        .setIssuedAt()
        .setExpirationTime('1h')
        .sign(await importJWK(jwk, alg));
    const esToken = await sign(oldEs, 'ES256');
    const rsToken = await sign(oldRs, 'RS256');

    await rotateKeys(dir, { now: clock.now, maxTokenLifetimeSeconds: LIFETIME });
    const keySet = createLocalJWKSet(publicJwks(await loadOrCreateKeys(dir, clock)));
    for (const token of [esToken, rsToken]) {
      const { payload } = await jwtVerify(token, keySet, { issuer: 'https://fedgate.test' });
      assert.equal(payload.sub, 'alice');
    }
  });

  it('publicJwks holds no private members', async () => {
    const dir = await tempDir();
    const clock = pinnedClock(T0);
    await loadOrCreateKeys(dir, clock);
    await rotateKeys(dir, { now: clock.now, maxTokenLifetimeSeconds: LIFETIME });
    const set = await loadOrCreateKeys(dir, clock);
    const pub = publicJwks(set);
    assert.equal(pub.keys.length, 4);
    for (const jwk of pub.keys) {
      for (const member of PRIVATE_MEMBERS) assert.ok(!(member in jwk), `public JWK has "${member}"`);
      assert.ok(jwk.kid && jwk.alg && jwk.use === 'sig');
    }
    assert.deepEqual(pub.keys.map((jwk) => jwk.kid), jwksForProvider(set).keys.map((jwk) => jwk.kid));
    // The stored set itself is left untouched.
    assert.ok(set.keys.every((key) => typeof key.jwk.d === 'string'));
  });

  it('rejects a corrupt file with a clear error naming it and no key material', async () => {
    const dir = await tempDir();
    const file = join(dir, 'signing-keys.json');
    const secret = 'c2VjcmV0LWtleS1tYXRlcmlhbA';
    await writeFile(file, `{"version":1,"keys":[{"jwk":{"d":"${secret}"`);
    await assert.rejects(loadOrCreateKeys(dir), (error: Error) => {
      assert.ok(error.message.includes(file), error.message);
      assert.match(error.message, /not valid JSON/);
      assert.ok(!error.message.includes(secret));
      return true;
    });
    // The corrupt file is not replaced by new keys.
    assert.ok((await readFile(file, 'utf8')).includes(secret));
  });

  it('rejects a structurally invalid file', async () => {
    const dir = await tempDir();
    const file = join(dir, 'signing-keys.json');
    const set = await loadOrCreateKeys(dir, pinnedClock(T0));
    const secret = set.keys[0]!.jwk.d!;
    const broken = structuredClone(set);
    broken.keys[0]!.jwk.d = `${secret.slice(0, 10)}`;
    await writeFile(file, JSON.stringify(broken));
    await assert.rejects(loadOrCreateKeys(dir), (error: Error) => {
      assert.ok(error.message.includes(file), error.message);
      assert.match(error.message, /keys\[0\]\.jwk/);
      assert.ok(!error.message.includes(secret.slice(0, 10)));
      return true;
    });

    await writeFile(file, JSON.stringify({ version: 2, keys: set.keys }));
    await assert.rejects(loadOrCreateKeys(dir), /Invalid signing keys file .*"version" must be 1/);
  });

  it('watchKeys reports a rotation and ignores a corrupt file', async () => {
    const dir = await tempDir();
    const clock = pinnedClock(T0);
    await loadOrCreateKeys(dir, clock);

    const changes: KeySet[] = [];
    const errors: Error[] = [];
    let notify: (() => void) | undefined;
    const stop = watchKeys(
      dir,
      (set) => {
        changes.push(set);
        notify?.();
      },
      {
        intervalMs: 50,
        onError: (error) => {
          errors.push(error);
          notify?.();
        },
      },
    );
    const nextEvent = (): Promise<void> =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no event from watchKeys within 3 s')), 3000);
        notify = () => {
          clearTimeout(timer);
          notify = undefined;
          resolve();
        };
      });

    try {
      // Let the watcher take its first stat before anything changes.
      await new Promise((resolve) => setTimeout(resolve, 150));

      const rotated = nextEvent();
      const result = await rotateKeys(dir, { now: clock.now, maxTokenLifetimeSeconds: LIFETIME });
      await rotated;
      assert.equal(errors.length, 0);
      const latest = changes.at(-1)!;
      assert.equal(signingKid(jwksForProvider(latest), 'ES256'), activeKid(latest, 'ES256'));
      assert.ok(result.added.includes(activeKid(latest, 'ES256')!));

      const failed = nextEvent();
      const changesBefore = changes.length;
      await writeFile(join(dir, 'signing-keys.json'), '{"version":1,"ke');
      await failed;
      assert.equal(changes.length, changesBefore);
      assert.match(errors.at(-1)!.message, /signing-keys\.json/);
    } finally {
      stop();
    }
  });
});

describe('cookie keys', () => {
  it('generates one 32-byte secret once and keeps it', async () => {
    const dir = await tempDir();
    const first = await loadOrCreateCookieKeys(dir);
    assert.equal(first.length, 1);
    assert.equal(Buffer.from(first[0]!, 'base64url').length, 32);
    assert.equal((await stat(join(dir, 'cookie-keys.json'))).mode & 0o777, 0o600);
    assert.deepEqual(await loadOrCreateCookieKeys(dir), first);
    assert.deepEqual(JSON.parse(await readFile(join(dir, 'cookie-keys.json'), 'utf8')), { keys: first });
  });

  it('rejects an invalid cookie keys file naming it', async () => {
    const dir = await tempDir();
    const file = join(dir, 'cookie-keys.json');
    await writeFile(file, JSON.stringify({ keys: [] }));
    await assert.rejects(loadOrCreateCookieKeys(dir), (error: Error) => error.message.includes(file));
  });
});
