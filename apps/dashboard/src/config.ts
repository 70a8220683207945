import { z } from 'zod';
import { ErrorCode, ValidationError } from '@layertap/contracts';
import { parseEnv, readCommonConfig, type CommonConfig, type Env } from '@layertap/config';
import { AllowList } from '@layertap/imaging';
import { defaultAllowedHosts } from './host-guard';

export interface DashboardConfig extends CommonConfig {
  host: string;
  port: number;
  /** Basic-auth credentials; absent only with `insecureNoAuth`. */
  auth?: { user: string; password: string };
  readOnly: boolean;
  /** Host names (of the `Host` header) the dashboard answers to; `*` is any (host-guard.ts). */
  allowedHosts: string[];
  /** Failed logins one client address may make per minute before it gets 429 (login-limit.ts). */
  loginFailuresPerMinute: number;
  /** Limits for reading samples' source images (montages), as the worker applies them. */
  images: { fileRoots: string[]; allowHosts: string[]; maxBytes: number; timeoutMs: number };
  /**
   * The metrics listener: `GET /metrics` and `/healthz` only, without authentication, on a port of its own (so
   * Prometheus needs no operator password). Port 0 (the default) serves none.
   */
  metrics: { port: number; host: string };
}

const DashboardEnv = z.object({
  /** Basic-auth user and password for the dashboard (required unless --insecure-no-auth). */
  LAYERTAP_DASHBOARD_USER: z.string().min(1).optional(),
  LAYERTAP_DASHBOARD_PASSWORD: z.string().min(1).optional(),
  /** Listen address (default 127.0.0.1) and port (default 3000). */
  LAYERTAP_DASHBOARD_HOST: z.string().default('127.0.0.1'),
  PORT: z.coerce.number().int().min(0).max(65535).default(3000),
  /**
   * Comma-separated host names the dashboard answers to (the `Host` header, port ignored), against DNS
   * rebinding; default: the listen address and the loopback names (and, listening on 0.0.0.0 or ::, this
   * machine's addresses and host name). `*` answers to any.
   */
  LAYERTAP_DASHBOARD_ALLOWED_HOSTS: z.string().optional(),
  /** Failed logins one client address may make per minute; past them it gets 429 until the minute ends (default 10). */
  LAYERTAP_DASHBOARD_LOGIN_FAILURES: z.coerce.number().int().positive().default(10),
  /** Read-only mode: Bull Board's retry/clean/remove and the dataset pages' cancel/retry answer 405. */
  LAYERTAP_DASHBOARD_READ_ONLY: z
    .string()
    .optional()
    .transform((v) => v !== undefined && ['1', 'true', 'yes', 'on'].includes(v.toLowerCase())),
  /** Colon-separated directories local source images may be read from for montages (default: anywhere). */
  LAYERTAP_FILE_ROOTS: z.string().default(''),
  /**
   * Comma-separated entries allowed over HTTP(S) although they resolve to private or loopback addresses: host,
   * host:port, an IPv4 or IPv6 address, [v6]:port, or a CIDR range. An entry that cannot be parsed stops the
   * dashboard at start.
   */
  LAYERTAP_ALLOW_HOSTS: z.string().default(''),
  /** Largest source image read for a montage, in bytes (default 50 MiB). */
  LAYERTAP_MAX_IMAGE_BYTES: z.coerce.number().int().positive().default(50 * 1024 * 1024),
  /** Time allowed to fetch a source image, in ms (default 30 000). */
  LAYERTAP_FETCH_TIMEOUT_MS: z.coerce.number().int().positive().default(30_000),
  /** Port of the unauthenticated metrics listener (`/metrics`, `/healthz`); 0, the default, serves none. */
  LAYERTAP_DASHBOARD_METRICS_PORT: z.coerce.number().int().min(0).max(65535).default(0),
  /** Its listen address (default 0.0.0.0: Prometheus scrapes from another host or pod). */
  LAYERTAP_DASHBOARD_METRICS_HOST: z.string().min(1).default('0.0.0.0'),
});

export interface DashboardFlags {
  port?: number;
  host?: string;
  readOnly?: boolean;
  insecureNoAuth?: boolean;
  /** `--metrics-port`: beats LAYERTAP_DASHBOARD_METRICS_PORT. */
  metricsPort?: number;
}

function list(value: string, separator: string): string[] {
  return value.split(separator).map((s) => s.trim()).filter(Boolean);
}

/** The entries as given, once every one parses (`AllowListError` names the first that does not). */
function checkedAllowHosts(entries: string[]): string[] {
  AllowList.parse(entries, 'LAYERTAP_ALLOW_HOSTS');
  return entries;
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
  const host = flags.host ?? e.LAYERTAP_DASHBOARD_HOST;
  const allowedHosts = e.LAYERTAP_DASHBOARD_ALLOWED_HOSTS === undefined ? defaultAllowedHosts(host) : list(e.LAYERTAP_DASHBOARD_ALLOWED_HOSTS, ',');
  if (allowedHosts.length === 0) {
    throw new ValidationError(ErrorCode.InvalidRequest, 'invalid environment: LAYERTAP_DASHBOARD_ALLOWED_HOSTS is empty (list host names, or * for any)');
  }
  return {
    ...readCommonConfig(env),
    host,
    allowedHosts,
    loginFailuresPerMinute: e.LAYERTAP_DASHBOARD_LOGIN_FAILURES,
    port: flags.port ?? e.PORT,
    ...(user && password && !flags.insecureNoAuth ? { auth: { user, password } } : {}),
    readOnly: flags.readOnly ?? e.LAYERTAP_DASHBOARD_READ_ONLY,
    images: {
      fileRoots: list(e.LAYERTAP_FILE_ROOTS, ':'),
      allowHosts: checkedAllowHosts(list(e.LAYERTAP_ALLOW_HOSTS, ',')),
      maxBytes: e.LAYERTAP_MAX_IMAGE_BYTES,
      timeoutMs: e.LAYERTAP_FETCH_TIMEOUT_MS,
    },
    metrics: { port: flags.metricsPort ?? e.LAYERTAP_DASHBOARD_METRICS_PORT, host: e.LAYERTAP_DASHBOARD_METRICS_HOST },
  };
}
