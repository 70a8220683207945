import { Cluster, Redis as RedisServerClient, type RedisOptions } from 'ioredis';
import { ErrorCode, TransientError, ValidationError, redactText, redactUri } from '@layertap/contracts';

export { Cluster } from 'ioredis';

/**
 * A connection to one Redis server or to a Redis Cluster. BullMQ, `LayertapQueues` and `DatasetStore` take
 * either: every key layertap uses lives under the queue prefix, which on a cluster carries a hash tag
 * (`{layertap}`) so that all of them hash to one slot.
 */
export type Redis = RedisServerClient | Cluster;

export interface RedisConnectionOptions {
  /**
   * `blocking`: for BullMQ workers and anything that must ride out a Redis restart (retries forever,
   * `maxRetriesPerRequest: null` as BullMQ requires). `command`: for one-shot CLI commands, which should
   * fail fast with a clear message when Redis is not there. Default `blocking`.
   */
  mode?: 'blocking' | 'command';
  /** How long `connectRedis` waits for the first connection. Default 10 s. */
  connectTimeoutMs?: number;
  /** Extra ioredis options (TLS settings, ...); for a cluster they apply to the connection to each node. */
  redisOptions?: RedisOptions;
}

/** The nodes and credentials of a `redis-cluster://` (or `rediss-cluster://`, TLS) URL. */
export interface ClusterUrl {
  nodes: Array<{ host: string; port: number }>;
  username?: string;
  password?: string;
  tls: boolean;
}

const CLUSTER_SCHEME = /^(rediss?)-cluster:\/\//i;

/** Whether `url` names a Redis Cluster (`redis-cluster://host:port,host:port`, `rediss-cluster://` for TLS). */
export function isClusterUrl(url: string): boolean {
  return CLUSTER_SCHEME.test(url);
}

function badClusterUrl(problem: string): ValidationError {
  return new ValidationError(ErrorCode.InvalidRequest, `invalid Redis Cluster URL: ${problem} (expected redis-cluster://[:password@]host:port[,host:port...])`);
}

/**
 * Parses `redis-cluster://[user:password@]host:port[,host:port...][/]`; `rediss-cluster://` connects with
 * TLS. Any node is enough to discover the others; list a few in case one is down. IPv6 hosts go in brackets.
 */
export function parseClusterUrl(url: string): ClusterUrl {
  const scheme = CLUSTER_SCHEME.exec(url);
  if (!scheme) throw badClusterUrl('it does not start with redis-cluster:// or rediss-cluster://');
  let rest = url.slice(scheme[0].length).replace(/\/+$/, '');
  if (/[/?#]/.test(rest)) throw badClusterUrl('a cluster has no database number, path or query');
  let username: string | undefined;
  let password: string | undefined;
  const at = rest.lastIndexOf('@');
  if (at >= 0) {
    const auth = rest.slice(0, at);
    rest = rest.slice(at + 1);
    const colon = auth.indexOf(':');
    const user = decodeURIComponent(colon >= 0 ? auth.slice(0, colon) : auth);
    const pass = colon >= 0 ? decodeURIComponent(auth.slice(colon + 1)) : undefined;
    if (colon < 0) password = user;
    else {
      if (user) username = user;
      if (pass) password = pass;
    }
  }
  const nodes = rest.split(',').map((node) => {
    const m = /^(\[[^\]]+\]|[^:[\]]+):(\d{1,5})$/.exec(node.trim());
    const port = Number(m?.[2]);
    if (!m || !m[1] || port < 1 || port > 65535) throw badClusterUrl(`node ${JSON.stringify(node)} is not host:port`);
    return { host: m[1].replace(/^\[|\]$/g, ''), port };
  });
  return { nodes, ...(username ? { username } : {}), ...(password ? { password } : {}), tls: scheme[1]?.toLowerCase() === 'rediss' };
}

/**
 * Whether every key starting with `prefix` hashes to the same Redis Cluster slot: the prefix holds a hash
 * tag, a non-empty `{...}` (Redis hashes the text between the first `{` and the next `}`).
 */
export function hasHashTag(prefix: string): boolean {
  const open = prefix.indexOf('{');
  if (open < 0) return false;
  const close = prefix.indexOf('}', open + 1);
  return close > open + 1;
}

/** Throws a clear error unless `prefix` carries a hash tag (needed on Redis Cluster). */
export function assertClusterPrefix(prefix: string): void {
  if (!hasHashTag(prefix)) {
    throw new ValidationError(
      ErrorCode.InvalidRequest,
      `queue prefix ${JSON.stringify(prefix)} has no hash tag: on Redis Cluster, BullMQ needs every key of a queue in one slot. ` +
        `Set LAYERTAP_QUEUE_PREFIX to a prefix with a {hash tag}, such as {layertap}`,
    );
  }
}

/** Whether `client` is a Redis Cluster connection. */
export function isCluster(client: Redis): client is Cluster {
  return (client as { isCluster?: boolean }).isCluster === true;
}

/** Shows a Redis URL without its password. */
export function safeRedisUrl(url: string): string {
  if (isClusterUrl(url)) {
    try {
      const parsed = parseClusterUrl(url);
      const scheme = parsed.tls ? 'rediss-cluster' : 'redis-cluster';
      const auth = parsed.password ? `${parsed.username ? encodeURIComponent(parsed.username) : ''}:***@` : '';
      return `${scheme}://${auth}${parsed.nodes.map((n) => `${n.host.includes(':') ? `[${n.host}]` : n.host}:${n.port}`).join(',')}`;
    } catch {
      return '<invalid Redis Cluster URL>';
    }
  }
  try {
    new URL(url);
  } catch {
    return '<invalid Redis URL>';
  }
  // The one rule set: the password in userinfo and credential-like query parameters (`?password=`).
  return redactUri(url, Number.POSITIVE_INFINITY, { userinfo: 'mask' });
}

/**
 * Refuses a URL ioredis would misread: with an unknown scheme (`redsi://`) it takes the whole URL for a
 * socket path and its ENOENT message would carry the password.
 */
function checkRedisScheme(url: string): void {
  if (isClusterUrl(url) || /^rediss?:\/\//i.test(url) || url.startsWith('/')) return;
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(url)?.[1];
  throw new ValidationError(
    ErrorCode.InvalidRequest,
    `invalid Redis URL ${safeRedisUrl(url)}: ${scheme ? `unknown scheme "${scheme}:"` : 'no scheme'} ` +
      '(expected redis://, rediss://, redis-cluster:// or rediss-cluster://)',
  );
}

/**
 * Creates an ioredis client for `url` without waiting for it: `redis://` or `rediss://` (TLS) for one
 * server, `redis-cluster://host:port,...` or `rediss-cluster://` for a Redis Cluster.
 */
export function createRedis(url: string, options: RedisConnectionOptions = {}): Redis {
  const mode = options.mode ?? 'blocking';
  // Reconnect with capped backoff; a worker keeps trying while Redis restarts.
  // A one-shot command gives up after two quick retries (0.75 s): a Redis that is down is said at once.
  const retry = (times: number) => (mode === 'command' && times > 2 ? null : Math.min(times * 250, 5_000));
  const maxRetriesPerRequest = mode === 'blocking' ? null : 1;
  checkRedisScheme(url);
  if (isClusterUrl(url)) {
    const cluster = parseClusterUrl(url);
    return new Cluster(cluster.nodes, {
      clusterRetryStrategy: retry,
      enableOfflineQueue: true,
      enableReadyCheck: true,
      redisOptions: {
        // BullMQ refuses a blocking cluster connection unless its nodes' connections have this null.
        maxRetriesPerRequest,
        ...(cluster.username ? { username: cluster.username } : {}),
        ...(cluster.password ? { password: cluster.password } : {}),
        ...(cluster.tls ? { tls: {} } : {}),
        ...options.redisOptions,
      },
    });
  }
  return new RedisServerClient(url, {
    maxRetriesPerRequest,
    enableOfflineQueue: true,
    retryStrategy: retry,
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
      const onError = (err: unknown) => {
        lastError = err;
        // Wrong or missing credentials do not fix themselves: fail now rather than retry until the timeout.
        if (err instanceof Error && /^(WRONGPASS|NOAUTH)/.test(err.message)) {
          cleanup();
          reject(err);
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(lastError instanceof Error ? describeConnectError(lastError) : `no answer in ${timeoutMs} ms`));
      }, timeoutMs);
      const onReady = () => {
        cleanup();
        resolve();
      };
      const onEnd = () => {
        cleanup();
        reject(new Error(lastError instanceof Error ? describeConnectError(lastError) : 'connection closed'));
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
      `cannot connect to Redis at ${safeRedisUrl(url)}: ${redactText((err instanceof Error ? err.message : String(err)).split(url).join(safeRedisUrl(url)))} ` +
        '(is redis-server running there? start it, or set REDIS_URL to the Redis your workers use)',
    );
  }
  return client;
}

/** ioredis wraps a cluster's node errors ("Failed to refresh slots cache") and keeps the cause aside. */
function describeConnectError(err: Error): string {
  const last = (err as { lastNodeError?: unknown }).lastNodeError;
  return last instanceof Error ? `${err.message} (${last.message})` : err.message;
}
