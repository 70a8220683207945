import { z } from 'zod';
import { parseEnv, readCommonConfig, type CommonConfig, type Env } from '@layertap/config';

export interface ProducerConfig extends CommonConfig {
  /** Samples per chunk job when `--chunk-size` is not given. */
  defaultChunkSize: number;
  chunkAttempts: number;
  chunkBackoffMs: number;
  /** Dashboard credentials (the demo passes them to the dashboard it starts). */
  dashboardUser?: string;
  dashboardPassword?: string;
}

const ProducerEnv = z.object({
  /** Samples per chunk job (default 64). */
  LAYERTAP_CHUNK_SIZE: z.coerce.number().int().positive().default(64),
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
