import { z } from 'zod';
import { CHUNK_SIZE, DEFAULT_MAX_SAMPLES, DEFAULT_MAX_SOURCE_BYTES } from '@layertap/contracts';
import { parseEnv, readCommonConfig, type CommonConfig, type Env } from '@layertap/config';
import { AllowList } from '@layertap/imaging';
import { parseRetention } from './options';

/** The entries of `LAYERTAP_ALLOW_HOSTS`, once every one parses (`AllowListError` names the first that does not). */
function checkedAllowHosts(value: string): string[] {
  const entries = value.split(',').map((s) => s.trim()).filter(Boolean);
  AllowList.parse(entries, 'LAYERTAP_ALLOW_HOSTS');
  return entries;
}

export interface ProducerConfig extends CommonConfig {
  /** Samples per chunk job when `--chunk-size` is not given. */
  defaultChunkSize: number;
  /** The memory a worker gives one batch, which one sample of a request must fit (unset: the workers' default cap). */
  memoryLimitBytes?: number;
  /** Largest source (list or manifest file, or a listing's URIs) in bytes. */
  maxSourceBytes: number;
  /** Most samples of a source. */
  maxSamples: number;
  /** Seconds Redis keeps a finished dataset's state when `--retention` is not given; undefined: forever. */
  retentionSeconds?: number;
  chunkAttempts: number;
  chunkBackoffMs: number;
  /** Dashboard credentials (the demo passes them to the dashboard it starts). */
  dashboardUser?: string;
  dashboardPassword?: string;
  /** `LAYERTAP_ALLOW_HOSTS`, checked: the private and loopback hosts a weights URI may reach, as for samples. */
  allowHosts: string[];
}

const ProducerEnv = z.object({
  /** Samples per chunk job (default 64). */
  LAYERTAP_CHUNK_SIZE: z.coerce.number().int().min(CHUNK_SIZE.min).max(CHUNK_SIZE.max).default(64),
  /**
   * Comma-separated private or loopback hosts (host, host:port, address, CIDR) that weights URIs may reach,
   * the workers' list for samples; weights URIs get the samples' address policy (default: none).
   */
  LAYERTAP_ALLOW_HOSTS: z.string().default(''),
  /**
   * How long Redis keeps a finished dataset's state and sample index: `90s`, `12h`, `30d` or `forever`
   * (default 30d); `layertap forget` drops them at once.
   */
  LAYERTAP_RETENTION: z
    .string()
    .regex(/^([1-9]\d*[smhd]|forever)$/, 'expected a duration such as 90s, 12h or 30d, or forever')
    .default('30d'),
  /** Attempts per chunk job before its samples are recorded as failed (default 5). */
  LAYERTAP_CHUNK_ATTEMPTS: z.coerce.number().int().positive().default(5),
  /** First retry delay of a failed chunk in ms, doubled each attempt (default 2000). */
  LAYERTAP_CHUNK_BACKOFF_MS: z.coerce.number().int().positive().default(2000),
  /**
   * The memory budget of the workers' batches in MiB, as they are given it: a request whose single sample needs
   * more is refused (default: 8 GiB, the most a worker's budget defaults to).
   */
  LAYERTAP_MEMORY_BUDGET_MB: z.coerce.number().int().positive().optional(),
  /** Largest source in MiB: a list or manifest file, or the URIs of a directory or s3:// listing (default 64). */
  LAYERTAP_MAX_SOURCE_MB: z.coerce.number().positive().default(DEFAULT_MAX_SOURCE_BYTES / 1024 ** 2),
  /** Most samples one submission may hold (default 1000000). */
  LAYERTAP_MAX_SAMPLES: z.coerce.number().int().positive().default(DEFAULT_MAX_SAMPLES),
  LAYERTAP_DASHBOARD_USER: z.string().min(1).optional(),
  LAYERTAP_DASHBOARD_PASSWORD: z.string().min(1).optional(),
});

/** Reads the CLI's settings from the environment once. */
export function readProducerConfig(env: Env = process.env): ProducerConfig {
  const e = parseEnv(ProducerEnv, env);
  return {
    ...readCommonConfig(env),
    defaultChunkSize: e.LAYERTAP_CHUNK_SIZE,
    ...(e.LAYERTAP_MEMORY_BUDGET_MB ? { memoryLimitBytes: e.LAYERTAP_MEMORY_BUDGET_MB * 1024 ** 2 } : {}),
    maxSourceBytes: Math.floor(e.LAYERTAP_MAX_SOURCE_MB * 1024 ** 2),
    maxSamples: e.LAYERTAP_MAX_SAMPLES,
    ...(e.LAYERTAP_RETENTION !== 'forever' ? { retentionSeconds: parseRetention(e.LAYERTAP_RETENTION) as number } : {}),
    allowHosts: checkedAllowHosts(e.LAYERTAP_ALLOW_HOSTS),
    chunkAttempts: e.LAYERTAP_CHUNK_ATTEMPTS,
    chunkBackoffMs: e.LAYERTAP_CHUNK_BACKOFF_MS,
    ...(e.LAYERTAP_DASHBOARD_USER ? { dashboardUser: e.LAYERTAP_DASHBOARD_USER } : {}),
    ...(e.LAYERTAP_DASHBOARD_PASSWORD ? { dashboardPassword: e.LAYERTAP_DASHBOARD_PASSWORD } : {}),
  };
}

/** The environment handed to processes the CLI starts (demo worker and dashboard). */
export function childEnv(extra: Env): NodeJS.ProcessEnv {
  return { ...process.env, ...extra };
}
