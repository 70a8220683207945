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
import { DatasetViews } from './dataset-view';
import { createDashboardMetrics, metricsHandler } from './metrics';
import { OutputReaders } from '@layertap/pipeline';
import { datasetRoutes } from './routes';
import { SampleFinder } from './sample-index';
import { securityHeaders } from './security-headers';
import { boardWriteGuard } from './write-guard';

export interface DashboardServerOptions {
  config: DashboardConfig;
  log: Logger;
}

/** What the dashboard app reads from besides Redis: the outputs (manifests, arrays) and source images. */
export interface DashboardAppDeps {
  queues: LayertapQueues;
  outputs: OutputReaders;
  fetcher: ImageFetcher;
  log: Logger;
}

/**
 * Builds the dashboard app behind one authentication: layertap's dataset pages and JSON API at `/` and
 * `/api`, Bull Board for both queues at `/queues` (flows need every queue registered), Prometheus at `/metrics`.
 * Every response carries the security headers (CSP, no framing); every write is checked against cross-site
 * requests (write-guard.ts).
 */
export function createDashboardApp(deps: DashboardAppDeps, config: DashboardConfig): Express {
  const { queues, outputs, fetcher, log } = deps;
  const app = express();
  app.disable('x-powered-by');
  app.use(securityHeaders());
  app.get('/healthz', (_req, res) => void res.json({ ok: true }));
  if (config.auth) app.use(basicAuth(config.auth.user, config.auth.password));

  const board = new ExpressAdapter();
  board.setBasePath('/queues');
  createBullBoard({
    queues: [queues.datasets, queues.chunks].map((q) => redactedJobData(new BullMQAdapter(q, { readOnlyMode: config.readOnly }))),
    serverAdapter: board,
    options: { uiConfig: { boardTitle: 'layertap' } },
  });

  app.get('/metrics', metricsHandler(createDashboardMetrics(queues)));
  app.use(
    datasetRoutes({
      queues,
      views: new DatasetViews({ queues }),
      samples: new SampleFinder({ queues, outputs }),
      outputs,
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
  private s3: S3Client | undefined;
  private outputs: OutputReaders | undefined;
  private fetcher: ImageFetcher | undefined;

  constructor(private readonly options: DashboardServerOptions) {}

  /** Starts listening; resolves with the bound port. */
  async start(): Promise<number> {
    const { config, log } = this.options;
    this.redis = await connectRedis(config.redis.url, { mode: 'blocking' });
    this.queues = new LayertapQueues({ connection: this.redis, prefix: config.redis.prefix });
    this.s3 = new S3Client({ ...config.s3, maxAttempts: 3 });
    this.outputs = new OutputReaders({ s3: this.s3 });
    // Source images are read with the worker's limits and address policy.
    this.fetcher = new ImageFetcher({
      s3: this.s3,
      maxBytes: config.images.maxBytes,
      timeoutMs: config.images.timeoutMs,
      allowHosts: config.images.allowHosts,
      ...(config.images.fileRoots.length ? { allowedRoots: config.images.fileRoots } : {}),
    });
    const app = createDashboardApp({ queues: this.queues, outputs: this.outputs, fetcher: this.fetcher, log }, config);
    const server = app.listen(config.port, config.host);
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('listening', resolve);
      server.once('error', reject);
    });
    const address = server.address();
    const port = typeof address === 'object' && address ? address.port : config.port;
    log.info({ url: `http://${config.host}:${port}/`, redis: safeRedisUrl(config.redis.url), readOnly: config.readOnly, auth: config.auth ? 'basic' : 'none' }, 'dashboard listening');
    return port;
  }

  async close(): Promise<void> {
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
    await this.outputs?.close();
    this.fetcher?.close();
    this.s3?.destroy();
  }
}
