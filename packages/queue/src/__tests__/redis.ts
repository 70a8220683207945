import { randomBytes } from 'node:crypto';
import { RedisServer } from '@layertap/devservices';
import type { DatasetConfig } from '@layertap/contracts';
import { createRedis, type Redis } from '../connection';

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

/** A valid dataset configuration for run 0 of `datasetId`. */
export function datasetConfig(datasetId: string, overrides: Partial<DatasetConfig> = {}): DatasetConfig {
  return {
    datasetId,
    model: 'vgg16',
    output: 's3://bucket/out',
    layers: [{ spec: 'conv1_1', canonical: 'block1_conv1', shape: [64, 224, 224] }],
    seed: 0,
    preprocess: 'torchvision',
    imageSize: 64,
    batchSize: 2,
    chunkSize: 2,
    dtype: 'float32',
    layout: 'chw',
    pool: 'none',
    format: 'npy',
    totalSamples: 5,
    submittedAt: '2025-03-01T12:00:00.000Z',
    run: 0,
    ...overrides,
  };
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
