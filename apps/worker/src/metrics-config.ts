import { z } from 'zod';
import { parseEnv, type Env } from '@layertap/config';

/** Where the worker serves Prometheus metrics. */
export interface MetricsConfig {
  /** TCP port of `GET /metrics`; 0 turns the endpoint off. */
  port: number;
  /** Address to listen on. */
  host: string;
}

export const DEFAULT_METRICS_PORT = 9464;

const MetricsEnv = z.object({
  /** Port of the Prometheus endpoint (default 9464, the port OpenTelemetry's Prometheus exporter uses); 0 = off. */
  LAYERTAP_METRICS_PORT: z.coerce.number().int().min(0).max(65535).default(DEFAULT_METRICS_PORT),
  /** Listen address of the endpoint (default 0.0.0.0: Prometheus scrapes from another host or pod). */
  LAYERTAP_METRICS_HOST: z.string().min(1).default('0.0.0.0'),
});

export interface MetricsFlags {
  /** `--metrics-port`: beats LAYERTAP_METRICS_PORT. */
  metricsPort?: number;
}

/** Reads the metrics endpoint settings once; flags beat the environment, which beats the defaults. */
export function readMetricsConfig(flags: MetricsFlags = {}, env: Env = process.env): MetricsConfig {
  const e = parseEnv(MetricsEnv, env);
  return { port: flags.metricsPort ?? e.LAYERTAP_METRICS_PORT, host: e.LAYERTAP_METRICS_HOST };
}
