// `layertap bench --worker`: the real worker path, measured beside the model alone. A `layertap-worker`
// process (with its inference process) takes the bench's photos from Redis and writes `.npy` files to a
// directory, exactly as in production; the figures come from its chunk results and the CPU time of its
// process tree.
import { spawn, type ChildProcess } from 'node:child_process';
import { cpus, loadavg, tmpdir } from 'node:os';
import { mkdtemp, rm } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { S3Client } from '@aws-sdk/client-s3';
import { ChunkResult, type DatasetConfig } from '@layertap/contracts';
import { LayertapQueues, connectRedis, datasetStatus, type Redis } from '@layertap/queue';
import { prepareSubmission } from '@layertap/submission';
import { EngineThread } from '../inference/engine-client';
import { STAGES, type Stage } from '../metrics';
import { generateImages } from './images';
import { benchEngine, benchModelSpec, modelOnlyRun, pickSettings, type BenchEngine, type BenchOptions, type BenchReport, type BenchSettings } from './run-bench';
import { kernelShare, treeCpu } from './process-cpu';
import { comparePytorchPipeline, type PytorchPipelineComparison } from './pytorch';

export interface WorkerBenchOptions extends BenchOptions {
  /** Redis the worker and the bench share (the dev services' when the CLI runs it). */
  redisUrl: string;
  /** Queue prefix of this bench's jobs. */
  prefix: string;
  /** The worker to run: a `layertap-worker` launcher or its `.js` entry (another version, to compare). */
  workerBin: string;
  /** Environment of the worker process (PATH, HOME; Redis and the prefix are added). */
  env: NodeJS.ProcessEnv;
  /** Chunk size of the bench's dataset (the CLI's default, 64). */
  chunkSize: number;
}

export interface WorkerBenchReport {
  machine: BenchReport['machine'];
  /** The model alone, in this process, on the engine the worker chose (the same request). */
  engine: BenchEngine;
  settings: BenchSettings & { dir: string; chunkSize: number; workerBin: string };
  modelOnly: BenchReport['modelOnly'];
  worker: {
    /** What the worker's chunk results name (its engine, backend and device). */
    engine: string;
    images: number;
    ok: number;
    failed: number;
    /** From the first chunk's start to the dataset's finish (the manifest and dataset.json written), after a warm-up dataset. */
    seconds: number;
    imagesPerSecond: number;
    /** CPU time of the worker's whole process tree (main process and inference process) per image. */
    cpuMsPerImage?: number;
    /** The kernel's share (0-1) of that CPU time. */
    kernelShare?: number;
    /** Images per second per core the process tree kept busy. */
    imagesPerCpuSecond?: number;
    /** Wall time inside each stage per image, summed over the chunks (stages overlap). Absent for workers that do not report them. */
    msPerImage?: Partial<Record<Stage, number>>;
    chunks: number;
    warmupSeconds: number;
  };
  /** The worker's images/s over the model alone. */
  ratio: number;
  /** `--compare-pytorch` with `--engine null`: the PyTorch pipeline, model replaced by zeros, on the same photos. */
  pytorch?: PytorchPipelineComparison;
}

/** Runs the model alone, then the worker on the same photos, and compares them. */
export async function runWorkerBench(options: WorkerBenchOptions, progress: (line: string) => void = () => undefined): Promise<WorkerBenchReport> {
  const loadAverage = loadavg()[0] ?? 0;
  const spec = await benchModelSpec(options);
  const dir = options.dir ? path.resolve(options.dir) : await mkdtemp(path.join(tmpdir(), 'layertap-bench-'));
  const imagesDir = path.join(dir, 'images');
  const warmupDir = path.join(dir, 'warmup');
  let redis: Redis | undefined;
  let queues: LayertapQueues | undefined;
  let worker: ChildProcess | undefined;
  const s3 = new S3Client({ region: 'us-east-1' });
  try {
    const { width, height, format } = options.photo;
    progress(`generating ${options.images} ${format.toUpperCase()} photos (${width}x${height}) in ${imagesDir}`);
    const files = await generateImages(imagesDir, options.images, { samplesDir: options.samplesDir, ...options.photo });
    await generateImages(warmupDir, options.batchSize, { samplesDir: options.samplesDir, ...options.photo });

    // The model alone first, then freed: the worker gets the machine to itself.
    const runner = new EngineThread();
    let engine: BenchEngine;
    let modelOnly: BenchReport['modelOnly'];
    try {
      engine = benchEngine((await runner.load(spec)).engine);
      progress(`model only on ${engine.label}...`);
      modelOnly = await modelOnlyRun(runner, files, options);
      progress(`model only: ${modelOnly.imagesPerSecond.toFixed(2)} images/s`);
    } finally {
      await runner.close();
    }

    redis = await connectRedis(options.redisUrl, { mode: 'command' });
    queues = new LayertapQueues({ connection: redis, prefix: options.prefix });
    const output = pathToFileURL(path.join(dir, 'worker-out')).href;
    const submit = async (source: string, datasetId: string): Promise<DatasetConfig> => {
      const prepared = await prepareSubmission(
        {
          ...(options.model ? { model: options.model } : {}),
          ...(options.onnxModel ? { onnxModel: options.onnxModel } : {}),
          source,
          layers: options.layers,
          output,
          preprocess: options.preprocess,
          imageSize: options.imageSize,
          batchSize: options.batchSize,
          chunkSize: options.chunkSize,
          dtype: options.dtype,
          layout: options.layout,
          pool: 'none',
          // The bench times the work, not the weights: seeded random ones, as the model-only figures use (an
          // ONNX file has its own).
          ...(options.onnxModel ? {} : { weights: 'random' }),
          seed: options.seed,
          datasetId,
        },
        { s3 },
      );
      await (queues as LayertapQueues).submit(prepared.config, prepared.samples);
      return prepared.config;
    };

    progress(`starting ${options.workerBin}`);
    const args = ['--concurrency', '1', '--engine', options.engine, '--backend', options.backend ?? 'auto', ...(options.threads ? ['--threads', String(options.threads)] : [])];
    worker = spawn(options.workerBin, args, {
      env: { ...options.env, REDIS_URL: options.redisUrl, LAYERTAP_QUEUE_PREFIX: options.prefix, LAYERTAP_METRICS_PORT: '0', LOG_LEVEL: 'warn', ...(options.im2col ? { LAYERTAP_WEBGPU_IM2COL: '1' } : {}) },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    worker.stderr?.on('data', (d) => void (stderr = (stderr + String(d)).slice(-4000)));
    const exited = new Promise<number | null>((resolve) => worker?.once('exit', (code) => resolve(code)));

    const warmupStarted = performance.now();
    await submit(warmupDir, 'bench-warmup');
    await waitDone(queues, 'bench-warmup', exited, () => stderr);
    const warmupSeconds = (performance.now() - warmupStarted) / 1000;
    progress(`worker warmed up in ${warmupSeconds.toFixed(1)} s; running ${files.length} photos through it...`);

    const cpuBefore = await treeCpu(worker.pid as number);
    const config = await submit(imagesDir, 'bench');
    await waitDone(queues, 'bench', exited, () => stderr);
    const cpuAfter = await treeCpu(worker.pid as number);

    const results = await chunkResults(queues, 'bench');
    const finished = (await queues.store.results('bench')).get(0);
    const firstStart = Math.min(...results.map((r) => Date.parse(r.startedAt)));
    const seconds = ((finished?.finishedAt ?? Date.now()) - firstStart) / 1000;
    const ok = results.reduce((n, r) => n + r.ok, 0);
    const failed = results.reduce((n, r) => n + r.failed, 0);
    const cpu = cpuBefore && cpuAfter ? { user: cpuAfter.user - cpuBefore.user, system: cpuAfter.system - cpuBefore.system } : undefined;
    const cpuMs = cpu && cpu.user + cpu.system;
    const n = files.length;
    const stageSums = sumStages(results);
    const first = results[0];
    const report: WorkerBenchReport = {
      machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? 'unknown', node: process.version, loadAverage },
      engine,
      settings: { ...pickSettings(options), dir, chunkSize: options.chunkSize, workerBin: options.workerBin },
      modelOnly,
      worker: {
        engine: first?.engine ? `${first.engine.engine}/${first.engine.backend} on ${first.engine.device.description}` : (first?.backend ?? 'unknown'),
        images: n,
        ok,
        failed,
        seconds,
        imagesPerSecond: n / seconds,
        ...(cpu && cpuMs !== undefined ? { cpuMsPerImage: cpuMs / n, kernelShare: kernelShare(cpu), imagesPerCpuSecond: n / (cpuMs / 1000) } : {}),
        ...(stageSums ? { msPerImage: Object.fromEntries(Object.entries(stageSums).map(([k, v]) => [k, v / n])) } : {}),
        chunks: results.length,
        warmupSeconds,
      },
      ratio: n / seconds / modelOnly.imagesPerSecond,
    };
    if (options.comparePytorch) {
      // After the worker is gone, so that PyTorch gets the machine as the worker had it.
      await stopWorker(worker);
      report.pytorch =
        options.engine !== 'null'
          ? { available: false, reason: 'with a real engine, --worker compares with the model alone (worker / model only); PyTorch is compared without --worker' }
          : config.layers.length !== 1
            ? { available: false, reason: 'the PyTorch pipeline comparison takes one layer' }
            : await comparePytorchPipeline(
                {
                  python: options.python,
                  imagesDir,
                  workDir: dir,
                  shape: config.layers[0]?.shape ?? [],
                  dtype: options.dtype,
                  batchSize: options.batchSize,
                  imageSize: options.imageSize,
                  preprocess: options.preprocess,
                },
                report.worker.cpuMsPerImage,
                progress,
              );
    }
    return report;
  } finally {
    if (worker) await stopWorker(worker);
    await queues?.close().catch(() => undefined);
    await redis?.quit().catch(() => undefined);
    s3.destroy();
    if (!options.keep && !options.dir) await rm(dir, { recursive: true, force: true });
  }
}

async function stopWorker(worker: ChildProcess): Promise<void> {
  if (worker.exitCode !== null || worker.signalCode !== null) return;
  const gone = new Promise((resolve) => worker.once('exit', resolve));
  worker.kill('SIGTERM');
  await gone;
}

/** Waits until the dataset's run is done, failing early if the worker exits. */
async function waitDone(queues: LayertapQueues, datasetId: string, exited: Promise<number | null>, stderr: () => string): Promise<void> {
  let gone: number | null | undefined;
  void exited.then((code) => (gone = code));
  for (;;) {
    const status = await datasetStatus(queues, datasetId);
    if (status?.state === 'done') return;
    if (status?.state === 'failed') throw new Error(`the bench dataset ${datasetId} failed: ${status.parentJob?.failedReason ?? 'see the worker log'}`);
    if (gone !== undefined) throw new Error(`the worker exited with code ${gone}:\n${stderr()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The chunk results of a dataset's first run, from its parent job. */
async function chunkResults(queues: LayertapQueues, datasetId: string): Promise<ChunkResult[]> {
  const parent = await queues.datasetJob(datasetId, 0);
  const values = parent ? Object.values(await parent.getChildrenValues()) : [];
  return values.flatMap((v) => {
    const parsed = ChunkResult.safeParse(v);
    return parsed.success ? [parsed.data] : [];
  });
}

/** Stage milliseconds summed over the chunks, when the worker reports them. */
function sumStages(results: ChunkResult[]): Partial<Record<Stage, number>> | undefined {
  const sums: Partial<Record<Stage, number>> = {};
  let any = false;
  for (const r of results) {
    const t = r.timings;
    if (!t) continue;
    const byStage: Partial<Record<Stage, number | undefined>> = {
      fetch: t.fetchMs,
      decode: t.decodeMs,
      preprocess: t.preprocessMs,
      transfer: t.transferMs,
      inference: t.inferenceMs,
      readback: t.readbackMs,
      encode: t.encodeMs,
      write: t.writeMs,
    };
    for (const stage of STAGES) {
      const v = byStage[stage];
      if (v === undefined) continue;
      sums[stage] = (sums[stage] ?? 0) + v;
      any = true;
    }
  }
  return any ? sums : undefined;
}
