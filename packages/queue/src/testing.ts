import { randomBytes } from 'node:crypto';
import { RedisServer } from '@layertap/devservices';
export { datasetConfig } from '@layertap/contracts/testing';
import { createRedis, type Redis } from './connection';

/** A real redis-server for one test file, and a client on it (BullMQ-ready: maxRetriesPerRequest null). */
export async function startRedis(): Promise<{ server: RedisServer; redis: Redis }> {
  const server = new RedisServer();
  await server.start();
  const redis = createRedis(server.url, { mode: 'blocking' });
  await redis.ping();
  return { server, redis };
}

export async function stopRedis(env: { server: RedisServer; redis: Redis } | undefined): Promise<void> {
  if (!env) return;
  await env.redis.quit().catch(() => env.redis.disconnect());
  await env.server.close();
}

/** A queue prefix no other test uses. */
export function uniquePrefix(name: string): string {
  return `lt-test-${name}-${randomBytes(4).toString('hex')}`;
}

/** Deletes every key under `prefix:` (queues and the dataset store), so no test sees another's leftovers. */
export async function deletePrefix(redis: Redis, prefix: string): Promise<number> {
  let cursor = '0';
  let deleted = 0;
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length) deleted += await redis.del(...keys);
  } while (cursor !== '0');
  return deleted;
}

/** `n` samples `s0..s(n-1)` with `s3://` URIs. */
export function samples(n: number, from = 0): Array<{ id: string; uri: string }> {
  return Array.from({ length: n }, (_, i) => ({ id: `s${from + i}`, uri: `s3://bucket/images/s${from + i}.jpg` }));
}

/** Polls `check` until it returns true, or fails after `timeoutMs`. */
export async function waitUntil(check: () => Promise<boolean> | boolean, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
