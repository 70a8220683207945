// `layertap bench`: parses the flags, runs the pipeline package's benchmarks (in one process, or `--worker`
// through Redis and a real worker process), prints the figures.
import { randomBytes } from 'node:crypto';
import { Command, InvalidArgumentError, Option } from 'commander';
import { BATCH_SIZE, BackendName, Dtype, EngineName, ErrorCode, LayertapError, Layout, Preprocess, ValidationError, engineTargets } from '@layertap/contracts';
import { DevServices } from '@layertap/devservices';
import type * as Bench from '@layertap/pipeline/bench';
import { childEnv } from '../config';
import { SAMPLES_DIR, findBin } from './demo';
import { chunkSize, imageSize, intIn, modelOption, positiveInt, type ModelChoice } from '../options';

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

/** Where the CLI was installed without the worker, `layertap bench` says so in one line. */
export const NO_WORKER_MESSAGE =
  'layertap bench needs the worker installed: @layertap/pipeline, which brings the engines, is not installed beside the CLI (add it, or run from a clone: bash infra/bootstrap.sh)';

/**
 * The bench runs the worker's engines (TensorFlow.js, ONNX Runtime, Dawn), which the CLI does not install:
 * @layertap/pipeline is an optional peer dependency, loaded on use only.
 */
export async function loadBench(load: () => Promise<typeof Bench> = () => import('@layertap/pipeline/bench')): Promise<typeof Bench> {
  try {
    return await load();
  } catch (err) {
    const code = (err as { code?: string }).code;
    // Only the package itself: a module missing inside an installed pipeline is a different fault.
    const missing = (code === 'MODULE_NOT_FOUND' || code === 'ERR_MODULE_NOT_FOUND') && /Cannot find (module|package) '@layertap\/pipeline[/']/.test(String((err as Error).message));
    if (missing) throw new LayertapError(ErrorCode.BackendUnavailable, NO_WORKER_MESSAGE, { cause: err });
    throw err;
  }
}

/** The report as the table `layertap bench` prints. */
export function formatBenchReport(r: Bench.BenchReport): string {
  const f = (n: number, digits = 1) => n.toFixed(digits);
  const s = r.settings;
  const lines = [
    ...header(r.engine, s, r.machine),
    `setup: ${f(r.setup.generateSeconds)} s to write the photos, ${f(r.setup.loadSeconds)} s to load the model (proof run and warm-up included)`,
    '',
    ...modelOnlyLines(r.modelOnly),
    '',
    `end to end (${s.photo.format.toUpperCase()} files on disk -> .npy files on disk, in one process through the worker's BatchRunner: the pipeline stages, not Redis, IPC or S3)`,
    `  images/s             ${f(r.endToEnd.imagesPerSecond, 2)}   (${r.endToEnd.images} images in ${f(r.endToEnd.seconds, 2)} s, ${f(r.endToEnd.cpuPerSecond, 2)} CPUs busy; ${r.endToEnd.files} files, ${f(r.endToEnd.bytes / 1e6)} MB)`,
    `  ms per image alone   ${Object.entries(r.stagesAlone.msPerImage).map(([k, v]) => `${k} ${f(v, 2)}`).join(', ')}   (one at a time, ${r.stagesAlone.images} images)`,
    `  CPU-ms per image     ${aloneCpu(r.stagesAlone.cpuMsPerImage)}   (one at a time, kernel's share in brackets)`,
    `  CPU-ms in run        ${f(cpuTotal(r.endToEnd.cpuMsPerImage), 2)} per image (user ${f(r.endToEnd.cpuMsPerImage.user, 2)}, kernel ${f(r.endToEnd.cpuMsPerImage.system, 2)}: ${percent(kernelOf(r.endToEnd.cpuMsPerImage))}), engine thread included`,
    `  ms per image in run  ${Object.entries(r.endToEnd.msPerImage).map(([k, v]) => `${k} ${f(v, 2)}`).join(', ')}`,
    '                       (wall time inside each stage per image: stages overlap and wait for each other and the event loop)',
    `  batch loop           waiting for images ${f(r.endToEnd.loopSeconds.waitImages, 2)} s, for the engine ${f(r.endToEnd.loopSeconds.model, 2)} s, for writes ${f(r.endToEnd.loopSeconds.waitWrites, 2)} s`,
    `  peak RSS             ${f(r.peakRssMb, 0)} MB`,
    `  tensors after run    ${r.tensorsAfterRun.numTensors} (${f(r.tensorsAfterRun.numBytes / 1e6)} MB held, weights included)`,
  ];
  const p = r.pytorch;
  if (p && !p.available) lines.push('', `PyTorch comparison skipped: ${p.reason}`);
  if (p?.available) {
    lines.push(
      '',
      `PyTorch ${p.versions.torch} (torchvision ${p.versions.torchvision}, ${p.python}), same images, batch ${s.batchSize}, ${p.seed.threads} threads, on ${p.seed.device}`,
      '                                         images/s   CPUs busy   load/infer/save ms per image   peak RSS   layertap / PyTorch (per CPU second)',
      pyLine(`seed: vgg16() + hook on ${p.layer}`, p.seed, p.ratios.seed, p.ratiosPerCpu.seed),
      pyLine(`truncated: features[:${p.seed.index + 1}]`, p.truncated, p.ratios.truncated, p.ratiosPerCpu.truncated),
    );
  }
  return lines.join('\n');
}

/** The `--worker` report as the table `layertap bench --worker` prints. */
export function formatWorkerBenchReport(r: Bench.WorkerBenchReport): string {
  const f = (n: number, digits = 1) => n.toFixed(digits);
  const w = r.worker;
  const stages = w.msPerImage ? Object.entries(w.msPerImage).map(([k, v]) => `${k} ${f(v ?? 0, 2)}`).join(', ') : 'not reported by this worker';
  return [
    ...header(r.engine, r.settings, r.machine),
    `worker: ${r.settings.workerBin} (concurrency 1, chunks of ${r.settings.chunkSize}), reported ${w.engine}`,
    '',
    ...modelOnlyLines(r.modelOnly),
    '',
    `worker end to end (${r.settings.photo.format.toUpperCase()} files -> Redis -> layertap-worker and its inference process -> .npy files, after a warm-up dataset)`,
    `  images/s             ${f(w.imagesPerSecond, 2)}   (${w.images} images in ${f(w.seconds, 2)} s: ${w.ok} ok, ${w.failed} failed, ${w.chunks} chunks)`,
    `  worker / model only  ${f(r.ratio, 2)}`,
    w.cpuMsPerImage !== undefined
      ? `  CPU                  ${f(w.cpuMsPerImage, 2)} CPU-ms per image over the worker's processes (kernel ${percent(w.kernelShare ?? 0)}), ${f(w.imagesPerCpuSecond ?? 0, 1)} images/s per core`
      : '  CPU                  not measured (no /proc here)',
    `  ms per image         ${stages}`,
    '                       (summed over the chunks: transfer is the batches to the inference process and back)',
    ...pipelineLines(r),
  ].join('\n');
}

/** `--worker --engine null --compare-pytorch`: the worker's CPU per image beside the PyTorch pipeline's. */
function pipelineLines(r: Bench.WorkerBenchReport): string[] {
  const p = r.pytorch;
  if (!p) return [];
  if (!p.available) return ['', `PyTorch comparison skipped: ${p.reason}`];
  const first = p.runs[0];
  const runs = p.runs.map((run) => run.cpuMsPerImage.toFixed(2)).join(', ');
  return [
    '',
    `PyTorch ${first?.versions.torch ?? '?'} pipeline, model replaced by zeros (DataLoader with ${first?.workers ?? 2} workers, batch ${r.settings.batchSize}, torchvision transforms, np.save per sample), same photos`,
    `  CPU                  ${p.cpuMsPerImage.toFixed(2)} CPU-ms per image over its processes (cheapest of runs: ${runs})`,
    `  layertap / PyTorch   ${p.ratio.toFixed(2)}x CPU per image`,
  ];
}

function cpuTotal(cpu: Bench.CpuMs): number {
  return cpu.user + cpu.system;
}

/** The kernel's share of CPU time (here too: the bench module itself is loaded only when the command runs). */
function kernelOf(cpu: Bench.CpuMs): number {
  const total = cpuTotal(cpu);
  return total > 0 ? cpu.system / total : 0;
}

function percent(share: number): string {
  return `${(share * 100).toFixed(0)}%`;
}

/** Each stage's CPU-ms per image with the kernel's share, then the sum. */
export function aloneCpu(cpu: Record<Bench.AloneStage, Bench.CpuMs>): string {
  const stages = Object.entries(cpu) as [Bench.AloneStage, Bench.CpuMs][];
  const total = stages.reduce((t, [, c]) => ({ user: t.user + c.user, system: t.system + c.system }), { user: 0, system: 0 });
  const parts = stages.map(([stage, c]) => `${stage} ${cpuTotal(c).toFixed(2)} (${percent(kernelOf(c))})`);
  return `${parts.join(', ')}; total ${cpuTotal(total).toFixed(2)} (${percent(kernelOf(total))})`;
}

/** `--layer` when not given: features.9 for VGG16, layer3 for ResNet-50; an ONNX file's tensors are the user's to name. */
function defaultBenchLayers(choice: ModelChoice): string[] {
  if (choice.model === 'onnx') throw new ValidationError(ErrorCode.InvalidRequest, `missing --layer: name a tensor of ${choice.file} (\`layertap layers --model ${choice.file}\` lists them)`);
  return choice.model === 'vgg16' ? [...DEFAULTS.layers] : ['layer3'];
}

function header(engine: Bench.BenchEngine, s: Bench.BenchSettings, machine: Bench.BenchReport['machine']): string[] {
  const f = (n: number) => n.toFixed(1);
  return [
    `layertap bench: ${engine.label}${engine.threads ? ` (${engine.threads} threads)` : ''} on ${engine.device}, ${s.onnxModel ? `model ${s.onnxModel}, ` : s.model && s.model !== 'vgg16' ? `model ${s.model}, ` : ''}layer ${s.layers.join(', ')}, ${s.imageSize}x${s.imageSize}, batch ${s.batchSize}, ${s.dtype}, ${s.images} ${s.photo.width}x${s.photo.height} ${s.photo.format.toUpperCase()} photos`,
    `machine: ${machine.cpus} x ${machine.cpuModel}, Node ${machine.node}, load average ${f(machine.loadAverage)} at the start`,
    `engine choice: ${engine.reason}`,
    ...engine.warnings.map((w) => `warning: ${w}`),
  ];
}

function modelOnlyLines(m: Bench.BenchReport['modelOnly']): string[] {
  const f = (n: number, digits = 1) => n.toFixed(digits);
  return [
    'model only (one preprocessed batch in memory, run back to back)',
    `  images/s             ${f(m.imagesPerSecond, 2)}   (${m.images} images in ${f(m.seconds, 2)} s, ${f(m.cpuPerSecond, 2)} CPUs busy)`,
    `  ms per batch         inference ${f(m.inferenceMsPerBatch)}, readback ${f(m.readbackMsPerBatch)}`,
  ];
}

function pyLine(label: string, r: Bench.PytorchResult, ratio: number, perCpuRatio: number): string {
  const ms = `${r.msPerImage.load.toFixed(1)}/${r.msPerImage.inference.toFixed(1)}/${r.msPerImage.save.toFixed(1)}`;
  return (
    `  ${label.padEnd(38)} ${r.imagesPerSecond.toFixed(2).padStart(8)}   ${r.cpuPerSecond.toFixed(2).padStart(9)}   ` +
    `${ms.padStart(28)}   ${`${r.peakRssMb.toFixed(0)} MB`.padStart(8)}   ${ratio.toFixed(1).padStart(8)}x (${perCpuRatio.toFixed(1)}x)`
  );
}

function photoSize(value: string): { width: number; height: number } {
  const m = /^(\d+)x(\d+)$/.exec(value);
  if (!m) throw new InvalidArgumentError('expected WIDTHxHEIGHT, e.g. 500x375');
  return { width: Number(m[1]), height: Number(m[2]) };
}

function layerList(value: string, previous: string[] = []): string[] {
  return [...previous, ...value.split(',').map((s) => s.trim()).filter(Boolean)];
}

/** Default settings of the command (the pipeline's, with this CLI's sample photos). */
const DEFAULTS = {
  engine: 'auto',
  layers: ['features.9'],
  batchSize: 16,
  imageSize: 224,
  images: 64,
  decodeConcurrency: 4,
  writeConcurrency: 8,
  chunkSize: 64,
} as const;

/** Adds `layertap bench` to `program`. */
export function registerBenchCommand(program: Command, options: BenchCommandOptions = {}): Command {
  const run = options.run ?? (async (action: Action) => void (process.exitCode = await action()));
  const out = options.stdout ?? process.stdout;
  const err = options.stderr ?? process.stderr;
  const d = DEFAULTS;
  return program
    .command('bench')
    .description(
      'measure model-only and end-to-end throughput on this machine: photo files -> decode -> model -> .npy files. ' +
        "By default in one process through the worker's BatchRunner; --worker runs a real worker process through Redis",
    )
    .addOption(new Option('--engine <engine>', 'what runs the model: auto picks the fastest that works here; null computes nothing (the pipeline alone)').choices(EngineName.options).default(d.engine))
    .addOption(new Option('--backend <name>', "the engine's backend: an ONNX Runtime provider or a TF.js backend").choices(BackendName.options))
    .option('--threads <n>', 'ONNX Runtime compute threads (default: one per core)', positiveInt)
    .option('--webgpu-im2col', "TF.js WebGPU: convolutions through TF.js' separate im2col shader (slices sized to the adapter's binding limit)", false)
    .option('--model <name|file.onnx>', 'the model: vgg16, resnet50, or an ONNX file (path or URI)', modelOption, { model: 'vgg16' } as ModelChoice)
    .option('--layer <spec...>', 'layer(s) to extract (default features.9 for vgg16, layer3 for resnet50; for an ONNX file, required)', layerList)
    .option('--batch-size <n>', 'images per batch', intIn(BATCH_SIZE), d.batchSize)
    .option('--image-size <n>', 'network input size', imageSize, d.imageSize)
    .option('--images <n>', 'photos to generate (from the sample photos) and run', positiveInt, d.images)
    .option('--photo-size <WxH>', 'size of the generated photos', photoSize, { width: 500, height: 375 })
    .addOption(new Option('--photo-format <format>', 'format of the generated photos').choices(['jpeg', 'png']).default('jpeg'))
    .addOption(new Option('--preprocess <mode>', 'preprocessing').choices(Preprocess.options).default('torchvision'))
    .addOption(new Option('--layout <layout>', 'stored layout').choices(Layout.options).default('chw'))
    .addOption(new Option('--dtype <dtype>', 'stored dtype').choices(Dtype.options).default('float32'))
    .option('--decode-concurrency <n>', 'images decoded at once', positiveInt, d.decodeConcurrency)
    .option('--write-concurrency <n>', 'files written at once', positiveInt, d.writeConcurrency)
    .option('--worker', 'run a real layertap-worker (and its inference process) through Redis from the dev services, beside the model alone', false)
    .option('--worker-bin <path>', 'the worker to run with --worker (default: layertap-worker on PATH)')
    .option('--chunk-size <n>', 'chunk size of the --worker dataset', chunkSize, d.chunkSize)
    .option('--compare-pytorch', 'also run the PyTorch references on the same images (needs torch and torchvision for --python); with --worker --engine null, the PyTorch pipeline with the model replaced by zeros', false)
    .option('--python <path>', 'Python interpreter for --compare-pytorch', '/usr/bin/python3')
    .option('--pytorch-device <device>', 'torch device for --compare-pytorch: cpu, cuda, or auto (cuda when the engine computes on a GPU)', 'auto')
    .option('--dir <dir>', 'working directory for the photos and outputs (default: a temporary directory, removed afterwards)')
    .option('--keep', 'keep the temporary directory', false)
    .option('--json', 'print JSON', false)
    .action((opts) =>
      run(async () => {
        const b = await loadBench();
        engineTargets(opts.engine, opts.backend ?? 'auto');
        const benchOptions: Bench.BenchOptions = {
          ...b.DEFAULT_BENCH_OPTIONS,
          model: (opts.model as ModelChoice).model,
          ...('file' in opts.model ? { onnxModel: (opts.model as { file: string }).file } : {}),
          engine: opts.engine,
          ...(opts.backend ? { backend: opts.backend } : {}),
          ...(opts.webgpuIm2col ? { im2col: true } : {}),
          ...(opts.threads ? { threads: opts.threads } : {}),
          layers: opts.layer ?? defaultBenchLayers(opts.model as ModelChoice),
          batchSize: opts.batchSize,
          imageSize: opts.imageSize,
          images: opts.images,
          photo: { ...opts.photoSize, format: opts.photoFormat },
          preprocess: opts.preprocess,
          layout: opts.layout,
          dtype: opts.dtype,
          decodeConcurrency: opts.decodeConcurrency,
          writeConcurrency: opts.writeConcurrency,
          comparePytorch: opts.comparePytorch,
          python: opts.python,
          pytorchDevice: opts.pytorchDevice,
          ...(opts.dir ? { dir: opts.dir } : {}),
          keep: opts.keep,
          samplesDir: SAMPLES_DIR,
        };
        const progress = (line: string) => void err.write(`${line}\n`);
        if (!opts.worker) {
          const report = await b.runBench(benchOptions, progress);
          out.write(`${opts.json ? JSON.stringify(report) : formatBenchReport(report)}\n`);
          return 0;
        }
        // Redis from the dev services (a fresh server on a free port); the worker writes to a directory.
        const services = new DevServices({ s3: { buckets: ['layertap'] } });
        await services.start();
        try {
          const report = await b.runWorkerBench(
            {
              ...benchOptions,
              redisUrl: services.redisUrl,
              prefix: `bench-${randomBytes(4).toString('hex')}`,
              workerBin: opts.workerBin ?? findBin('layertap-worker'),
              env: childEnv({}),
              chunkSize: opts.chunkSize,
            },
            progress,
          );
          out.write(`${opts.json ? JSON.stringify(report) : formatWorkerBenchReport(report)}\n`);
        } finally {
          await services.close();
        }
        return 0;
      }),
    );
}
