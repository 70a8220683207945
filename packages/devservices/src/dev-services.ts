import { RedisServer, type RedisServerOptions } from './redis-server';
import { S3Server, type S3ServerOptions, type S3Settings } from './s3-server';

export interface DevServicesOptions {
  /** Options of the Redis server. Default: a free port, no password. */
  redis?: RedisServerOptions;
  /** Options of the S3 server. Default: a free port, bucket `layertap`, temp directory. */
  s3?: S3ServerOptions;
}

/** A Redis and an S3 endpoint for the demo and integration tests, started and closed together. */
export class DevServices {
  readonly redisServer: RedisServer;
  readonly s3Server: S3Server;

  constructor(options: DevServicesOptions = {}) {
    this.redisServer = new RedisServer(options.redis);
    this.s3Server = new S3Server(options.s3);
  }

  /** Starts both; if one fails the other is closed again, so a failed start leaks nothing. */
  async start(): Promise<this> {
    const results = await Promise.allSettled([this.redisServer.start(), this.s3Server.start()]);
    const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failure) {
      await this.close().catch(() => undefined);
      throw failure.reason;
    }
    return this;
  }

  get redisUrl(): string {
    return this.redisServer.url;
  }

  /** S3 client settings for the S3 server. */
  get s3(): S3Settings {
    return this.s3Server.settings;
  }

  /** Closes both, even when one of them fails to close (that failure is rethrown afterwards). */
  async close(): Promise<void> {
    const results = await Promise.allSettled([this.redisServer.close(), this.s3Server.close()]);
    const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failure) throw failure.reason;
  }
}
