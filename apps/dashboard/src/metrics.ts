import express, { type Express, type RequestHandler } from 'express';
import { Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { createQueueMetrics, type LayertapQueues } from '@layertap/queue';
import { securityHeaders } from './security-headers';

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

/**
 * The metrics listener's app, for a port of its own without authentication (as the worker's `--metrics-port`),
 * so that Prometheus needs no operator password: `GET /metrics` and `/healthz`, nothing else. It serves queue
 * depths and process figures from the same registry as the authenticated `/metrics`, never a dataset, a sample or
 * a write.
 */
export function createMetricsApp(registry: Registry): Express {
  const app = express();
  app.disable('x-powered-by');
  app.use(securityHeaders());
  app.get('/metrics', metricsHandler(registry));
  app.get('/healthz', (_req, res) => void res.json({ ok: true }));
  app.all(['/metrics', '/healthz'], (_req, res) => void res.set('Allow', 'GET, HEAD').status(405).type('text/plain').send('method not allowed\n'));
  app.use((_req, res) => void res.status(404).type('text/plain').send('not found: this port serves /metrics and /healthz\n'));
  return app;
}
