import { Redis, type RedisOptions } from 'ioredis';
import { ErrorCode, TransientError } from '@layertap/contracts';

export { Redis } from 'ioredis';

export interface RedisConnectionOptions {
  /**
   * `blocking`: for BullMQ workers and anything that must ride out a Redis restart (retries forever,
   * `maxRetriesPerRequest: null` as BullMQ requires). `command`: for one-shot CLI commands, which should
   * fail fast with a clear message when Redis is not there. Default `blocking`.
   */
  mode?: 'blocking' | 'command';
  /** How long `connectRedis` waits for the first connection. Default 10 s. */
  connectTimeoutMs?: number;
  /** Extra ioredis options (TLS settings, ...). */
  redisOptions?: RedisOptions;
}

/** Shows a Redis URL without its password. */
export function safeRedisUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '<invalid Redis URL>';
  }
}

/** Creates an ioredis client for `url` (`redis://` or `rediss://` for TLS) without waiting for it. */
export function createRedis(url: string, options: RedisConnectionOptions = {}): Redis {
  const mode = options.mode ?? 'blocking';
  return new Redis(url, {
    maxRetriesPerRequest: mode === 'blocking' ? null : 1,
    enableOfflineQueue: true,
    // Reconnect with capped backoff; a worker keeps trying while Redis restarts.
    retryStrategy: (times) => (mode === 'command' && times > 3 ? null : Math.min(times * 250, 5_000)),
    lazyConnect: false,
    ...options.redisOptions,
  });
}

/** Creates a client and waits until it is ready, or throws a TransientError naming the (redacted) URL. */
export async function connectRedis(url: string, options: RedisConnectionOptions = {}): Promise<Redis> {
  const client = createRedis(url, options);
  const timeoutMs = options.connectTimeoutMs ?? 10_000;
  try {
    await new Promise<void>((resolve, reject) => {
      if (client.status === 'ready') return resolve();
      let lastError: unknown;
      const onError = (err: unknown) => (lastError = err);
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(lastError instanceof Error ? lastError.message : `no answer in ${timeoutMs} ms`));
      }, timeoutMs);
      const onReady = () => {
        cleanup();
        resolve();
      };
      const onEnd = () => {
        cleanup();
        reject(new Error(lastError instanceof Error ? lastError.message : 'connection closed'));
      };
      const cleanup = () => {
        clearTimeout(timer);
        client.off('ready', onReady);
        client.off('error', onError);
        client.off('end', onEnd);
      };
      client.on('ready', onReady);
      client.on('error', onError);
      client.on('end', onEnd);
    });
  } catch (err) {
    client.disconnect();
    throw new TransientError(
      ErrorCode.ServiceUnavailable,
      `cannot connect to Redis at ${safeRedisUrl(url)}: ${err instanceof Error ? err.message : String(err)} ` +
        '(set REDIS_URL, or run `npx layertap demo` which starts one)',
    );
  }
  return client;
}
