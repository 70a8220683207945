import { S3Client } from '@aws-sdk/client-s3';
import { LayertapQueues, connectRedis, type Redis } from '@layertap/queue';
import type { ProducerConfig } from './config';

export interface CliContext {
  config: ProducerConfig;
  s3: S3Client;
  /** Connects to Redis on first use: requests are validated before Redis is touched. */
  queues(): Promise<LayertapQueues>;
  /** Connects to Redis (the connection `queues` then uses) without creating the queues: writes nothing. */
  connect(): Promise<void>;
}

/**
 * Prepares an S3 client and a lazy Redis connection, runs `fn`, and always closes what it opened.
 * `waiting` commands ride out Redis restarts; one-shot commands fail fast with a clear message.
 */
export async function withContext<T>(config: ProducerConfig, mode: 'command' | 'waiting', fn: (ctx: CliContext) => Promise<T>): Promise<T> {
  // Bounded: an S3 endpoint that does not answer fails a probe in seconds instead of hanging the command.
  const s3 = new S3Client({ ...config.s3, maxAttempts: 3, requestHandler: { connectionTimeout: 10_000, socketTimeout: 60_000 } });
  let redis: Redis | undefined;
  let connecting: Promise<Redis> | undefined;
  let queues: Promise<LayertapQueues> | undefined;
  const connect = () =>
    (connecting ??= connectRedis(config.redis.url, { mode: mode === 'waiting' ? 'blocking' : 'command' }).then((client) => {
      redis = client;
      return client;
    }));
  const ctx: CliContext = {
    config,
    s3,
    queues: () => (queues ??= connect().then((client) => new LayertapQueues({ connection: client, prefix: config.redis.prefix }))),
    connect: () => connect().then(() => undefined),
  };
  try {
    return await fn(ctx);
  } finally {
    const opened = await queues?.catch(() => undefined);
    await opened?.close().catch(() => undefined);
    await redis?.quit().catch(() => redis?.disconnect());
    s3.destroy();
  }
}
