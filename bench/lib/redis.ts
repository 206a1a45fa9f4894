import { Redis } from 'ioredis';

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
