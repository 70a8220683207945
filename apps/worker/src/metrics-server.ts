import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import type { MetricsConfig } from './metrics-config';

/** The two levels startMetricsServer logs at (pino's signature). */
export interface MetricsLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface MetricsServerOptions {
  registry: Registry;
  port: number;
  /** Default 127.0.0.1. */
  host?: string;
}

/** `GET /metrics` (Prometheus text format) and `GET /healthz` on a plain HTTP server. */
export class MetricsServer {
  private server: Server | undefined;

  constructor(private readonly options: MetricsServerOptions) {}

  /** The port it listens on (the one given, or the one picked for port 0 in tests). */
  get port(): number | undefined {
    return (this.server?.address() as AddressInfo | null)?.port;
  }

  /** Listens; rejects with the listen error (EADDRINUSE, EACCES). */
  async start(): Promise<void> {
    const { registry } = this.options;
    const server = createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { allow: 'GET, HEAD' }).end();
        return;
      }
      if (path === '/metrics') {
        registry.metrics().then(
          (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(req.method === 'HEAD' ? undefined : text),
          (err: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${(err as Error).message}\n`),
        );
        return;
      }
      if (path === '/healthz') {
        res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
        return;
      }
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics\n');
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.options.port, this.options.host ?? '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
  }

  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

/**
 * Serves `/metrics`. The default port already taken (a second worker on the host) gives way to a free port,
 * logged; a chosen port that is taken costs the metrics, not the worker.
 */
export async function startMetricsServer(registry: Registry, config: MetricsConfig, log: MetricsLog): Promise<MetricsServer | undefined> {
  const { host } = config;
  let server = new MetricsServer({ registry: registry, port: config.port, host });
  try {
    await server.start();
  } catch (err) {
    const inUse = (err as NodeJS.ErrnoException).code === 'EADDRINUSE';
    if (!inUse || config.portChosen) {
      log.warn({ port: config.port, host, err: (err as Error).message }, 'metrics endpoint not started (set LAYERTAP_METRICS_PORT or --metrics-port to a free port, 0 for none)');
      return undefined;
    }
    server = new MetricsServer({ registry: registry, port: 0, host });
    try {
      await server.start();
    } catch (again) {
      log.warn({ host, err: (again as Error).message }, 'metrics endpoint not started');
      return undefined;
    }
    log.info({ port: server.port, taken: config.port }, `metrics: port ${config.port} is taken (another worker on this host?): serving on ${server.port}`);
  }
  log.info({ metrics: `http://${host}:${server.port}/metrics` }, 'metrics endpoint started');
  return server;
}
