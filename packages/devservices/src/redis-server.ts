import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { killOnExit, terminate } from './child-process';
import { DevServiceError, DevServiceErrorCode } from './errors';
import { findFreePort } from './free-port';
import { RespError, sendCommands } from './resp';

const HOST = '127.0.0.1';
const LOG_TAIL_LINES = 40;
/** How often to retry on "address in use" when the port was picked by us (another process may race us). */
const PORT_ATTEMPTS = 3;

export interface RedisServerOptions {
  /** Port to bind on 127.0.0.1. Default: a free port picked at the first `start()` and kept across restarts. */
  port?: number;
  /**
   * Keep data across `stop()`/`start()` (AOF with fsync on every write, in `dir`). Default: off, a
   * dev server starts empty and leaves nothing behind.
   */
  persistent?: boolean;
  /** Sets `requirepass`; `url` then carries it. Default: no password. */
  password?: string;
  /**
   * Serve TLS only: `tls-port` on the port and no plaintext port; clients are not asked for certificates.
   * `url` is then `rediss://`; clients must trust `caFile` (child processes: `NODE_EXTRA_CA_CERTS`).
   * `createTestCertificates()` makes a suitable set. Default: plaintext. Needs a redis-server built with TLS
   * (Debian's is).
   */
  tls?: RedisTlsOptions;
  /** The binary to run. Default: `'redis-server'`, looked up on PATH. */
  bin?: string;
  /** Working directory of the server. Default: a fresh temp dir, removed by `close()`. Nothing is persisted. */
  dir?: string;
  /** How long `start()` waits for the server to answer PING. Default: 10 000 ms. */
  startTimeoutMs?: number;
  /** How long `stop()` waits after SIGTERM before it sends SIGKILL. Default: 5 000 ms. */
  stopTimeoutMs?: number;
}

/** PEM files of a TLS Redis server. */
export interface RedisTlsOptions {
  /** The server's certificate; its subjectAltName must include IP 127.0.0.1. */
  certFile: string;
  keyFile: string;
  /** The CA that signed `certFile`. */
  caFile: string;
}

/**
 * A real `redis-server` on 127.0.0.1 for the demo and tests: no persistence, `noeviction` (BullMQ refuses
 * other policies). `stop()` keeps the port so `start()`/`restart()` bring the server back where clients
 * reconnect to it (fault tests); `close()` also removes the temp dir.
 */
export class RedisServer {
  private readonly options: RedisServerOptions;
  private portValue: number | undefined;
  private dirValue: string | undefined;
  private madeDir = false;
  private child: ChildProcess | undefined;
  private watchdog: ChildProcess | undefined;
  private paused = false;
  private logTail: string[] = [];

  constructor(options: RedisServerOptions = {}) {
    if (options.password !== undefined) assertConfigValue('password', options.password);
    if (options.dir !== undefined) assertConfigValue('dir', options.dir);
    for (const [name, file] of Object.entries(options.tls ?? {})) assertConfigValue(`tls.${name}`, file);
    this.options = options;
    this.portValue = options.port;
  }

  /** The port; known once `start()` has run (or when given in the options). */
  get port(): number {
    if (this.portValue === undefined) {
      throw new DevServiceError(DevServiceErrorCode.NotRunning, 'RedisServer has no port yet: call start() first');
    }
    return this.portValue;
  }

  /**
   * `redis://127.0.0.1:PORT`, or `redis://:PASSWORD@127.0.0.1:PORT` with a password; `rediss://` with
   * `tls`.
   */
  get url(): string {
    const auth = this.options.password === undefined ? '' : `:${encodeURIComponent(this.options.password)}@`;
    return `${this.options.tls ? 'rediss' : 'redis'}://${auth}${HOST}:${this.port}`;
  }

  get running(): boolean {
    return this.child !== undefined;
  }

  /** The server's process id while it runs. */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** The last lines the server logged (for diagnosing a failed start). */
  get log(): readonly string[] {
    return this.logTail;
  }

  /** Starts the server (a no-op when it runs) and resolves once it answers PING. */
  async start(): Promise<void> {
    if (this.child) return;
    if (this.dirValue === undefined) {
      this.madeDir = this.options.dir === undefined;
      this.dirValue = this.options.dir ?? (await mkdtemp(join(tmpdir(), 'layertap-redis-')));
    }
    const portIsOurs = this.portValue === undefined;
    for (let attempt = 1; ; attempt++) {
      if (this.portValue === undefined) this.portValue = await findFreePort(HOST);
      try {
        await this.spawnAndWait(this.portValue);
        return;
      } catch (err) {
        const raced = portIsOurs && attempt < PORT_ATTEMPTS && this.logTail.some((l) => /Address already in use/i.test(l));
        if (!raced) throw err;
        this.portValue = undefined;
      }
    }
  }

  /** Stops the server (SIGTERM, then SIGKILL after `stopTimeoutMs`) and waits for it to exit. Keeps the port. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.killWatchdog();
    await terminate(child, this.options.stopTimeoutMs ?? 5000);
  }

  /** Stops and starts again on the same port; data is gone (nothing is persisted). */
  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  /**
   * Freezes the server with SIGSTOP: connections stay open but nothing answers, like a hung or partitioned
   * Redis. `resume()` continues it.
   */
  pause(): void {
    if (!this.child) throw new DevServiceError(DevServiceErrorCode.NotRunning, 'cannot pause: redis-server is not running');
    this.child.kill('SIGSTOP');
    this.paused = true;
  }

  resume(): void {
    if (!this.child || !this.paused) return;
    this.child.kill('SIGCONT');
    this.paused = false;
  }

  /** Stops the server and removes the temp dir it made. */
  async close(): Promise<void> {
    await this.stop();
    if (this.madeDir && this.dirValue) await rm(this.dirValue, { recursive: true, force: true });
    this.dirValue = undefined;
  }

  private async spawnAndWait(port: number): Promise<void> {
    this.logTail = [];
    // The readiness check verifies the server's certificate as clients will.
    const tls = this.options.tls ? { ca: await readFile(this.options.tls.caFile) } : undefined;
    const bin = this.options.bin ?? 'redis-server';
    // Config through stdin (`-`) keeps the password out of `ps`.
    const child = spawn(bin, ['-'], { stdio: ['pipe', 'pipe', 'pipe'] });
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', (err: NodeJS.ErrnoException) => {
        reject(
          err.code === 'ENOENT'
            ? new DevServiceError(
                DevServiceErrorCode.RedisNotFound,
                `redis-server not found (tried ${JSON.stringify(bin)}): install it with \`apt-get install redis-server\` (Debian) or set REDIS_URL`,
                { cause: err },
              )
            : new DevServiceError(DevServiceErrorCode.StartFailed, `could not run ${bin}: ${err.message}`, { cause: err }),
        );
      });
    });

    let exitInfo: string | undefined;
    child.once('exit', (code, signal) => {
      exitInfo = signal ? `signal ${signal}` : `code ${code}`;
      if (this.child === child) {
        this.child = undefined;
        this.paused = false;
        this.killWatchdog();
      }
    });
    this.child = child;
    killOnExit(child);
    this.watchdog = spawnWatchdog(child.pid);
    for (const stream of [child.stdout, child.stderr]) stream?.setEncoding('utf8').on('data', (text: string) => this.addLog(text));
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(this.configText(port));

    const deadline = Date.now() + (this.options.startTimeoutMs ?? 10_000);
    const commands = this.options.password === undefined ? [['PING']] : [['AUTH', this.options.password], ['PING']];
    for (;;) {
      if (exitInfo !== undefined) {
        throw new DevServiceError(
          DevServiceErrorCode.StartFailed,
          `redis-server exited with ${exitInfo} before accepting connections on port ${port}:\n${this.logTail.slice(-8).join('\n')}`,
        );
      }
      const replies = await sendCommands(port, commands, { host: HOST, timeoutMs: 1000, ...(tls ? { tls } : {}) }).catch(() => undefined);
      const last = replies?.[replies.length - 1];
      if (last === 'PONG') return;
      if (Date.now() > deadline) {
        await this.stop();
        const why = last instanceof RespError ? ` (last reply: ${last.message})` : '';
        throw new DevServiceError(
          DevServiceErrorCode.StartTimeout,
          `redis-server did not answer PING on port ${port} within ${this.options.startTimeoutMs ?? 10_000} ms${why}`,
        );
      }
      await sleep(25);
    }
  }

  private configText(port: number): string {
    const { tls } = this.options;
    const lines = [
      ...(tls
        ? [
            'port 0',
            `tls-port ${port}`,
            `tls-cert-file ${quoteConfig(tls.certFile)}`,
            `tls-key-file ${quoteConfig(tls.keyFile)}`,
            `tls-ca-cert-file ${quoteConfig(tls.caFile)}`,
            'tls-auth-clients no',
          ]
        : [`port ${port}`]),
      `bind ${HOST}`,
      'daemonize no',
      // No RDB; AOF only when asked (fault tests restart Redis and expect the queues back).
      'save ""',
      `appendonly ${this.options.persistent ? 'yes' : 'no'}`,
      ...(this.options.persistent ? ['appendfsync always'] : []),
      // BullMQ requires it: evicting its keys would lose jobs silently.
      'maxmemory-policy noeviction',
      `dir ${quoteConfig(this.dirValue ?? tmpdir())}`,
      'logfile ""',
    ];
    if (this.options.password !== undefined) lines.push(`requirepass ${quoteConfig(this.options.password)}`);
    return lines.join('\n') + '\n';
  }

  private addLog(text: string): void {
    for (const line of text.split('\n')) if (line.trim()) this.logTail.push(line);
    if (this.logTail.length > LOG_TAIL_LINES) this.logTail.splice(0, this.logTail.length - LOG_TAIL_LINES);
  }

  private killWatchdog(): void {
    this.watchdog?.kill('SIGKILL');
    this.watchdog = undefined;
  }
}

function assertConfigValue(name: string, value: string): void {
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(value)) {
    throw new DevServiceError(DevServiceErrorCode.StartFailed, `RedisServer ${name} must not contain control characters`);
  }
}

/** A redis.conf double-quoted string (its parser understands `\\` and `\"`). */
function quoteConfig(value: string): string {
  return `"${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/**
 * A tiny shell that blocks reading a pipe from us and kills `pid` at EOF. The pipe closes when this process
 * dies in any way, SIGKILL included, which no 'exit' handler can catch; so redis never outlives us.
 */
function spawnWatchdog(pid: number | undefined): ChildProcess | undefined {
  if (pid === undefined) return undefined;
  const watchdog = spawn('/bin/sh', ['-c', 'read _ignored; kill -KILL "$1" 2>/dev/null', 'layertap-redis-watchdog', String(pid)], {
    stdio: ['pipe', 'ignore', 'ignore'],
  });
  watchdog.on('error', () => undefined);
  watchdog.stdin?.on('error', () => undefined);
  // The watchdog must not keep our event loop alive.
  watchdog.unref();
  (watchdog.stdin as Socket | null)?.unref();
  return watchdog;
}
