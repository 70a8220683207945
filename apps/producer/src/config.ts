import { z } from 'zod';
import { CHUNK_SIZE } from '@layertap/contracts';
import { parseEnv, readCommonConfig, type CommonConfig, type Env } from '@layertap/config';
import { parseRetention } from './options';

export interface ProducerConfig extends CommonConfig {
  /** Samples per chunk job when `--chunk-size` is not given. */
  defaultChunkSize: number;
  /** Seconds Redis keeps a finished dataset's state when `--retention` is not given; undefined: forever. */
  retentionSeconds?: number;
  chunkAttempts: number;
  chunkBackoffMs: number;
  /** Dashboard credentials (the demo passes them to the dashboard it starts). */
  dashboardUser?: string;
  dashboardPassword?: string;
}

const ProducerEnv = z.object({
  /** Samples per chunk job (default 64). */
  LAYERTAP_CHUNK_SIZE: z.coerce.number().int().min(CHUNK_SIZE.min).max(CHUNK_SIZE.max).default(64),
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
  LAYERTAP_DASHBOARD_USER: z.string().min(1).optional(),
  LAYERTAP_DASHBOARD_PASSWORD: z.string().min(1).optional(),
});

/** Reads the CLI's settings from the environment once. */
export function readProducerConfig(env: Env = process.env): ProducerConfig {
  const e = parseEnv(ProducerEnv, env);
  return {
    ...readCommonConfig(env),
    defaultChunkSize: e.LAYERTAP_CHUNK_SIZE,
    ...(e.LAYERTAP_RETENTION !== 'forever' ? { retentionSeconds: parseRetention(e.LAYERTAP_RETENTION) as number } : {}),
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
