import { S3Client } from '@aws-sdk/client-s3';
import { LayertapQueues, connectRedis, type Redis } from '@layertap/queue';
import type { ProducerConfig } from './config';

export interface CliContext {
  config: ProducerConfig;
  readonly queues: LayertapQueues;
  redis: Redis;
  s3: S3Client;
}

/**
 * Connects to Redis (and prepares an S3 client), runs `fn`, and always closes what it opened. `waiting`
 * commands ride out Redis restarts; one-shot commands fail fast with a clear message.
 */
export async function withContext<T>(config: ProducerConfig, mode: 'command' | 'waiting', fn: (ctx: CliContext) => Promise<T>): Promise<T> {
  const redis = await connectRedis(config.redis.url, { mode: mode === 'waiting' ? 'blocking' : 'command' });
  const s3 = new S3Client({ ...config.s3, maxAttempts: 3 });
  // Queues are made on first use: BullMQ writes queue metadata when one is created, and a request refused
  // by validation must leave Redis untouched.
  let queues: LayertapQueues | undefined;
  const ctx: CliContext = {
    config,
    redis,
    s3,
    get queues() {
      return (queues ??= new LayertapQueues({ connection: redis, prefix: config.redis.prefix }));
    },
  };
  try {
    return await fn(ctx);
  } finally {
    await queues?.close().catch(() => undefined);
    await redis.quit().catch(() => redis.disconnect());
    s3.destroy();
  }
}
