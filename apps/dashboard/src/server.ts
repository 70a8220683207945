import type { Server } from 'node:http';
import { S3Client } from '@aws-sdk/client-s3';
import express, { type Express } from 'express';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { ExpressAdapter } from '@bull-board/express';
import type { Logger } from '@layertap/config';
import { redactUris } from '@layertap/contracts';
import { ImageFetcher } from '@layertap/imaging';
import { LayertapQueues, connectRedis, safeRedisUrl, type Redis } from '@layertap/queue';
import type { DashboardConfig } from './config';
import { basicAuth } from './auth';
import { hostGuard } from './host-guard';
import { LoginLimiter } from './login-limit';
import { DatasetViews } from './dataset-view';
import { faviconIco } from './favicon';
import { summariseChunkJobs } from './job-summary';
import type { Registry } from 'prom-client';
import { createDashboardMetrics, createMetricsApp, metricsHandler } from './metrics';
import { DatasetReader } from '@layertap/datasets';
import { openOutput, type OutputWriter } from '@layertap/storage';
import { datasetRoutes } from './routes';
import { SampleFinder } from './sample-index';
import { securityHeaders } from './security-headers';
import { boardWriteGuard } from './write-guard';

export interface DashboardServerOptions {
  config: DashboardConfig;
  log: Logger;
}

/** A dataset's outputs (manifest, arrays), for a dataset config's `output` and `datasetId`. */
export type OpenDataset = (dataset: { output: string; datasetId: string }) => DatasetReader;

/** What the dashboard app reads from besides Redis: the outputs (manifests, arrays) and source images. */
export interface DashboardAppDeps {
  queues: LayertapQueues;
  datasets: OpenDataset;
  /** The output writer of a dataset config's `output` (cancel and retry take stock of the outputs). */
  output: (uri: string) => OutputWriter;
  fetcher: ImageFetcher;
  log: Logger;
  /** The Prometheus registry `/metrics` serves (shared with the metrics listener); default: a new one. */
  metrics?: Registry;
}

/**
 * Builds the dashboard app behind one authentication: layertap's dataset pages and JSON API at `/` and
 * `/api`, Bull Board for both queues at `/queues` (flows need every queue registered), Prometheus at `/metrics`.
 * Every response carries the security headers (CSP, no framing); every write is checked against cross-site
 * requests (write-guard.ts).
 */
export function createDashboardApp(deps: DashboardAppDeps, config: DashboardConfig): Express {
  const { queues, datasets, fetcher, log } = deps;
  const app = express();
  app.disable('x-powered-by');
  app.use(securityHeaders());
  app.get('/healthz', (_req, res) => void res.json({ ok: true }));
  // Before authentication, and with it too: a rebound page could otherwise try passwords from the browser.
  app.use(hostGuard(config.allowedHosts));
  // Browsers ask for it on every page; public, as /healthz is (it is the same for every install).
  const favicon = faviconIco();
  app.get('/favicon.ico', (_req, res) => void res.type('image/x-icon').set('cache-control', 'public, max-age=86400').send(favicon));
  if (config.auth) app.use(basicAuth(config.auth.user, config.auth.password, 'layertap', new LoginLimiter({ log, maxFailures: config.loginFailuresPerMinute })));
  // Pages and JSON carry dataset contents and URIs: no shared or browser cache keeps them (Bull Board's
  // static assets may be cached).
  app.use((req, res, next) => {
    if (!req.path.startsWith('/queues/static/')) res.set('Cache-Control', 'no-store');
    next();
  });

  const board = new ExpressAdapter();
  board.setBasePath('/queues');
  createBullBoard({
    queues: [queues.datasets, queues.chunks]
      .map((q) => redactedJobData(new BullMQAdapter(q, { readOnlyMode: config.readOnly })))
      .map((adapter, i) => (i === 1 ? summariseChunkJobs(adapter, redactUris) : adapter)),
    serverAdapter: board,
    options: { uiConfig: { boardTitle: 'layertap' } },
  });

  // Kept behind the password too (the header links it; scrapers configured with credentials go on working).
  app.get('/metrics', metricsHandler(deps.metrics ?? createDashboardMetrics(queues)));
  app.use(
    datasetRoutes({
      queues,
      views: new DatasetViews({ queues }),
      samples: new SampleFinder({ queues, datasets }),
      datasets,
      output: deps.output,
      fetcher,
      readOnly: config.readOnly,
      log,
    }),
  );
  // Bull Board's write routes get the same origin check as layertap's API, and all answer 405 when read-only
  // (its adapters' read-only mode leaves pause and resume of all queues answering 200).
  const boardApp = board.getRouter() as Express;
  boardApp.disable('x-powered-by');
  app.use('/queues', boardWriteGuard(config.readOnly), boardApp);
  // Express's own 404 would replace the CSP above with one without frame-ancestors.
  app.use((_req, res) => void res.status(404).type('text/plain').send('not found\n'));
  return app;
}

/**
 * Job data carries sample and weights URIs as submitted (workers fetch with them): Bull Board shows them, and
 * job results, without credentials (`storedUri`).
 */
function redactedJobData(adapter: BullMQAdapter): BullMQAdapter {
  adapter.setFormatter('data', redactUris);
  adapter.setFormatter('returnValue', redactUris);
  return adapter;
}

/** The dashboard process: connects to Redis, serves the app, closes cleanly. */
export class DashboardServer {
  private redis: Redis | undefined;
  private queues: LayertapQueues | undefined;
  private server: Server | undefined;
  private metricsServer: Server | undefined;
  private s3: S3Client | undefined;
  private fetcher: ImageFetcher | undefined;

  constructor(private readonly options: DashboardServerOptions) {}

  /** Starts listening; resolves with the bound port. */
  async start(): Promise<number> {
    const { config, log } = this.options;
    this.redis = await connectRedis(config.redis.url, { mode: 'blocking' });
    this.queues = new LayertapQueues({ connection: this.redis, prefix: config.redis.prefix });
    this.s3 = new S3Client({ ...config.s3, maxAttempts: 3 });
    const s3 = this.s3;
    // Readers on the shared client hold nothing of their own: one per use, nothing to close.
    const datasets: OpenDataset = ({ output, datasetId }) => new DatasetReader({ output, datasetId, s3 });
    // Source images are read with the worker's limits and address policy.
    this.fetcher = new ImageFetcher({
      s3: this.s3,
      maxBytes: config.images.maxBytes,
      timeoutMs: config.images.timeoutMs,
      allowHosts: config.images.allowHosts,
      ...(config.images.fileRoots.length ? { allowedRoots: config.images.fileRoots } : {}),
    });
    const metrics = createDashboardMetrics(this.queues);
    const output = (uri: string) => openOutput(uri, { s3 });
    const app = createDashboardApp({ queues: this.queues, datasets, output, fetcher: this.fetcher, log, metrics }, config);
    this.server = app.listen(config.port, config.host);
    const port = await listening(this.server, config.port);
    log.info({ url: `http://${config.host}:${port}/`, redis: safeRedisUrl(config.redis.url), readOnly: config.readOnly, auth: config.auth ? 'basic' : 'none' }, 'dashboard listening');
    if (config.metrics.port > 0) {
      // Asked for by port: one that cannot be bound stops the dashboard (unlike a worker's, there is one per host).
      this.metricsServer = createMetricsApp(metrics).listen(config.metrics.port, config.metrics.host);
      const metricsPort = await listening(this.metricsServer, config.metrics.port).catch((err: unknown) => {
        throw new Error(`the metrics listener (LAYERTAP_DASHBOARD_METRICS_PORT, --metrics-port) cannot listen on ${config.metrics.host}:${config.metrics.port}: ${(err as Error).message}`);
      });
      log.info({ metrics: `http://${config.metrics.host}:${metricsPort}/metrics`, auth: 'none' }, 'metrics listener started');
    }
    return port;
  }

  async close(): Promise<void> {
    const metricsServer = this.metricsServer;
    if (metricsServer) {
      metricsServer.closeAllConnections();
      await new Promise<void>((resolve) => metricsServer.close(() => resolve()));
    }
    const server = this.server;
    if (server) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      // Browsers hold connections open (keep-alive, preconnected sockets that never send a request), which
      // would keep close() waiting up to the headers timeout (60 s): running requests get a second, then every
      // connection is closed.
      const cut = setTimeout(() => server.closeAllConnections(), 1000);
      await closed;
      clearTimeout(cut);
    }
    await this.queues?.close();
    await this.redis?.quit().catch(() => undefined);
    this.fetcher?.close();
    this.s3?.destroy();
  }
}

/** Resolves with the port `server` listens on once it does; rejects with its listen error (EADDRINUSE, EACCES). */
async function listening(server: Server, requested: number): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  const address = server.address();
  return typeof address === 'object' && address ? address.port : requested;
}
