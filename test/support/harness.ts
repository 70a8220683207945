/**
 * End-to-end harness: real `redis-server` and s3rver (DevServices), and the real CLIs run as processes.
 * Every test file starts its own services and uses its own queue prefix, so files never share state.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { Redis } from 'ioredis';
import { DevServices, type RedisServerOptions, type S3ServerOptions } from '@layertap/devservices';
import { decodeNpy } from '@layertap/storage';
import type { ManifestLine } from '@layertap/contracts';

export const REPO = path.resolve(__dirname, '..', '..');
export const BIN = {
  layertap: path.join(REPO, 'apps/producer/bin/layertap.js'),
  worker: path.join(REPO, 'apps/worker/bin/layertap-worker.js'),
  dashboard: path.join(REPO, 'apps/dashboard/bin/layertap-dashboard.js'),
};
export const SAMPLES = path.join(REPO, 'apps/producer/samples');

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Resolves once `url` answers HTTP at all (a server started as a process is up), or throws after `timeoutMs`. */
export async function waitForHttp(url: string, timeoutMs = 30_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    try {
      await fetch(url);
      return;
    } catch {
      if (Date.now() > until) throw new Error(`${url} did not come up`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

export class Harness {
  readonly services: DevServices;
  readonly prefix: string;
  s3!: S3Client;
  tmp!: string;
  private readonly children = new Set<ChildProcess>();
  private client: Redis | undefined;

  constructor(name: string, options: { redis?: RedisServerOptions; s3?: S3ServerOptions } = {}) {
    this.prefix = `lt-${name}`;
    this.services = new DevServices({ s3: { buckets: ['layertap'], ...options.s3 }, ...(options.redis ? { redis: options.redis } : {}) });
  }

  async start(): Promise<this> {
    await this.services.start();
    this.s3 = new S3Client({ ...this.services.s3 });
    this.tmp = await mkdtemp(path.join(tmpdir(), `${this.prefix}-`));
    return this;
  }

  /** A Redis client on the harness's server, for tests that look at keys and jobs; closed with the harness. */
  get redis(): Redis {
    return (this.client ??= new Redis(this.services.redisUrl));
  }

  /** Environment for the CLIs: the dev services and this harness's queue prefix. */
  env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
    const { s3 } = this.services;
    return {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      REDIS_URL: this.services.redisUrl,
      LAYERTAP_QUEUE_PREFIX: this.prefix,
      AWS_ENDPOINT_URL_S3: s3.endpoint,
      AWS_REGION: s3.region,
      AWS_ACCESS_KEY_ID: s3.credentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: s3.credentials.secretAccessKey,
      AWS_S3_FORCE_PATH_STYLE: 'true',
      LOG_LEVEL: 'info',
      // Many workers share this machine in the tests: metrics only where a test asks for them.
      LAYERTAP_METRICS_PORT: '0',
      // Workers run with --exit-when-idle after the test has submitted: one quiet second is enough here.
      LAYERTAP_EXIT_WHEN_IDLE_SECONDS: '1',
      // Workers count the workers on their host to share the cores out: each test counts only its own.
      ...(this.tmp ? { LAYERTAP_WORKERS_DIR: path.join(this.tmp, 'workers') } : {}),
      ...extra,
    };
  }

  /** Runs a CLI to completion. */
  run(bin: string, args: string[], extraEnv: Record<string, string> = {}, timeoutMs = 240_000): Promise<RunResult> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [bin, ...args], { env: this.env(extraEnv), stdio: ['ignore', 'pipe', 'pipe'] });
      this.children.add(child);
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => (stdout += d));
      child.stderr.on('data', (d) => (stderr += d));
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`${path.basename(bin)} ${args.join(' ')} timed out\nstdout: ${stdout}\nstderr: ${stderr}`));
      }, timeoutMs);
      child.on('exit', (code) => {
        clearTimeout(timer);
        this.children.delete(child);
        resolve({ code, stdout, stderr });
      });
    });
  }

  layertap(args: string[], extraEnv: Record<string, string> = {}): Promise<RunResult> {
    return this.run(BIN.layertap, args, extraEnv);
  }

  /** Starts a long-running process (worker, dashboard); its output is collected in `output()`. */
  spawn(bin: string, args: string[], extraEnv: Record<string, string> = {}): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
    const child = spawn(process.execPath, [bin, ...args], { env: this.env(extraEnv), stdio: ['ignore', 'pipe', 'pipe'] });
    this.children.add(child);
    let out = '';
    child.stdout?.on('data', (d) => (out += d));
    child.stderr?.on('data', (d) => (out += d));
    const exited = new Promise<number | null>((resolve) =>
      child.on('exit', (code) => {
        this.children.delete(child);
        resolve(code);
      }),
    );
    return { child, output: () => out, exited };
  }

  /** Resolves once `output()` matches `pattern` (polling), or throws after `timeoutMs`. */
  async waitForOutput(output: () => string, pattern: RegExp, timeoutMs = 120_000): Promise<RegExpMatchArray> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const m = output().match(pattern);
      if (m) return m;
      if (Date.now() > until) throw new Error(`timed out waiting for ${pattern}:\n${output()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Runs one worker until the queues are empty. */
  async runWorker(args: string[] = [], extraEnv: Record<string, string> = {}): Promise<string> {
    const w = this.spawn(BIN.worker, ['--exit-when-idle', ...args], extraEnv);
    const code = await w.exited;
    if (code !== 0) throw new Error(`worker exited with ${code}:\n${w.output()}`);
    return w.output();
  }

  async getObject(bucket: string, key: string): Promise<Buffer | undefined> {
    try {
      const res = await this.s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      return Buffer.from(await res.Body!.transformToByteArray());
    } catch (err) {
      if ((err as { name?: string }).name === 'NoSuchKey') return undefined;
      throw err;
    }
  }

  async listKeys(bucket: string, prefix: string): Promise<string[]> {
    const keys: string[] = [];
    let token: string | undefined;
    do {
      const page = await this.s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
      keys.push(...(page.Contents ?? []).map((c) => c.Key!));
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return keys.sort();
  }

  async manifest(bucket: string, prefix: string, datasetId: string): Promise<ManifestLine[]> {
    const body = await this.getObject(bucket, `${prefix}/${datasetId}/manifest.jsonl`);
    if (!body) throw new Error(`no manifest for ${datasetId}`);
    return body
      .toString('utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as ManifestLine);
  }

  async npy(bucket: string, key: string) {
    const body = await this.getObject(bucket, key);
    if (!body) throw new Error(`missing ${key}`);
    return decodeNpy(body);
  }

  async close(): Promise<void> {
    for (const child of this.children) child.kill('SIGKILL');
    this.client?.disconnect();
    this.s3?.destroy();
    await this.services.close();
  }
}
