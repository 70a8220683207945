/**
 * A local HTTP server on 127.0.0.1 (or another loopback address) that serves images and misbehaves on purpose,
 * for tests of per-sample failures. Routes can be changed while it runs (a test "fixes" a URL), and every
 * request is recorded so a test can prove what was (and was not) fetched.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

export type Route = (req: IncomingMessage, res: ServerResponse) => void;

export interface RecordedRequest {
  path: string;
  host: string | undefined;
}

export class ImageServer {
  readonly requests: RecordedRequest[] = [];
  private readonly routes = new Map<string, Route>();
  private readonly sockets = new Set<Socket>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly server = http.createServer((req, res) => this.handle(req, res));
  private portValue: number | undefined;

  /** `host`: the address to listen on (127.0.0.2, ...: any of 127.0.0.0/8 on Linux). */
  constructor(readonly host = '127.0.0.1') {}

  get port(): number {
    if (this.portValue === undefined) throw new Error('ImageServer not started');
    return this.portValue;
  }

  /** `http://HOST:PORT` */
  get origin(): string {
    return `http://${this.host}:${this.port}`;
  }

  async start(): Promise<this> {
    this.server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
    await new Promise<void>((resolve, reject) => this.server.once('error', reject).listen(0, this.host, resolve));
    this.portValue = (this.server.address() as { port: number }).port;
    return this;
  }

  /** Sets (or replaces) what `path` answers. */
  route(path: string, handler: Route): this {
    this.routes.set(path, handler);
    return this;
  }

  /** How many requests reached `path`. */
  hits(path: string): number {
    return this.requests.filter((r) => r.path === path).length;
  }

  /** A timer that is cleared by `close()` (for bodies that trickle forever). */
  every(ms: number, fn: () => void): NodeJS.Timeout {
    const timer = setInterval(fn, ms);
    this.timers.add(timer);
    return timer;
  }

  async close(): Promise<void> {
    for (const timer of this.timers) clearInterval(timer);
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    this.requests.push({ path, host: req.headers.host });
    const route = this.routes.get(path);
    if (route) route(req, res);
    else res.writeHead(404, { 'content-type': 'text/plain' }).end('no such route\n');
  }
}

/** Answers `body` with a status and content type. */
export function serve(body: Buffer | string, contentType = 'image/jpeg', status = 200): Route {
  return (_req, res) => {
    res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(body) });
    res.end(body);
  };
}
