import type { Redis } from 'ioredis';

/** One Redis key with its type and every value it holds, as text. */
export interface DumpedKey {
  key: string;
  type: string;
  values: string[];
}

/**
 * Reads every key of the current database with a raw client, whatever its type: strings, hashes (fields and
 * values), lists, sets, sorted sets (members and scores) and streams (ids, fields and values). BullMQ uses
 * all of these; a test that looks for leaked secrets must read them all.
 */
export async function dumpRedis(redis: Redis): Promise<DumpedKey[]> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'COUNT', 1000);
    keys.push(...batch);
    cursor = next;
  } while (cursor !== '0');

  const dumped: DumpedKey[] = [];
  for (const key of keys.sort()) {
    const type = await redis.type(key);
    let values: string[];
    switch (type) {
      case 'string':
        values = [(await redis.get(key)) ?? ''];
        break;
      case 'hash':
        values = Object.entries(await redis.hgetall(key)).flat();
        break;
      case 'list':
        values = await redis.lrange(key, 0, -1);
        break;
      case 'set':
        values = await redis.smembers(key);
        break;
      case 'zset':
        values = await redis.zrange(key, 0, -1, 'WITHSCORES');
        break;
      case 'stream':
        values = (await redis.xrange(key, '-', '+')).flatMap(([id, fields]) => [id, ...fields]);
        break;
      case 'none': // expired or removed since SCAN
        continue;
      default:
        throw new Error(`dumpRedis: key ${key} has a type this helper does not read: ${type}`);
    }
    dumped.push({ key, type, values });
  }
  return dumped;
}
