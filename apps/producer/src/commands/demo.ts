import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { S3Client } from '@aws-sdk/client-s3';
import { devServicesEnv, type Env } from '@layertap/config';
import type { BackendName, EngineName } from '@layertap/contracts';
import { DevServices } from '@layertap/devservices';
import { decodeNpy, manifestKey, openOutput } from '@layertap/storage';
import { childEnv, readProducerConfig } from '../config';
import { withContext } from '../context';
import { submitCommand } from './submit';

export interface DemoOptions {
  dashboard: boolean;
  /** The worker's engine and backend (the worker's own flags). Default auto. */
  engine?: EngineName;
  backend?: BackendName;
  /** Where the demo keeps its S3 data and the local copy of the outputs. */
  dir: string;
  port: number;
}

/** The sample photos shipped with the CLI. */
export const SAMPLES_DIR = path.join(__dirname, '..', '..', 'samples');

/** Finds a sibling CLI (`layertap-worker`, `layertap-dashboard`) on PATH (npx and pnpm put node_modules/.bin there). */
export function findBin(name: string, env: NodeJS.ProcessEnv = childEnv({})): string {
  for (const dir of (env.PATH ?? '').split(path.delimiter)) {
    const candidate = path.join(dir, name);
    if (dir && existsSync(candidate)) return candidate;
  }
  throw new Error(`${name} not found on PATH: run \`bash infra/bootstrap.sh\` (it builds and puts the commands on PATH), then \`layertap demo\``);
}

function startProcess(bin: string, args: string[], env: NodeJS.ProcessEnv, logFile?: NodeJS.WritableStream): ChildProcess {
  // node_modules/.bin entries are shell launchers: run them as they are.
  const child = spawn(bin, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  if (logFile) {
    child.stdout?.pipe(logFile, { end: false });
    child.stderr?.pipe(logFile, { end: false });
  }
  return child;
}

function exited(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) return resolve(child.exitCode);
    child.once('exit', (code) => resolve(code));
  });
}

/**
 * `layertap demo`: starts a real redis-server and an S3 server, submits the sample photos shipped with the
 * CLI, runs one worker until the dataset is done, prints the summary and where the files are.
 */
export async function demoCommand(options: DemoOptions): Promise<number> {
  const dir = path.resolve(options.dir);
  // Each demo starts from scratch: a fresh Redis, so stale objects from an earlier demo would only confuse.
  await rm(path.join(dir, 's3'), { recursive: true, force: true });
  await rm(path.join(dir, 'output'), { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const { createWriteStream } = await import('node:fs');
  const log = createWriteStream(path.join(dir, 'demo.log'), { flags: 'w' });
  process.stdout.write('starting redis-server and the S3 server...\n');
  const bucket = 'layertap';
  const services = new DevServices({ s3: { directory: path.join(dir, 's3'), buckets: [bucket] } });
  await services.start();
  const children: ChildProcess[] = [];
  try {
    const env: Env = { ...devServicesEnv(services.redisUrl, services.s3), LAYERTAP_CONCURRENCY: '1' };
    const procEnv = childEnv(env);
    const config = readProducerConfig(procEnv);
    process.stdout.write(`redis ${services.redisUrl}, S3 ${services.s3.endpoint} (bucket ${bucket})\n`);

    const output = `s3://${bucket}/activations`;
    const exitCode = await withContext(config, 'waiting', async (ctx) => {
      const engineArgs = ['--engine', options.engine ?? 'auto', '--backend', options.backend ?? 'auto'];
      const worker = startProcess(findBin('layertap-worker'), ['--exit-when-idle', ...engineArgs], procEnv, log);
      children.push(worker);
      process.stdout.write(`worker started (pid ${worker.pid}, logs in ${path.join(dir, 'demo.log')})\n`);
      // A worker that dies early would leave the demo waiting for ever: stop with its log instead.
      const workerFailed = new Promise<never>((_resolve, reject) =>
        worker.once('exit', (exitCode) => {
          if (exitCode !== 0) reject(new Error(`the worker exited with code ${exitCode}; see ${path.join(dir, 'demo.log')}`));
        }),
      );
      workerFailed.catch(() => undefined);
      const code = await Promise.race([workerFailed, submitCommand(ctx, {
        source: SAMPLES_DIR,
        layers: ['features.9', 'block3_pool'],
        output,
        preprocess: 'torchvision',
        imageSize: 224,
        batchSize: 4,
        chunkSize: 4,
        dtype: 'float32',
        layout: 'chw',
        pool: 'none',
        // Offline, with nothing to download: seeded random weights, labelled so in dataset.json.
        weights: 'random',
        seed: 0,
        datasetId: 'demo',
        wait: true,
        json: false,
      })]);
      const copyDir = path.join(dir, 'output');
      const copied = await copyOutputs(ctx.s3, output, 'demo', copyDir);
      process.stdout.write(`\nfiles: ${output}/demo/ (S3 endpoint ${services.s3.endpoint})\n`);
      process.stdout.write(`copied ${copied.files} files to ${copyDir}/demo/ for a look, e.g.:\n`);
      for (const example of copied.examples) process.stdout.write(`  ${example}\n`);
      return code;
    });

    if (options.dashboard) {
      const user = 'admin';
      const password = randomBytes(9).toString('base64url');
      const dashboard = startProcess(findBin('layertap-dashboard'), ['--port', String(options.port)], {
        ...procEnv,
        LAYERTAP_DASHBOARD_USER: user,
        LAYERTAP_DASHBOARD_PASSWORD: password,
      }, log);
      children.push(dashboard);
      process.stdout.write(`\ndashboard: http://127.0.0.1:${options.port}/  user ${user}  password ${password}\n`);
      process.stdout.write('press Ctrl-C to stop the dashboard and the services\n');
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
        dashboard.once('exit', () => resolve());
      });
    }
    return exitCode;
  } finally {
    for (const child of children) if (child.exitCode === null) child.kill('SIGTERM');
    await Promise.all(children.map(exited));
    await services.close();
    log.end();
  }
}

/** Copies a dataset's outputs from S3 to a local directory and describes a few of them. */
async function copyOutputs(s3: S3Client, output: string, datasetId: string, dir: string): Promise<{ files: number; examples: string[] }> {
  const writer = openOutput(output, { s3 });
  const keys = (await writer.list(`${datasetId}/`)).filter((k) => !k.includes('/_parts/'));
  const examples: string[] = [];
  for (const key of keys) {
    const body = await writer.get(key);
    if (!body) continue;
    const target = path.join(dir, key);
    await mkdir(path.dirname(target), { recursive: true });
    await writeFile(target, body);
    if (key.endsWith('.npy') && examples.length < 4) {
      const npy = decodeNpy(body);
      examples.push(`${key}  shape (${npy.shape.join(', ')}) ${npy.dtype}`);
    }
  }
  if (keys.includes(manifestKey(datasetId))) examples.push(manifestKey(datasetId));
  return { files: keys.length, examples };
}
