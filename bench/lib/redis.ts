import { Redis } from 'ioredis';

/** CPU time the Redis server has used since it started (user + system, all threads), ms. */
export async function redisCpuMs(url: string): Promise<number | undefined> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  redis.on('error', () => {});
  try {
    await redis.connect();
    const info = await redis.info('cpu');
    const field = (name: string) => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info)?.[1] ?? Number.NaN);
    const seconds = field('used_cpu_sys') + field('used_cpu_user');
    return Number.isFinite(seconds) ? seconds * 1000 : undefined;
  } catch {
    return undefined;
  } finally {
    redis.disconnect();
  }
}

/** Deletes every key starting with `prefix` (a benchmark's own keys); returns how many. */
export async function deleteKeysWithPrefix(url: string, prefix: string): Promise<number> {
  if (!prefix || prefix.includes('*')) throw new Error(`refusing to delete keys with prefix ${JSON.stringify(prefix)}`);
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  redis.on('error', () => {});
  try {
    await redis.connect();
    let cursor = '0';
    let deleted = 0;
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length) deleted += await redis.unlink(...keys);
    } while (cursor !== '0');
    return deleted;
  } finally {
    redis.disconnect();
  }
}
