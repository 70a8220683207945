import { z } from 'zod';
import { DEFAULT_QUEUE_PREFIX, ValidationError, ErrorCode, formatIssues } from '@layertap/contracts';

/** The environment as a plain record, so callers and tests can pass their own. */
export type Env = Record<string, string | undefined>;

/** S3 client settings: the standard AWS variables, plus path-style addressing for MinIO/s3rver. */
export interface S3Settings {
  endpoint?: string;
  region: string;
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  forcePathStyle: boolean;
}

export interface RedisSettings {
  /**
   * `redis://[:password@]host:port[/db]` or `rediss://` for TLS; for a Redis Cluster
   * `redis-cluster://[:password@]host:port,host:port,...` (`rediss-cluster://` for TLS).
   */
  url: string;
  /** BullMQ key prefix; on Redis Cluster it carries a hash tag such as `{layertap}` (the default there). */
  prefix: string;
}

/** The prefix used on Redis Cluster when none is set: its hash tag keeps every key in one slot. */
export const DEFAULT_CLUSTER_QUEUE_PREFIX = `{${DEFAULT_QUEUE_PREFIX}}`;

const CLUSTER_URL = /^rediss?-cluster:\/\//i;

/** Whether every key starting with `prefix` lands in one Redis Cluster slot (a non-empty `{...}` in it). */
function hasHashTag(prefix: string): boolean {
  const open = prefix.indexOf('{');
  const close = open < 0 ? -1 : prefix.indexOf('}', open + 1);
  return close > open + 1;
}

export interface CommonConfig {
  redis: RedisSettings;
  s3: S3Settings;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
}

const flag = z
  .string()
  .optional()
  .transform((v) => (v === undefined ? undefined : ['1', 'true', 'yes', 'on'].includes(v.trim().toLowerCase())));

const CommonEnv = z.object({
  /** Redis for BullMQ (`redis-cluster://h:p,h:p` for a cluster). Default: a local server. */
  REDIS_URL: z.string().optional(),
  /** Redis Cluster nodes, `host:port,host:port,...`: the same as REDIS_URL=redis-cluster://<nodes>. */
  REDIS_CLUSTER_NODES: z.string().optional(),
  /** BullMQ key prefix (default `layertap`, `{layertap}` on a cluster). */
  LAYERTAP_QUEUE_PREFIX: z.string().min(1).optional(),
  /** S3 endpoint for S3-compatible stores (MinIO, s3rver); AWS_ENDPOINT_URL is the SDK's generic name. */
  AWS_ENDPOINT_URL_S3: z.string().url().optional(),
  AWS_ENDPOINT_URL: z.string().url().optional(),
  AWS_REGION: z.string().optional(),
  AWS_DEFAULT_REGION: z.string().optional(),
  AWS_ACCESS_KEY_ID: z.string().optional(),
  AWS_SECRET_ACCESS_KEY: z.string().optional(),
  AWS_SESSION_TOKEN: z.string().optional(),
  /** Path-style bucket addressing; defaults to on when a custom endpoint is set. */
  AWS_S3_FORCE_PATH_STYLE: flag,
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

/** Parses `env` through `schema`, or throws one ValidationError naming every variable that is wrong. */
export function parseEnv<T extends z.ZodTypeAny>(schema: T, env: Env): z.infer<T> {
  // `VAR=` (as docker-compose writes an unset variable) means unset, not an invalid empty value.
  const set = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = schema.safeParse(set);
  if (!parsed.success) {
    throw new ValidationError(ErrorCode.InvalidRequest, `invalid environment: ${formatIssues(parsed.error)}`);
  }
  return parsed.data;
}

/** REDIS_URL or REDIS_CLUSTER_NODES, and the queue prefix, checked together (a cluster needs a hash tag). */
function redisSettings(e: { REDIS_URL?: string; REDIS_CLUSTER_NODES?: string; LAYERTAP_QUEUE_PREFIX?: string }): RedisSettings {
  if (e.REDIS_URL && e.REDIS_CLUSTER_NODES) {
    throw new ValidationError(ErrorCode.InvalidRequest, 'invalid environment: set REDIS_URL or REDIS_CLUSTER_NODES, not both');
  }
  const nodes = e.REDIS_CLUSTER_NODES?.split(',').map((n) => n.trim()).filter(Boolean);
  if (nodes && nodes.length === 0) throw new ValidationError(ErrorCode.InvalidRequest, 'invalid environment: REDIS_CLUSTER_NODES lists no host:port');
  const url = nodes ? `redis-cluster://${nodes.join(',')}` : (e.REDIS_URL ?? 'redis://127.0.0.1:6379');
  const cluster = CLUSTER_URL.test(url);
  const prefix = e.LAYERTAP_QUEUE_PREFIX ?? (cluster ? DEFAULT_CLUSTER_QUEUE_PREFIX : DEFAULT_QUEUE_PREFIX);
  if (cluster && !hasHashTag(prefix)) {
    throw new ValidationError(
      ErrorCode.InvalidRequest,
      `invalid environment: LAYERTAP_QUEUE_PREFIX ${JSON.stringify(prefix)} has no hash tag, which Redis Cluster needs ` +
        `(BullMQ keeps each queue's keys in one slot): use one such as ${DEFAULT_CLUSTER_QUEUE_PREFIX}`,
    );
  }
  return { url, prefix };
}

/** Settings every layertap process shares (Redis, S3, logging), read once from the environment. */
export function readCommonConfig(env: Env): CommonConfig {
  const e = parseEnv(CommonEnv, env);
  const endpoint = e.AWS_ENDPOINT_URL_S3 ?? e.AWS_ENDPOINT_URL;
  const credentials =
    e.AWS_ACCESS_KEY_ID && e.AWS_SECRET_ACCESS_KEY
      ? { accessKeyId: e.AWS_ACCESS_KEY_ID, secretAccessKey: e.AWS_SECRET_ACCESS_KEY, ...(e.AWS_SESSION_TOKEN ? { sessionToken: e.AWS_SESSION_TOKEN } : {}) }
      : undefined;
  return {
    redis: redisSettings(e),
    s3: {
      ...(endpoint ? { endpoint } : {}),
      region: e.AWS_REGION ?? e.AWS_DEFAULT_REGION ?? 'us-east-1',
      ...(credentials ? { credentials } : {}),
      forcePathStyle: e.AWS_S3_FORCE_PATH_STYLE ?? endpoint !== undefined,
    },
    logLevel: e.LOG_LEVEL,
  };
}

/** The variables `DevServices` sets for child processes it configures (demo, tests). */
export function devServicesEnv(redisUrl: string, s3: S3Settings): Env {
  return {
    REDIS_URL: redisUrl,
    ...(s3.endpoint ? { AWS_ENDPOINT_URL_S3: s3.endpoint } : {}),
    AWS_REGION: s3.region,
    ...(s3.credentials ? { AWS_ACCESS_KEY_ID: s3.credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.credentials.secretAccessKey } : {}),
    AWS_S3_FORCE_PATH_STYLE: s3.forcePathStyle ? 'true' : 'false',
  };
}

/**
 * Process-wide defaults applied once at start-up by each CLI. The AWS SDK prints a multi-line warning on
 * every run under Node < 22; layertap reports it once, as one log line (`nodeSupportNotice`), instead.
 */
export function applyProcessDefaults(env: NodeJS.ProcessEnv = process.env): void {
  env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
}

/** A one-line notice when this Node is older than what upcoming AWS SDK releases need, else undefined. */
export function nodeSupportNotice(version: string = process.version): string | undefined {
  const major = Number(version.replace(/^v/, '').split('.')[0]);
  return major < 22 ? `running on Node ${version}: AWS SDK releases after January 2027 need Node 22; layertap runs on both` : undefined;
}
