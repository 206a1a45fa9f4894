import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createFedgate } from '../../src/app.ts';
import { loadConfig } from '../../src/config/index.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { RedisStore } from '../../src/store/index.ts';
import { PrivateRedis } from '../support/private-redis.ts';

describe('readiness follows the store', () => {
  let redis: PrivateRedis | undefined;
  let cleanup: (() => Promise<void>) | undefined;
  after(async () => {
    await redis?.kill();
    await cleanup?.();
  });

  it('answers /readyz 503 when Redis goes away while /healthz stays 200', async () => {
    redis = await PrivateRedis.start();
    const url = redis.url;
    const config = await loadConfig({ LOG_LEVEL: 'silent' });
    config.keysDir = await mkdtemp(join(tmpdir(), 'fedgate-keys-'));
    const store = new RedisStore({ url, keyPrefix: 'fedgate-readiness:' });
    const fedgate = await createFedgate(config, { store, logger: createLogger('silent'), watchKeys: false });
    cleanup = async () => { await fedgate.close(); await rm(config.keysDir, { recursive: true, force: true }); };
    const listening = await fedgate.listen(0, '127.0.0.1');
    const base = `http://127.0.0.1:${(listening.address() as { port: number }).port}`;
    try {
      assert.deepEqual(await (await fetch(`${base}/readyz`)).json(), { status: 'ready', store: 'redis' });
      await redis.kill();
      const res = await fetch(`${base}/readyz`);
      assert.equal(res.status, 503);
      assert.deepEqual(await res.json(), { status: 'unavailable', store: 'redis' });
      assert.equal((await fetch(`${base}/healthz`)).status, 200);
      const token = await fetch(`${base}/token`, {
        method: 'POST',
        headers: { authorization: `Basic ${Buffer.from('demo-service:demo-service-secret').toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' },
        body: 'grant_type=client_credentials',
      });
      assert.equal(token.status, 503, 'an opaque token cannot be stored: temporarily unavailable');
      assert.ok(token.headers.get('retry-after'));
      const body = await token.json() as { error: string; error_description: string };
      assert.equal(body.error, 'temporarily_unavailable');
      assert.doesNotMatch(body.error_description, /ECONNREFUSED|127\.0\.0\.1|redis/i, 'no internals leak');
    } finally {
      await cleanup?.();
      cleanup = undefined;
    }
  });
});
