// `layertap bench`: model-only and end-to-end throughput of one engine on this machine, optionally against
// PyTorch on the same images. In-process and without Redis: it measures the pipeline stages a worker runs.
import { execFile } from 'node:child_process';
import { cpus, loadavg, tmpdir } from 'node:os';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import sharp from 'sharp';
import path from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { BackendName, EngineName, Layout, Preprocess, engineTargets } from '@layertap/contracts';
import { preprocessImage } from '@layertap/imaging';
import { encodeNpy, FileOutputWriter, sampleArray, sampleKey } from '@layertap/storage';
import type * as Model from '@layertap/model';
import { SAMPLES_DIR } from './demo';

/** What a command action returns: its exit code. */
type Action = () => Promise<number>;

export interface BenchCommandOptions {
  /** Runs the action: the CLI passes its `run()` (prints errors, sets the exit code). */
  run?: (action: Action) => Promise<void>;
  /** Where the table or JSON goes. Default `process.stdout`. */
  stdout?: NodeJS.WritableStream;
  /** Where progress goes. Default `process.stderr`. */
  stderr?: NodeJS.WritableStream;
}


/** The interpreter the PyTorch comparison runs: Debian's, where python3-torch installs. */
export const DEFAULT_PYTHON = '/usr/bin/python3';
/** The PyTorch reference script, shipped next to the CLI's `dist/`. */
export const PYTORCH_SCRIPT = path.join(__dirname, '..', '..', 'bench', 'pytorch_reference.py');

export interface BenchOptions {
  engine: EngineName;
  /** The engine's backend (an ONNX Runtime provider or a TF.js backend), as the worker takes it. Default auto. */
  backend?: BackendName;
  /** TF.js WebGPU: convolutions through the separate im2col shader. */
  im2col?: boolean;
  /** ONNX Runtime compute threads. Default: one per core. */
  threads?: number;
  /** ONNX Runtime: most images per session run. Default: the engine's. */
  runBatch?: number;
  layers: string[];
  batchSize: number;
  imageSize: number;
  /** JPEGs to generate and run end to end. */
  images: number;
  preprocess: Preprocess;
  layout: Layout;
  /** Images fetched and decoded at once (the worker's LAYERTAP_DECODE_CONCURRENCY default). */
  decodeConcurrency: number;
  /** Files written at once (the worker's LAYERTAP_UPLOAD_CONCURRENCY default). */
  writeConcurrency: number;
  comparePytorch: boolean;
  python: string;
  /** Working directory for images and outputs. Default: a new temporary directory, removed afterwards. */
  dir?: string;
  keep: boolean;
  seed: number;
}

export const DEFAULT_BENCH_OPTIONS: BenchOptions = {
  engine: 'auto',
  layers: ['features.9'],
  batchSize: 16,
  imageSize: 224,
  images: 64,
  preprocess: 'torchvision',
  layout: 'chw',
  decodeConcurrency: 4,
  writeConcurrency: 8,
  comparePytorch: false,
  python: DEFAULT_PYTHON,
  keep: false,
  seed: 0,
};

/** Milliseconds per image spent in each stage, summed over images (stages overlap: the sum exceeds the wall time). */
export interface StageTimes {
  fetch: number;
  decode: number;
  inference: number;
  readback: number;
  encode: number;
  write: number;
}

export interface PytorchResult {
  mode: 'seed' | 'truncated';
  index: number;
  images: number;
  seconds: number;
  imagesPerSecond: number;
  /** CPU seconds of the Python process per wall second of the timed part: how many cores it got. */
  cpuPerSecond: number;
  buildSeconds: number;
  threads: number;
  msPerImage: { load: number; inference: number; save: number };
  shape: number[];
  peakRssMb: number;
}

export interface BenchReport {
  /** `loadAverage`: the 1-minute load when the bench started; above the CPU count, other work shared the cores. */
  machine: { cpus: number; cpuModel: string; node: string; loadAverage: number };
  engine: { label: string; engine: string; backend: string; reason: string; threads?: number; device: string; warnings: string[] };
  settings: Omit<BenchOptions, 'dir' | 'keep' | 'python' | 'comparePytorch'> & { dir: string };
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
  stagesAlone: { images: number; msPerImage: Omit<StageTimes, 'inference' | 'readback'> };
  endToEnd: {
    images: number;
    files: number;
    bytes: number;
    seconds: number;
    imagesPerSecond: number;
    /** Wall time inside each stage per image, waits for the event loop included (inference blocks it on ONNX Runtime). */
    msPerImage: StageTimes;
    /** Where the batch loop spent the wall time: waiting for decoded images, running the model, waiting for writes. */
    loopSeconds: { waitImages: number; model: number; waitWrites: number };
    /** This process's CPU seconds per wall second (sharp's decoding threads included). */
    cpuPerSecond: number;
  };
  /** Peak resident memory of this process so far (the bench runs in one process, like a worker's inference). */
  peakRssMb: number;
  /** Live tensors after the end-to-end run (ONNX Runtime: OrtValues held; its numBytes include the weights). */
  tensorsAfterRun: { numTensors: number; numBytes: number };
  pytorch?:
    | { available: false; reason: string }
    | {
        available: true;
        python: string;
        versions: Record<string, string>;
        layer: string;
        seed: PytorchResult;
        truncated: PytorchResult;
        /** layertap end-to-end images/s divided by PyTorch's. */
        ratios: { seed: number; truncated: number };
        /**
         * The same per CPU second (images/s divided by the cores each process got): the fairer comparison when
         * other work shares the machine and the runs, one after the other, got different shares.
         */
        ratiosPerCpu: { seed: number; truncated: number };
      };
}

// Loaded on use: `@layertap/model`'s index loads TensorFlow.js, which the other commands never need.
function model(): Promise<typeof Model> {
  return import('@layertap/model');
}

/** Runs the benchmark and returns its figures. Progress lines go to `progress`. */
export async function runBench(options: BenchOptions, progress: (line: string) => void = () => undefined): Promise<BenchReport> {
  const m = await model();
  const loadAverage = loadavg()[0] ?? 0;
  const layers = m.resolveLayerSpecs(options.layers);
  m.checkImageSize(options.imageSize);
  const dir = options.dir ? path.resolve(options.dir) : await mkdtemp(path.join(tmpdir(), 'layertap-bench-'));
  const imagesDir = path.join(dir, 'images');
  try {
    let started = performance.now();
    progress(`generating ${options.images} JPEGs (500x375) in ${imagesDir}`);
    const files = await generateImages(imagesDir, options.images);
    const generateSeconds = (performance.now() - started) / 1000;

    started = performance.now();
    const extractor = await m.Extractor.create({
      ...engineOptions(options),
      imageSize: options.imageSize,
      seed: options.seed,
      log: (msg, fields) => progress(`${msg}${fields ? ` ${JSON.stringify(fields)}` : ''}`),
    });
    try {
      const perSample = new Map<string, Model.LayerOutput>();
      for (const layer of layers) extractor.registerForwardHook(layer.spec, (output) => void perSample.set(output.spec, output));
      // ONNX Runtime on the CPU runs batches in slices: one slice warms it up; GPU backends compile per shape.
      const cpuSlices = extractor.engine === 'onnx' && extractor.backend === 'cpu';
      await extractor.warmup(cpuSlices ? Math.min(options.batchSize, options.runBatch ?? m.DEFAULT_CPU_RUN_BATCH) : options.batchSize);
      const loadSeconds = (performance.now() - started) / 1000;
      const engine = {
        label: extractor.label,
        engine: extractor.engine,
        backend: extractor.backend,
        reason: extractor.backendReason,
        device: extractor.info.device.description,
        warnings: extractor.info.warnings,
        ...(extractor.threads ? { threads: extractor.threads } : {}),
      };

      progress('model only...');
      const modelOnly = await modelOnlyRun(extractor, files, options);
      progress(`model only: ${modelOnly.imagesPerSecond.toFixed(2)} images/s`);
      const stagesAlone = await stagesAloneRun(files.slice(0, options.batchSize), path.join(dir, 'stages-out'), options);
      progress('end to end...');
      const outDir = path.join(dir, 'layertap-out');
      await rm(outDir, { recursive: true, force: true });
      const endToEnd = await endToEndRun(extractor, perSample, files, outDir, options);
      progress(`end to end: ${endToEnd.imagesPerSecond.toFixed(2)} images/s`);
      const tensorsAfterRun = extractor.memory();
      const peakRssMb = process.resourceUsage().maxRSS / 1024;
      extractor.dispose();

      const report: BenchReport = {
        machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? 'unknown', node: process.version, loadAverage },
        engine,
        settings: { ...pickSettings(options), dir },
        setup: { generateSeconds, loadSeconds },
        modelOnly,
        stagesAlone,
        endToEnd,
        peakRssMb,
        tensorsAfterRun,
      };
      if (options.comparePytorch) report.pytorch = await comparePytorch(m, options, layers, imagesDir, dir, endToEnd, progress);
      return report;
    } finally {
      extractor.dispose();
    }
  } finally {
    if (!options.keep && !options.dir) await rm(dir, { recursive: true, force: true });
  }
}

function pickSettings(options: BenchOptions): Omit<BenchOptions, 'dir' | 'keep' | 'python' | 'comparePytorch'> {
  const { dir: _dir, keep: _keep, python: _python, comparePytorch: _compare, ...settings } = options;
  return settings;
}

/** The worker's engine options: the same vocabulary, checked the same way. */
function engineOptions(options: BenchOptions): Partial<Model.ExtractorOptions> {
  const backend = options.backend ?? 'auto';
  engineTargets(options.engine, backend);
  return {
    engine: options.engine,
    backend,
    ...(options.threads ? { threads: options.threads } : {}),
    ...(options.runBatch ? { runBatch: options.runBatch } : {}),
    ...(options.im2col ? { im2col: true } : {}),
  };
}

/** The same batch, preprocessed from the first images, run back to back: the engine alone. */
async function modelOnlyRun(extractor: Model.Extractor, files: string[], options: BenchOptions): Promise<BenchReport['modelOnly']> {
  const sample = options.imageSize * options.imageSize * 3;
  const input = new Float32Array(options.batchSize * sample);
  for (let k = 0; k < options.batchSize; k++) {
    const file = files[k % files.length] as string;
    const image = await preprocessImage(await readFile(file), { mode: options.preprocess, imageSize: options.imageSize });
    input.set(image.data, k * sample);
  }
  const batches = Math.max(1, Math.ceil(options.images / options.batchSize));
  let inference = 0;
  let readback = 0;
  const cpu = process.cpuUsage();
  const started = performance.now();
  for (let b = 0; b < batches; b++) {
    const result = await extractor.run({ data: input, batchSize: options.batchSize });
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

/** Fetch, decode, encode and write measured one at a time, so each figure is that stage's own cost. */
async function stagesAloneRun(files: string[], outDir: string, options: BenchOptions): Promise<BenchReport['stagesAlone']> {
  const writer = new FileOutputWriter({ dir: outDir });
  const m = await model();
  const shape = m.layerOutputShape(m.resolveLayerSpec(options.layers[0] ?? 'features.9').canonical, options.imageSize);
  const values = shape.reduce((a, b) => a * b, 1);
  // One sample of the first layer, as the engine would hand it over (NCHW as ONNX Runtime, one sample).
  const output = new Float32Array(values).map((_, i) => (i % 97) / 97);
  const times = { fetch: 0, decode: 0, encode: 0, write: 0 };
  for (const [i, file] of files.entries()) {
    const t0 = performance.now();
    const bytes = await readFile(file);
    const t1 = performance.now();
    await preprocessImage(bytes, { mode: options.preprocess, imageSize: options.imageSize });
    const t2 = performance.now();
    const sample = sampleArray(output, [1, ...shape], 0, options.layout, 'nchw');
    const body = encodeNpy(sample.data, sample.shape, 'float32');
    const t3 = performance.now();
    await writer.put(`alone/${i}.npy`, body);
    const t4 = performance.now();
    times.fetch += t1 - t0;
    times.decode += t2 - t1;
    times.encode += t3 - t2;
    times.write += t4 - t3;
  }
  await rm(outDir, { recursive: true, force: true });
  const n = Math.max(1, files.length);
  return {
    images: files.length,
    msPerImage: { fetch: times.fetch / n, decode: times.decode / n, encode: times.encode / n, write: times.write / n },
  };
}

interface Ready {
  id: string;
  pixels: Float32Array;
}

/**
 * JPEG files to `.npy` files with the worker's overlap: images are read and decoded ahead of inference (at
 * most `decodeConcurrency` at once, two batches ahead), each batch's files are written while the next batch
 * infers (at most `writeConcurrency` writes at once, two batches of writes in flight).
 */
async function endToEndRun(
  extractor: Model.Extractor,
  hooked: Map<string, Model.LayerOutput>,
  files: string[],
  outDir: string,
  options: BenchOptions,
): Promise<BenchReport['endToEnd']> {
  const writer = new FileOutputWriter({ dir: outDir });
  const stages: StageTimes = { fetch: 0, decode: 0, inference: 0, readback: 0, encode: 0, write: 0 };
  const decode = createLimiter(options.decodeConcurrency);
  const write = createLimiter(options.writeConcurrency);
  const sample = options.imageSize * options.imageSize * 3;
  const lookahead = Math.max(options.batchSize * 2, options.decodeConcurrency);
  const prepared: Array<Promise<Ready> | undefined> = new Array(files.length);
  let nextToStart = 0;
  const startUpTo = (end: number) => {
    for (; nextToStart < Math.min(end, files.length); nextToStart++) {
      const file = files[nextToStart] as string;
      prepared[nextToStart] = decode(async () => {
        const t0 = performance.now();
        const bytes = await readFile(file);
        const t1 = performance.now();
        const image = await preprocessImage(bytes, { mode: options.preprocess, imageSize: options.imageSize });
        stages.fetch += t1 - t0;
        stages.decode += performance.now() - t1;
        return { id: path.basename(file, '.jpg'), pixels: image.data };
      });
    }
  };
  let bytes = 0;
  let written = 0;
  const store = (batch: Ready[], outputs: Model.LayerOutput[]): Promise<void> =>
    Promise.all(
      batch.flatMap((item, k) =>
        outputs.map((output) =>
          write(async () => {
            const t0 = performance.now();
            const { data, shape } = sampleArray(output.data, output.shape, k, options.layout, output.layout);
            const body = encodeNpy(data, shape, 'float32');
            const t1 = performance.now();
            await writer.put(sampleKey('bench', output.spec, item.id), body);
            stages.encode += t1 - t0;
            stages.write += performance.now() - t1;
            bytes += body.length;
            written++;
          }),
        ),
      ),
    ).then(() => undefined);

  const writes: Promise<void>[] = [];
  const loop = { waitImages: 0, model: 0, waitWrites: 0 };
  const cpu = process.cpuUsage();
  const started = performance.now();
  startUpTo(lookahead);
  let batch: Ready[] = [];
  for (let i = 0; i < files.length; i++) {
    const waitFrom = performance.now();
    batch.push(await (prepared[i] as Promise<Ready>));
    loop.waitImages += performance.now() - waitFrom;
    prepared[i] = undefined;
    startUpTo(i + 1 + lookahead);
    if (batch.length < options.batchSize && i < files.length - 1) continue;
    const input = new Float32Array(batch.length * sample);
    batch.forEach((item, k) => input.set(item.pixels, k * sample));
    hooked.clear();
    const modelFrom = performance.now();
    const result = await extractor.run({ data: input, batchSize: batch.length });
    loop.model += performance.now() - modelFrom;
    stages.inference += result.inferenceMs;
    stages.readback += result.readbackMs;
    writes.push(store(batch, [...hooked.values()]));
    batch = [];
    const writesFrom = performance.now();
    while (writes.length > 1) await writes.shift();
    loop.waitWrites += performance.now() - writesFrom;
  }
  const writesFrom = performance.now();
  await Promise.all(writes);
  loop.waitWrites += performance.now() - writesFrom;
  const seconds = (performance.now() - started) / 1000;
  const n = files.length;
  const perImage = Object.fromEntries(Object.entries(stages).map(([k, v]) => [k, v / n])) as unknown as StageTimes;
  const loopSeconds = { waitImages: loop.waitImages / 1000, model: loop.model / 1000, waitWrites: loop.waitWrites / 1000 };
  const cpuPerSecond = cpuSeconds(process.cpuUsage(cpu)) / seconds;
  return { images: n, files: written, bytes, seconds, imagesPerSecond: n / seconds, msPerImage: perImage, loopSeconds, cpuPerSecond };
}

function cpuSeconds(usage: NodeJS.CpuUsage): number {
  return (usage.user + usage.system) / 1e6;
}

/** At most `limit` calls of the returned function run at once; the others wait in order. */
function createLimiter(limit: number): <T>(fn: () => Promise<T>) => Promise<T> {
  let active = 0;
  const waiting: (() => void)[] = [];
  return async (fn) => {
    if (active >= limit) await new Promise<void>((resolve) => waiting.push(resolve));
    active++;
    try {
      return await fn();
    } finally {
      active--;
      waiting.shift()?.();
    }
  };
}

const CROPS = ['centre', 'north', 'south', 'east', 'west', 'northeast', 'southwest'];

/**
 * Writes `count` 500x375 JPEGs made from the sample photos: each photo scaled to cover 500x375 and cropped at
 * one of seven positions, mirrored on alternate rounds, at JPEG quality 85-95, so that the files differ.
 */
export async function generateImages(dir: string, count: number): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const photos = (await readdir(SAMPLES_DIR)).filter((f) => f.endsWith('.jpg')).sort();
  const sources = await Promise.all(photos.map((f) => readFile(path.join(SAMPLES_DIR, f))));
  const files: string[] = [];
  for (let i = 0; i < count; i++) {
    const round = Math.floor(i / sources.length);
    let image = sharp(sources[i % sources.length] as Buffer).resize(500, 375, { fit: 'cover', position: CROPS[round % CROPS.length] as string });
    if (round % 2 === 1) image = image.flop();
    const file = path.join(dir, `img-${String(i).padStart(5, '0')}.jpg`);
    await writeFile(file, await image.jpeg({ quality: 85 + (i % 11) }).toBuffer());
    files.push(file);
  }
  return files;
}

/** Runs both PyTorch patterns on the same images, one after the other, and compares. */
async function comparePytorch(
  m: typeof Model,
  options: BenchOptions,
  layers: Model.ResolvedLayer[],
  imagesDir: string,
  dir: string,
  layertap: BenchReport['endToEnd'],
  progress: (line: string) => void,
): Promise<NonNullable<BenchReport['pytorch']>> {
  const features = layers.length === 1 ? m.layerInfo(layers[0]?.canonical ?? '').torchvision.find((s) => s.startsWith('features.')) : undefined;
  if (!features) return { available: false, reason: 'the PyTorch comparison takes one layer of torchvision features (features.N)' };
  if (options.preprocess !== 'torchvision') return { available: false, reason: 'the PyTorch comparison needs --preprocess torchvision' };
  const index = Number(features.split('.')[1]);
  let versions: Record<string, string>;
  try {
    versions = JSON.parse(await execText(options.python, [PYTORCH_SCRIPT, '--check'])) as Record<string, string>;
  } catch (err) {
    return { available: false, reason: `${options.python} cannot run torch and torchvision: ${firstLine(String(err))}` };
  }
  const run = async (mode: 'seed' | 'truncated'): Promise<PytorchResult> => {
    progress(`PyTorch ${mode} pattern (${mode === 'seed' ? `vgg16() + hook on features[${index}]` : `features[:${index + 1}]`})...`);
    const out = path.join(dir, `pytorch-${mode}`);
    await rm(out, { recursive: true, force: true });
    // The same number of threads as layertap's CPU engine (PyTorch's own default here can be 1).
    const threads = options.threads ?? cpus().length;
    const args = [
      PYTORCH_SCRIPT, '--images', imagesDir, '--out', out, '--mode', mode, '--index', String(index),
      '--batch-size', String(options.batchSize), '--image-size', String(options.imageSize), '--threads', String(threads),
    ];
    const result = JSON.parse(await execText(options.python, args)) as PytorchResult;
    progress(`PyTorch ${mode}: ${result.imagesPerSecond.toFixed(2)} images/s`);
    return result;
  };
  const seed = await run('seed');
  const truncated = await run('truncated');
  return {
    available: true,
    python: options.python,
    versions,
    layer: features,
    seed,
    truncated,
    ratios: { seed: layertap.imagesPerSecond / seed.imagesPerSecond, truncated: layertap.imagesPerSecond / truncated.imagesPerSecond },
    ratiosPerCpu: { seed: perCpu(layertap) / perCpu(seed), truncated: perCpu(layertap) / perCpu(truncated) },
  };
}

function perCpu(run: { imagesPerSecond: number; cpuPerSecond: number }): number {
  return run.imagesPerSecond / Math.max(run.cpuPerSecond, 1e-9);
}

/** stdout of a command (its last line), or a rejection with its stderr. */
function execText(command: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${err.message}${stderr ? `\n${stderr}` : ''}`));
      else resolve(stdout.trim().split('\n').at(-1) ?? '');
    });
  });
}

function firstLine(text: string): string {
  return text.split('\n')[0] ?? text;
}

/** The report as the table `layertap bench` prints. */
export function formatBenchReport(r: BenchReport): string {
  const f = (n: number, digits = 1) => n.toFixed(digits);
  const s = r.settings;
  const lines = [
    `layertap bench: ${r.engine.label}${r.engine.threads ? ` (${r.engine.threads} threads)` : ''}, layer ${s.layers.join(', ')}, ${s.imageSize}x${s.imageSize}, batch ${s.batchSize}, ${s.images} images`,
    `machine: ${r.machine.cpus} x ${r.machine.cpuModel}, Node ${r.machine.node}, load average ${f(r.machine.loadAverage)} at the start`,
    `engine choice: ${r.engine.reason}`,
    `device: ${r.engine.device}`,
    ...r.engine.warnings.map((w) => `warning: ${w}`),
    `setup: ${f(r.setup.generateSeconds)} s to write the JPEGs, ${f(r.setup.loadSeconds)} s to build the model and warm up`,
    '',
    'model only (one preprocessed batch in memory, run back to back)',
    `  images/s             ${f(r.modelOnly.imagesPerSecond, 2)}   (${r.modelOnly.images} images in ${f(r.modelOnly.seconds, 2)} s, ${f(r.modelOnly.cpuPerSecond, 2)} CPUs busy)`,
    `  ms per batch         inference ${f(r.modelOnly.inferenceMsPerBatch)}, readback ${f(r.modelOnly.readbackMsPerBatch)}`,
    '',
    'end to end (JPEG files on disk -> .npy files on disk, in one process: the pipeline stages, not Redis or S3)',
    `  images/s             ${f(r.endToEnd.imagesPerSecond, 2)}   (${r.endToEnd.images} images in ${f(r.endToEnd.seconds, 2)} s, ${f(r.endToEnd.cpuPerSecond, 2)} CPUs busy; ${r.endToEnd.files} files, ${f(r.endToEnd.bytes / 1e6)} MB)`,
    `  ms per image alone   ${Object.entries(r.stagesAlone.msPerImage).map(([k, v]) => `${k} ${f(v, 2)}`).join(', ')}   (one at a time, ${r.stagesAlone.images} images)`,
    `  ms per image in run  ${Object.entries(r.endToEnd.msPerImage).map(([k, v]) => `${k} ${f(v, 2)}`).join(', ')}`,
    '                       (wall time inside each stage per image: stages overlap and wait for each other and the event loop)',
    `  batch loop           waiting for images ${f(r.endToEnd.loopSeconds.waitImages, 2)} s, model ${f(r.endToEnd.loopSeconds.model, 2)} s, waiting for writes ${f(r.endToEnd.loopSeconds.waitWrites, 2)} s`,
    `  peak RSS             ${f(r.peakRssMb, 0)} MB`,
    `  tensors after run    ${r.tensorsAfterRun.numTensors} (${f(r.tensorsAfterRun.numBytes / 1e6)} MB held, weights included)`,
  ];
  const p = r.pytorch;
  if (p && !p.available) lines.push('', `PyTorch comparison skipped: ${p.reason}`);
  if (p?.available) {
    lines.push(
      '',
      `PyTorch ${p.versions.torch} (torchvision ${p.versions.torchvision}, ${p.python}), same images, batch ${s.batchSize}, ${p.seed.threads} threads`,
      '                                         images/s   CPUs busy   load/infer/save ms per image   peak RSS   layertap / PyTorch (per CPU second)',
      pyLine(`seed: vgg16() + hook on ${p.layer}`, p.seed, p.ratios.seed, p.ratiosPerCpu.seed),
      pyLine(`truncated: features[:${p.seed.index + 1}]`, p.truncated, p.ratios.truncated, p.ratiosPerCpu.truncated),
    );
  }
  return lines.join('\n');
}

function pyLine(label: string, r: PytorchResult, ratio: number, perCpuRatio: number): string {
  const ms = `${r.msPerImage.load.toFixed(1)}/${r.msPerImage.inference.toFixed(1)}/${r.msPerImage.save.toFixed(1)}`;
  return (
    `  ${label.padEnd(38)} ${r.imagesPerSecond.toFixed(2).padStart(8)}   ${r.cpuPerSecond.toFixed(2).padStart(9)}   ` +
    `${ms.padStart(28)}   ${`${r.peakRssMb.toFixed(0)} MB`.padStart(8)}   ${ratio.toFixed(1).padStart(8)}x (${perCpuRatio.toFixed(1)}x)`
  );
}

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('expected a positive integer');
  return n;
}

function layerList(value: string, previous: string[] = []): string[] {
  return [...previous, ...value.split(',').map((s) => s.trim()).filter(Boolean)];
}

/** Adds `layertap bench` to `program`. */
export function registerBenchCommand(program: Command, options: BenchCommandOptions = {}): Command {
  const run = options.run ?? (async (action: Action) => void (process.exitCode = await action()));
  const out = options.stdout ?? process.stdout;
  const err = options.stderr ?? process.stderr;
  const d = DEFAULT_BENCH_OPTIONS;
  return program
    .command('bench')
    .description(
      'measure model-only and end-to-end throughput on this machine: JPEG files -> decode -> VGG16 -> .npy files, ' +
        "in one process with a worker's overlap (decode ahead, writes behind). It measures the pipeline stages, not Redis or S3",
    )
    .addOption(new Option('--engine <engine>', 'what runs the model: auto picks the fastest that works here; null computes nothing (the pipeline alone)').choices(EngineName.options).default(d.engine))
    .addOption(new Option('--backend <name>', "the engine's backend: an ONNX Runtime provider or a TF.js backend").choices(BackendName.options))
    .option('--webgpu-im2col', "TF.js WebGPU: convolutions through TF.js' separate im2col shader (batches sliced to the adapter's binding limit)", false)
    .option('--threads <n>', 'ONNX Runtime compute threads (default: one per core)', positiveInt)
    .option('--run-batch <n>', 'ONNX Runtime: most images per session run (default 4 on CPU)', positiveInt)
    .option('--layer <spec...>', 'layer(s) to extract (default features.9)', layerList)
    .option('--batch-size <n>', 'images per batch', positiveInt, d.batchSize)
    .option('--image-size <n>', 'network input size', positiveInt, d.imageSize)
    .option('--images <n>', 'JPEGs to generate (500x375, from the sample photos) and run', positiveInt, d.images)
    .addOption(new Option('--preprocess <mode>', 'preprocessing').choices(Preprocess.options).default(d.preprocess))
    .addOption(new Option('--layout <layout>', 'stored layout').choices(Layout.options).default(d.layout))
    .option('--decode-concurrency <n>', 'images decoded at once', positiveInt, d.decodeConcurrency)
    .option('--write-concurrency <n>', 'files written at once', positiveInt, d.writeConcurrency)
    .option('--compare-pytorch', 'also run two PyTorch references on the same images (needs torch and torchvision for --python)', false)
    .option('--python <path>', 'Python interpreter for --compare-pytorch', d.python)
    .option('--dir <dir>', 'working directory for the images and outputs (default: a temporary directory, removed afterwards)')
    .option('--keep', 'keep the temporary directory', false)
    .option('--json', 'print JSON', false)
    .action((opts) =>
      run(async () => {
        const benchOptions: BenchOptions = {
          ...d,
          engine: opts.engine,
          ...(opts.backend ? { backend: opts.backend } : {}),
          ...(opts.webgpuIm2col ? { im2col: true } : {}),
          ...(opts.threads ? { threads: opts.threads } : {}),
          ...(opts.runBatch ? { runBatch: opts.runBatch } : {}),
          layers: opts.layer ?? d.layers,
          batchSize: opts.batchSize,
          imageSize: opts.imageSize,
          images: opts.images,
          preprocess: opts.preprocess,
          layout: opts.layout,
          decodeConcurrency: opts.decodeConcurrency,
          writeConcurrency: opts.writeConcurrency,
          comparePytorch: opts.comparePytorch,
          python: opts.python,
          ...(opts.dir ? { dir: opts.dir } : {}),
          keep: opts.keep,
        };
        const report = await runBench(benchOptions, (line) => void err.write(`${line}\n`));
        out.write(`${opts.json ? JSON.stringify(report) : formatBenchReport(report)}\n`);
        return 0;
      }),
    );
}
