// `layertap bench`: model-only and end-to-end throughput on this machine, in one process, through the same
// EngineThread and BatchRunner the worker runs (without Redis, the inference process or S3: `--worker` adds
// those). Optionally against PyTorch on the same images.
import { cpus, loadavg, tmpdir } from 'node:os';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { ErrorCode, ValidationError, engineTargets, type BackendName, type Dtype, type EngineName, type Layout, type ModelName, type Preprocess } from '@layertap/contracts';
import { decodeImage, fitPixels, normalizePixels } from '@layertap/imaging';
import { modelFor } from '@layertap/model/models';
import { normalizeUri, planLayers, planOnnxModel } from '@layertap/submission';
import { FileOutputWriter, sampleKey } from '@layertap/storage';
import { BatchRunner, type PreparedItem } from '../batch-runner';
import { emptyStageTimes, type StageTimes } from '../chunk-ledger';
import { sampleNpy, storeBatch } from '../stored-batch';
import { EngineThread } from '../inference/engine-client';
import type { InferResult, ModelInfo, ModelSpec } from '../inference/protocol';
import type { Limiter } from '../limiter';
import { STAGES } from '../metrics';
import { generateImages } from './images';
import type { CpuMs } from './process-cpu';
import { DEFAULT_PYTHON, comparePytorch, type PytorchComparison } from './pytorch';

export interface BenchOptions {
  /** The model (default vgg16); `onnx` with `onnxModel`. */
  model?: ModelName;
  /** `--model file.onnx`: the ONNX file's path or URI. */
  onnxModel?: string;
  engine: EngineName;
  /** The engine's backend, as the worker takes it. Default auto. */
  backend?: BackendName;
  /** ONNX Runtime compute threads. Default: one per core. */
  threads?: number;
  /** TF.js WebGPU: convolutions through the separate im2col shader. */
  im2col?: boolean;
  layers: string[];
  batchSize: number;
  imageSize: number;
  /** Photos to generate and run end to end. */
  images: number;
  /** The generated photos: size and format (JPEG like most datasets, or lossless PNG). */
  photo: { width: number; height: number; format: 'jpeg' | 'png' };
  preprocess: Preprocess;
  layout: Layout;
  dtype: Dtype;
  /** Images fetched and decoded at once (the worker's LAYERTAP_DECODE_CONCURRENCY default). */
  decodeConcurrency: number;
  /** Files written at once (the worker's LAYERTAP_UPLOAD_CONCURRENCY default). */
  writeConcurrency: number;
  comparePytorch: boolean;
  python: string;
  /** torch device for the comparison: cpu, cuda, or auto (cuda when the engine computes on a GPU). */
  pytorchDevice: string;
  /** Working directory for images and outputs. Default: a new temporary directory, removed afterwards. */
  dir?: string;
  keep: boolean;
  seed: number;
  /** Source photos the test images are cut from. */
  samplesDir: string;
}

export const DEFAULT_BENCH_OPTIONS: Omit<BenchOptions, 'samplesDir'> = {
  engine: 'auto',
  layers: ['features.9'],
  batchSize: 16,
  imageSize: 224,
  images: 64,
  photo: { width: 500, height: 375, format: 'jpeg' },
  preprocess: 'torchvision',
  layout: 'chw',
  dtype: 'float32',
  decodeConcurrency: 4,
  writeConcurrency: 8,
  comparePytorch: false,
  python: DEFAULT_PYTHON,
  pytorchDevice: 'auto',
  keep: false,
  seed: 0,
};

/** The options a report repeats. */
export type BenchSettings = Omit<BenchOptions, 'dir' | 'keep' | 'python' | 'comparePytorch' | 'samplesDir'>;

export interface BenchEngine {
  label: string;
  engine: string;
  backend: string;
  device: string;
  reason: string;
  warnings: string[];
  threads?: number;
}

export interface BenchReport {
  /** `loadAverage`: the 1-minute load when the bench started; above the CPU count, other work shared the cores. */
  machine: { cpus: number; cpuModel: string; node: string; loadAverage: number };
  engine: BenchEngine;
  settings: BenchSettings & { dir: string };
  setup: { generateSeconds: number; loadSeconds: number };
  modelOnly: {
    batches: number;
    images: number;
    seconds: number;
    imagesPerSecond: number;
    inferenceMsPerBatch: number;
    readbackMsPerBatch: number;
    /** This process's CPU seconds per wall second: how many cores it got. */
    cpuPerSecond: number;
  };
  /** Each stage on its own, one image or file at a time with nothing else running (the first batch's images). */
  stagesAlone: {
    images: number;
    msPerImage: Record<AloneStage, number>;
    /** This process's CPU time inside each stage per image, user and kernel apart (sharp's and libuv's threads included). */
    cpuMsPerImage: Record<AloneStage, CpuMs>;
  };
  endToEnd: {
    images: number;
    files: number;
    bytes: number;
    seconds: number;
    imagesPerSecond: number;
    /** Wall time inside each stage per image (stages overlap and wait for each other and the event loop). */
    msPerImage: StageTimes;
    /** Where the batch loop spent the wall time: waiting for prepared images, for the engine, for writes. */
    loopSeconds: { waitImages: number; model: number; waitWrites: number };
    /** This process's CPU seconds per wall second (sharp's decoding threads included). */
    cpuPerSecond: number;
    /** This process's CPU time per image over the run, user and kernel apart (the engine thread included). */
    cpuMsPerImage: CpuMs;
  };
  /** Peak resident memory of this process so far. */
  peakRssMb: number;
  /** Live tensors after the end-to-end run (ONNX Runtime: OrtValues held; its numBytes include the weights). */
  tensorsAfterRun: { numTensors: number; numBytes: number };
  pytorch?: PytorchComparison;
}

/** The stages measured one at a time. */
export const ALONE_STAGES = ['fetch', 'decode', 'preprocess', 'encode', 'write'] as const;
export type AloneStage = (typeof ALONE_STAGES)[number];

/**
 * The model spec the bench loads: the same `ModelSpec` a worker's inference process gets. An ONNX file is
 * planned as `submit` plans it (read, checked, probed).
 */
export async function benchModelSpec(options: BenchOptions): Promise<ModelSpec> {
  engineTargets(options.engine, options.backend ?? 'auto');
  if (options.onnxModel && options.comparePytorch) {
    throw new ValidationError(ErrorCode.InvalidRequest, '--compare-pytorch runs torchvision models: it has nothing to compare an ONNX file with');
  }
  const onnx = options.onnxModel
    ? await planOnnxModel(options.onnxModel, { layers: options.layers, imageSize: options.imageSize, workerUri: normalizeUri(options.onnxModel, process.cwd()) })
    : undefined;
  const model = onnx ? { model: 'onnx' as const, onnx: onnx.ref } : options.model ? { model: options.model } : {};
  return {
    engine: options.engine,
    backend: options.backend ?? 'auto',
    ...(options.threads ? { threads: options.threads } : {}),
    ...(options.im2col ? { im2col: true } : {}),
    ...model,
    imageSize: options.imageSize,
    // The image size is checked here, against the model.
    layers: planLayers({ ...model, layers: options.layers, imageSize: options.imageSize, layout: options.layout, pool: 'none' }, onnx?.resolved),
    seed: options.seed,
    preprocess: options.preprocess,
    store: { layout: options.layout, pool: 'none', dtype: options.dtype },
  };
}

/** Runs the benchmark and returns its figures. Progress lines go to `progress`. */
export async function runBench(options: BenchOptions, progress: (line: string) => void = () => undefined): Promise<BenchReport> {
  const loadAverage = loadavg()[0] ?? 0;
  const spec = await benchModelSpec(options);
  const dir = options.dir ? path.resolve(options.dir) : await mkdtemp(path.join(tmpdir(), 'layertap-bench-'));
  const imagesDir = path.join(dir, 'images');
  // The engine on its own thread, as in a worker's inference process: this thread prepares and writes.
  const runner = new EngineThread();
  try {
    let started = performance.now();
    const { width, height, format } = options.photo;
    progress(`generating ${options.images} ${format.toUpperCase()} photos (${width}x${height}) in ${imagesDir}`);
    const files = await generateImages(imagesDir, options.images, { samplesDir: options.samplesDir, ...options.photo });
    const generateSeconds = (performance.now() - started) / 1000;

    started = performance.now();
    const model = await runner.load(spec);
    const loadSeconds = (performance.now() - started) / 1000;
    const engine = benchEngine(model.engine);

    progress('model only...');
    const modelOnly = await modelOnlyRun(runner, files, options);
    progress(`model only: ${modelOnly.imagesPerSecond.toFixed(2)} images/s`);
    const stagesAlone = await stagesAloneRun(files.slice(0, options.batchSize), path.join(dir, 'stages-out'), options, spec);
    progress('end to end...');
    const outDir = path.join(dir, 'layertap-out');
    await rm(outDir, { recursive: true, force: true });
    const endToEnd = await endToEndRun(runner, files, outDir, options);
    progress(`end to end: ${endToEnd.imagesPerSecond.toFixed(2)} images/s`);
    const after = await runner.infer(new Float32Array(spec.imageSize * spec.imageSize * 3), 1);
    const report: BenchReport = {
      machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? 'unknown', node: process.version, loadAverage },
      engine,
      settings: { ...pickSettings(options), dir },
      setup: { generateSeconds, loadSeconds },
      modelOnly,
      stagesAlone,
      endToEnd,
      peakRssMb: process.resourceUsage().maxRSS / 1024,
      tensorsAfterRun: { numTensors: after.memory.numTensors, numBytes: after.memory.numBytes },
    };
    if (options.comparePytorch) {
      const device = options.pytorchDevice === 'auto' ? (model.engine.device.kind === 'gpu' ? 'auto' : 'cpu') : options.pytorchDevice;
      report.pytorch = await comparePytorch(
        { python: options.python, device, model: options.model ?? 'vgg16', layers: options.layers, preprocess: options.preprocess, batchSize: options.batchSize, imageSize: options.imageSize, ...(options.threads ? { threads: options.threads } : {}), imagesDir, workDir: dir },
        endToEnd,
        progress,
      );
    }
    return report;
  } finally {
    await runner.close();
    if (!options.keep && !options.dir) await rm(dir, { recursive: true, force: true });
  }
}

export function pickSettings(options: BenchOptions): BenchSettings {
  const { dir: _dir, keep: _keep, python: _python, comparePytorch: _compare, samplesDir: _samples, ...settings } = options;
  return settings;
}

/** The engine a loaded model runs on, as a report shows it. */
export function benchEngine(engine: ModelInfo['engine']): BenchEngine {
  return {
    label: `${engine.engine}/${engine.backend}`,
    engine: engine.engine,
    backend: engine.backend,
    device: engine.device.description,
    reason: engine.reason,
    warnings: engine.warnings,
    ...(engine.device.threads ? { threads: engine.device.threads } : {}),
  };
}

/** One photo, read, decoded, resized and cropped as a worker does (8-bit pixels). */
async function fitFile(file: string, options: BenchOptions): Promise<Uint8Array> {
  const decoded = await decodeImage(await readFile(file));
  return fitPixels(decoded.rgb, { mode: options.preprocess, imageSize: options.imageSize });
}

/** The same batch, preprocessed from the first images, run back to back: the engine alone. */
export async function modelOnlyRun(runner: EngineThread, files: string[], options: BenchOptions): Promise<BenchReport['modelOnly']> {
  const sample = options.imageSize * options.imageSize * 3;
  // Model input (normalised float32), so that only the engine is timed.
  const input = new Float32Array(options.batchSize * sample);
  for (let k = 0; k < options.batchSize; k++) {
    normalizePixels(await fitFile(files[k % files.length] as string, options), options.preprocess, input.subarray(k * sample, (k + 1) * sample));
  }
  const batches = Math.max(1, Math.ceil(options.images / options.batchSize));
  let inference = 0;
  let readback = 0;
  const cpu = process.cpuUsage();
  const started = performance.now();
  for (let b = 0; b < batches; b++) {
    // A copy each time: the batch's memory moves to the engine thread.
    const result = await runner.infer(input.slice(), options.batchSize);
    inference += result.inferenceMs;
    readback += result.readbackMs;
  }
  const seconds = (performance.now() - started) / 1000;
  const images = batches * options.batchSize;
  return {
    batches,
    images,
    seconds,
    imagesPerSecond: images / seconds,
    inferenceMsPerBatch: inference / batches,
    readbackMsPerBatch: readback / batches,
    cpuPerSecond: cpuSeconds(process.cpuUsage(cpu)) / seconds,
  };
}

/** Fetch, decode, preprocess, encode and write measured one at a time, so each figure is that stage's own cost. */
async function stagesAloneRun(files: string[], outDir: string, options: BenchOptions, spec: ModelSpec): Promise<BenchReport['stagesAlone']> {
  const writer = new FileOutputWriter({ dir: outDir });
  const layer = spec.layers[0] as { spec: string; canonical: string };
  const shape = [1, ...modelFor(spec).outputShape(layer.canonical, options.imageSize)];
  const values = shape.reduce((a, b) => a * b, 1);
  // One sample of the first layer as an engine hands it over (NCHW, as ONNX Runtime does).
  const output = { ...layer, data: new Float32Array(values).map((_, i) => (i % 97) / 97), shape, layout: 'nchw' as const };
  const wall = zeroes(() => 0);
  const cpu = zeroes<CpuMs>(() => ({ user: 0, system: 0 }));
  // Wall and CPU time of one stage; nothing else runs meanwhile, so the process's CPU time is the stage's.
  const timed = async <T>(stage: AloneStage, work: () => Promise<T> | T): Promise<T> => {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    const result = await work();
    wall[stage] += performance.now() - t0;
    const used = process.cpuUsage(c0);
    cpu[stage].user += used.user / 1000;
    cpu[stage].system += used.system / 1000;
    return result;
  };
  for (const [i, file] of files.entries()) {
    const bytes = await timed('fetch', () => readFile(file));
    const decoded = await timed('decode', () => decodeImage(bytes));
    await timed('preprocess', () => normalizePixels(fitPixels(decoded.rgb, { mode: options.preprocess, imageSize: options.imageSize }), options.preprocess));
    const body = await timed('encode', () => sampleNpy(storeBatch(output, spec.store), 0));
    await timed('write', () => writer.put(`alone/${i}.npy`, body));
  }
  await rm(outDir, { recursive: true, force: true });
  const n = Math.max(1, files.length);
  return {
    images: files.length,
    msPerImage: zeroes((s) => wall[s] / n),
    cpuMsPerImage: zeroes((s) => ({ user: cpu[s].user / n, system: cpu[s].system / n })),
  };
}

function zeroes<T>(value: (stage: AloneStage) => T): Record<AloneStage, T> {
  return Object.fromEntries(ALONE_STAGES.map((s) => [s, value(s)])) as Record<AloneStage, T>;
}

/** Photo files to `.npy` files through the BatchRunner, as a worker runs a chunk (without Redis and IPC). */
async function endToEndRun(runner: EngineThread, files: string[], outDir: string, options: BenchOptions): Promise<BenchReport['endToEnd']> {
  const writer = new FileOutputWriter({ dir: outDir });
  const stages = emptyStageTimes();
  const timed = async <T>(stage: keyof StageTimes, work: () => Promise<T> | T): Promise<T> => {
    const t0 = performance.now();
    try {
      return await work();
    } finally {
      stages[stage] += performance.now() - t0;
    }
  };
  let bytes = 0;
  let written = 0;
  const batchRunner = new BatchRunner({
    batchSize: options.batchSize,
    imageValues: options.imageSize * options.imageSize * 3,
    prepareConcurrency: options.decodeConcurrency,
    writeConcurrency: options.writeConcurrency,
    prepare: async (index) => {
      const file = files[index] as string;
      const data = await timed('fetch', () => readFile(file));
      const decoded = await timed('decode', () => decodeImage(data));
      return timed('preprocess', () => fitPixels(decoded.rgb, { mode: options.preprocess, imageSize: options.imageSize }));
    },
    infer: (input, n) => runner.infer(input, n),
    store: async (batch: PreparedItem[], result: InferResult, write: Limiter) => {
      stages.inference += result.inferenceMs;
      stages.readback += result.readbackMs;
      await Promise.all(
        batch.flatMap((item, k) =>
          result.outputs.map((layer) =>
            write(async () => {
              const body = await timed('encode', () => sampleNpy(layer, k));
              await timed('write', () => writer.put(sampleKey('bench', layer.spec, path.basename(files[item.index] as string).replace(/\.\w+$/, '')), body));
              bytes += body[0].length + body[1].length;
              written++;
            }),
          ),
        ),
      );
    },
  });
  const cpu = process.cpuUsage();
  const started = performance.now();
  const stats = await batchRunner.run(files.length);
  const seconds = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  const n = files.length;
  const msPerImage = Object.fromEntries(STAGES.map((s) => [s, stages[s] / n])) as StageTimes;
  return {
    images: n,
    files: written,
    bytes,
    seconds,
    imagesPerSecond: n / seconds,
    msPerImage,
    loopSeconds: { waitImages: stats.waitPrepareMs / 1000, model: stats.waitInferenceMs / 1000, waitWrites: stats.waitWritesMs / 1000 },
    cpuPerSecond: cpuSeconds(used) / seconds,
    cpuMsPerImage: { user: used.user / 1000 / n, system: used.system / 1000 / n },
  };
}

function cpuSeconds(usage: NodeJS.CpuUsage): number {
  return (usage.user + usage.system) / 1e6;
}
