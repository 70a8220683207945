import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exitOf, killOnExit, terminate } from './child-process';
import { DevServiceError, DevServiceErrorCode } from './errors';

const HOST = '127.0.0.1';

/** What an S3 client needs to talk to a local S3-compatible endpoint (the shape `@layertap/storage` accepts). */
export interface S3Settings {
  endpoint: string;
  region: string;
  credentials: { accessKeyId: string; secretAccessKey: string };
  /** Local endpoints have no per-bucket DNS names. */
  forcePathStyle: true;
}

export interface S3ServerOptions {
  /** Port to bind on 127.0.0.1. Default: a free port picked by the OS at the first `start()`, kept afterwards. */
  port?: number;
  /** Buckets created at start. Default: `['layertap']`. */
  buckets?: string[];
  /** Where objects are stored. Default: a fresh temp dir, removed by `close()`. Kept across `stop()`/`start()`. */
  directory?: string;
  /** Silence s3rver's request log. Default: `true`. */
  silent?: boolean;
  /** How long `start()` waits for s3rver to listen. Default: 15 000 ms. */
  startTimeoutMs?: number;
  /** How long `stop()` waits after SIGTERM before it sends SIGKILL. Default: 5 000 ms. */
  stopTimeoutMs?: number;
  /**
   * The key pair clients use, registered with s3rver besides its built-in `S3RVER`/`S3RVER` (tests that look
   * for leaked credentials need values nothing else contains). s3rver 3.7 checks that the access key id is
   * known but does not verify SigV4 signatures (what the AWS SDK v3 sends), so the secret key is not checked.
   * Passed to the child in its environment, not on its command line. Default: `S3RVER`/`S3RVER`.
   */
  credentials?: { accessKeyId: string; secretAccessKey: string };
}

/**
 * Runs s3rver in a child Node process. Two reasons: s3rver signs ListObjectsV2 continuation tokens with DES,
 * which Node 17+ (OpenSSL 3) only offers with `--openssl-legacy-provider`, so in-process every truncated
 * listing fails with a 500; and a separate process can be stopped or frozen like a real endpoint.
 * The child exits when its stdin (a pipe from us) closes, so it never outlives this process.
 */
const CHILD_SCRIPT = `
const S3rver = require(process.argv[1]);
if (process.argv[3]) {
  const fs = require('fs');
  const { accessKeyId, secretAccessKey } = JSON.parse(fs.readFileSync(process.argv[3], 'utf8'));
  fs.rmSync(require('path').dirname(process.argv[3]), { recursive: true, force: true });
  require(require('path').join(require('path').dirname(process.argv[1]), 'models', 'account')).DUMMY_ACCOUNT.createKeyPair(accessKeyId, secretAccessKey);
}
const server = new S3rver(JSON.parse(process.argv[2]));
server.run().then(
  (address) => process.stdout.write(JSON.stringify({ port: address.port }) + '\\n'),
  (err) => { process.stderr.write(String((err && err.stack) || err) + '\\n'); process.exit(1); },
);
const shutdown = () => {
  if (!server.httpServer) process.exit(0);
  server.close().then(() => process.exit(0), () => process.exit(0));
  server.httpServer.closeAllConnections();
};
process.on('SIGTERM', shutdown);
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
`;

/**
 * An s3rver S3 endpoint on 127.0.0.1. `stop()` makes it unreachable (connections refused) while keeping its
 * port and objects; `start()` brings it back; `pause()` freezes it (connections hang); `close()` also
 * removes the temp dir.
 */
export class S3Server {
  /** The key pair clients use: s3rver's fixed `S3RVER`/`S3RVER` unless `credentials` was given. */
  readonly credentials: { readonly accessKeyId: string; readonly secretAccessKey: string };
  readonly region = 'us-east-1';
  private readonly options: S3ServerOptions;
  private portValue: number | undefined;
  private directoryValue: string | undefined;
  private madeDirectory = false;
  private child: ChildProcess | undefined;
  private adminClient: S3Client | undefined;
  private stderrTail = '';

  constructor(options: S3ServerOptions = {}) {
    this.options = options;
    this.portValue = options.port;
    this.credentials = { ...(options.credentials ?? { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' }) };
  }

  get port(): number {
    if (this.portValue === undefined) {
      throw new DevServiceError(DevServiceErrorCode.NotRunning, 'S3Server has no port yet: call start() first');
    }
    return this.portValue;
  }

  /** `http://127.0.0.1:PORT` */
  get endpoint(): string {
    return `http://${HOST}:${this.port}`;
  }

  /** Settings for an S3 client (or `openOutput(..., { s3 })`) pointed at this server. */
  get settings(): S3Settings {
    return {
      endpoint: this.endpoint,
      region: this.region,
      credentials: { ...this.credentials },
      forcePathStyle: true,
    };
  }

  get running(): boolean {
    return this.child !== undefined;
  }

  /** Where s3rver keeps the objects. */
  get directory(): string | undefined {
    return this.directoryValue;
  }

  async start(): Promise<void> {
    if (this.child) return;
    if (this.directoryValue === undefined) {
      this.madeDirectory = this.options.directory === undefined;
      this.directoryValue = this.options.directory ?? (await mkdtemp(join(tmpdir(), 'layertap-s3-')));
    }
    const s3rverOptions = {
      address: HOST,
      port: this.portValue ?? 0,
      silent: this.options.silent ?? true,
      directory: this.directoryValue,
      configureBuckets: (this.options.buckets ?? ['layertap']).map((name) => ({ name })),
    };
    // Credentials go through a private file the child reads and removes: not its command line (seen by
    // `ps`) and not an environment variable.
    const keyPairFile: string[] = [];
    if (this.options.credentials) {
      const dir = await mkdtemp(join(tmpdir(), 'layertap-s3-keys-'));
      const file = join(dir, 'key-pair.json');
      await writeFile(file, JSON.stringify(this.options.credentials), { mode: 0o600 });
      keyPairFile.push(file);
    }
    const child = spawn(
      process.execPath,
      ['--openssl-legacy-provider', '-e', CHILD_SCRIPT, require.resolve('s3rver'), JSON.stringify(s3rverOptions), ...keyPairFile],
      {
        stdio: ['pipe', 'pipe', 'pipe'],
      },
    );
    killOnExit(child);
    child.stdin?.on('error', () => undefined);
    this.stderrTail = '';
    child.stderr?.setEncoding('utf8').on('data', (text: string) => {
      this.stderrTail = (this.stderrTail + text).slice(-4000);
    });
    if (this.options.silent === false) child.stdout?.pipe(process.stdout, { end: false });
    try {
      this.portValue = await this.waitForPort(child);
    } catch (err) {
      await terminate(child, 1000);
      throw err;
    }
    this.child = child;
    void exitOf(child).then(() => {
      if (this.child === child) this.child = undefined;
    });
  }

  /** Stops the server: connections are refused until `start()`. Port and objects are kept. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.child = undefined;
    await terminate(child, this.options.stopTimeoutMs ?? 5000);
  }

  /** Freezes the server (SIGSTOP): connections are accepted by the kernel but never answered. */
  pause(): void {
    if (!this.child) throw new DevServiceError(DevServiceErrorCode.NotRunning, 'cannot pause: S3Server is not running');
    this.child.kill('SIGSTOP');
  }

  resume(): void {
    this.child?.kill('SIGCONT');
  }

  /** Creates a bucket (no error if it exists). The server must be running. */
  async createBucket(name: string): Promise<void> {
    if (!this.child) throw new DevServiceError(DevServiceErrorCode.NotRunning, `cannot create bucket ${name}: S3Server is not running`);
    this.adminClient ??= this.createClient();
    await this.adminClient.send(new CreateBucketCommand({ Bucket: name }));
  }

  /** A new S3 client for this server; the caller owns it (`client.destroy()`). */
  createClient(): S3Client {
    return new S3Client({
      ...this.settings,
      // s3rver predates the SDK's default CRC checksums and aws-chunked uploads.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
  }

  /** Stops the server and removes the temp dir it made. */
  async close(): Promise<void> {
    await this.stop();
    this.adminClient?.destroy();
    this.adminClient = undefined;
    if (this.madeDirectory && this.directoryValue) await rm(this.directoryValue, { recursive: true, force: true });
    this.directoryValue = undefined;
  }

  /** Reads the `{"port": N}` line the child prints once it listens. */
  private waitForPort(child: ChildProcess): Promise<number> {
    const timeoutMs = this.options.startTimeoutMs ?? 15_000;
    return new Promise((resolve, reject) => {
      let out = '';
      let settled = false;
      const fail = (message: string) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        reject(new DevServiceError(DevServiceErrorCode.StartFailed, `${message}\n${this.stderrTail.trim().split('\n').slice(-8).join('\n')}`));
      };
      const timer = setTimeout(() => fail(`s3rver did not start listening within ${timeoutMs} ms`), timeoutMs);
      child.once('error', (err) => fail(`could not run s3rver: ${err.message}`));
      child.once('exit', (code, signal) => fail(`s3rver exited with ${signal ?? `code ${code}`} before listening on ${HOST}:${this.portValue ?? 'a free port'}`));
      child.stdout?.setEncoding('utf8').on('data', function onData(text: string) {
        out += text;
        const line = out.split('\n').find((l) => l.startsWith('{"port":'));
        if (!line || settled) return;
        settled = true;
        child.stdout?.off('data', onData);
        child.stdout?.resume();
        clearTimeout(timer);
        resolve((JSON.parse(line) as { port: number }).port);
      });
    });
  }
}
