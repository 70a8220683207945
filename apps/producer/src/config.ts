import { z } from 'zod';
import { parseEnv, readCommonConfig, type CommonConfig, type Env } from '@layertap/config';

export interface ProducerConfig extends CommonConfig {
  /** Samples per chunk job when `--chunk-size` is not given. */
  defaultChunkSize: number;
  /** Dashboard credentials (the demo passes them to the dashboard it starts). */
  dashboardUser?: string;
  dashboardPassword?: string;
}

const ProducerEnv = z.object({
  /** Samples per chunk job (default 64). */
  LAYERTAP_CHUNK_SIZE: z.coerce.number().int().positive().default(64),
  LAYERTAP_DASHBOARD_USER: z.string().min(1).optional(),
  LAYERTAP_DASHBOARD_PASSWORD: z.string().min(1).optional(),
});

/** Reads the CLI's settings from the environment once. */
export function readProducerConfig(env: Env = process.env): ProducerConfig {
  const e = parseEnv(ProducerEnv, env);
  return {
    ...readCommonConfig(env),
    defaultChunkSize: e.LAYERTAP_CHUNK_SIZE,
    ...(e.LAYERTAP_DASHBOARD_USER ? { dashboardUser: e.LAYERTAP_DASHBOARD_USER } : {}),
    ...(e.LAYERTAP_DASHBOARD_PASSWORD ? { dashboardPassword: e.LAYERTAP_DASHBOARD_PASSWORD } : {}),
  };
}

/** The environment handed to processes the CLI starts (demo worker and dashboard). */
export function childEnv(extra: Env): NodeJS.ProcessEnv {
  return { ...process.env, ...extra };
}
