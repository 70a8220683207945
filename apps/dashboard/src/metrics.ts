import type { RequestHandler } from 'express';
import { Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { createQueueMetrics, type LayertapQueues } from '@layertap/queue';

/** The dashboard's Prometheus registry: queue depths sampled from Redis at scrape time, and process metrics. */
export function createDashboardMetrics(queues: LayertapQueues): Registry {
  const registry = new Registry();
  createQueueMetrics(queues, { registry, Gauge });
  collectDefaultMetrics({ register: registry, prefix: 'layertap_dashboard_' });
  return registry;
}

/** `GET /metrics` in Prometheus' text format. */
export function metricsHandler(registry: Registry): RequestHandler {
  return async (_req, res) => {
    res.type(registry.contentType).send(await registry.metrics());
  };
}
