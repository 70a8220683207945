import { z } from 'zod';
import { ErrorCode, ValidationError } from '@layertap/contracts';
import { parseEnv, readCommonConfig, type CommonConfig, type Env } from '@layertap/config';

export interface DashboardConfig extends CommonConfig {
  host: string;
  port: number;
  /** Basic-auth credentials; absent only with `insecureNoAuth`. */
  auth?: { user: string; password: string };
  readOnly: boolean;
}

const DashboardEnv = z.object({
  /** Basic-auth user and password for the dashboard (required unless --insecure-no-auth). */
  LAYERTAP_DASHBOARD_USER: z.string().min(1).optional(),
  LAYERTAP_DASHBOARD_PASSWORD: z.string().min(1).optional(),
  /** Listen address (default 127.0.0.1) and port (default 3000). */
  LAYERTAP_DASHBOARD_HOST: z.string().default('127.0.0.1'),
  PORT: z.coerce.number().int().min(0).max(65535).default(3000),
  /** Read-only mode: Bull Board's retry/clean/remove answer 405. */
  LAYERTAP_DASHBOARD_READ_ONLY: z
    .string()
    .optional()
    .transform((v) => v !== undefined && ['1', 'true', 'yes', 'on'].includes(v.toLowerCase())),
});

export interface DashboardFlags {
  port?: number;
  host?: string;
  readOnly?: boolean;
  insecureNoAuth?: boolean;
}

export function readDashboardConfig(flags: DashboardFlags, env: Env = process.env): DashboardConfig {
  const e = parseEnv(DashboardEnv, env);
  const user = e.LAYERTAP_DASHBOARD_USER;
  const password = e.LAYERTAP_DASHBOARD_PASSWORD;
  if ((!user || !password) && !flags.insecureNoAuth) {
    throw new ValidationError(
      ErrorCode.InvalidRequest,
      'the dashboard needs LAYERTAP_DASHBOARD_USER and LAYERTAP_DASHBOARD_PASSWORD (dashboard access is Redis access); ' +
        'for local use only, start it with --insecure-no-auth',
    );
  }
  return {
    ...readCommonConfig(env),
    host: flags.host ?? e.LAYERTAP_DASHBOARD_HOST,
    port: flags.port ?? e.PORT,
    ...(user && password && !flags.insecureNoAuth ? { auth: { user, password } } : {}),
    readOnly: flags.readOnly ?? e.LAYERTAP_DASHBOARD_READ_ONLY,
  };
}
