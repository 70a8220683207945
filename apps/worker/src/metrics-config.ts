import { z } from 'zod';
import { parseEnv, type Env } from '@layertap/config';

/** Where the worker serves Prometheus metrics. */
export interface MetricsConfig {
  /** TCP port of `GET /metrics`; 0 turns the endpoint off. */
  port: number;
  /** Address to listen on. */
  host: string;
  /**
   * Whether the port was chosen (flag or environment): a chosen port that is taken leaves the worker without
   * metrics, with a warning; the default one that is taken (a second worker on the host) gives way to a free port.
   */
  portChosen: boolean;
}

export const DEFAULT_METRICS_PORT = 9464;
export const DEFAULT_METRICS_HOST = '127.0.0.1';

const MetricsEnv = z.object({
  /** Port of the Prometheus endpoint (default 9464, the port OpenTelemetry's Prometheus exporter uses); 0 = off. */
  LAYERTAP_METRICS_PORT: z.coerce.number().int().min(0).max(65535).default(DEFAULT_METRICS_PORT),
  /**
   * Listen address of the endpoint (default 127.0.0.1: a worker on a workstation is not reachable from the
   * network; Kubernetes manifests pass --metrics-host 0.0.0.0 so that Prometheus scrapes the pod).
   */
  LAYERTAP_METRICS_HOST: z.string().min(1).default(DEFAULT_METRICS_HOST),
});

export interface MetricsFlags {
  /** `--metrics-port`: beats LAYERTAP_METRICS_PORT. */
  metricsPort?: number;
  /** `--metrics-host`: beats LAYERTAP_METRICS_HOST. */
  metricsHost?: string;
}

/** Reads the metrics endpoint settings once; flags beat the environment, which beats the defaults. */
export function readMetricsConfig(flags: MetricsFlags = {}, env: Env = process.env): MetricsConfig {
  const e = parseEnv(MetricsEnv, env);
  return {
    port: flags.metricsPort ?? e.LAYERTAP_METRICS_PORT,
    host: flags.metricsHost ?? e.LAYERTAP_METRICS_HOST,
    portChosen: flags.metricsPort !== undefined || (env.LAYERTAP_METRICS_PORT ?? '') !== '',
  };
}
