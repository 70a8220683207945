import type { Server } from 'node:http';
import express, { type Express } from 'express';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { ExpressAdapter } from '@bull-board/express';
import type { Logger } from '@layertap/config';
import { LayertapQueues, connectRedis, datasetStatus, safeRedisUrl, type Redis } from '@layertap/queue';
import type { DashboardConfig } from './config';
import { basicAuth } from './auth';

export interface DashboardServerOptions {
  config: DashboardConfig;
  log: Logger;
}

/** Builds the dashboard app: Bull Board for both queues (flows need every queue registered) plus JSON APIs. */
export function createDashboardApp(queues: LayertapQueues, config: DashboardConfig): Express {
  const app = express();
  app.disable('x-powered-by');
  app.get('/healthz', (_req, res) => void res.json({ ok: true }));
  if (config.auth) app.use(basicAuth(config.auth.user, config.auth.password));

  const board = new ExpressAdapter();
  board.setBasePath('/queues');
  createBullBoard({
    queues: [queues.datasets, queues.chunks].map((q) => new BullMQAdapter(q, { readOnlyMode: config.readOnly })),
    serverAdapter: board,
    options: { uiConfig: { boardTitle: 'layertap' } },
  });

  app.get('/', (_req, res) => res.redirect('/queues'));
  app.get('/api/datasets', async (_req, res, next) => {
    try {
      const ids = await queues.store.list(200);
      const statuses = await Promise.all(ids.map((id) => datasetStatus(queues, id)));
      res.json({ datasets: statuses.filter(Boolean) });
    } catch (err) {
      next(err);
    }
  });
  app.get('/api/datasets/:id', async (req, res, next) => {
    try {
      const status = await datasetStatus(queues, req.params.id);
      if (!status) return void res.status(404).json({ error: `no dataset ${req.params.id}` });
      res.json(status);
    } catch (err) {
      next(err);
    }
  });
  app.use('/queues', board.getRouter());
  return app;
}

/** The dashboard process: connects to Redis, serves the app, closes cleanly. */
export class DashboardServer {
  private redis: Redis | undefined;
  private queues: LayertapQueues | undefined;
  private server: Server | undefined;

  constructor(private readonly options: DashboardServerOptions) {}

  /** Starts listening; resolves with the bound port. */
  async start(): Promise<number> {
    const { config, log } = this.options;
    this.redis = await connectRedis(config.redis.url, { mode: 'blocking' });
    this.queues = new LayertapQueues({ connection: this.redis, prefix: config.redis.prefix });
    const app = createDashboardApp(this.queues, config);
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
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    this.server?.closeAllConnections();
    await this.queues?.close();
    await this.redis?.quit().catch(() => undefined);
  }
}
