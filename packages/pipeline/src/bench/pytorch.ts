// The PyTorch side of `layertap bench --compare-pytorch`: the two patterns people use, on the same images.
import { execFile } from 'node:child_process';
import { cpus } from 'node:os';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { layerInfo } from '@layertap/model/layers';

/** The interpreter the comparison runs: Debian's, where python3-torch installs. */
export const DEFAULT_PYTHON = '/usr/bin/python3';
/** The PyTorch reference script, shipped in this package (beside `dist/`). */
export const PYTORCH_SCRIPT = path.join(__dirname, '..', '..', 'bench', 'pytorch_reference.py');

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
  device: string;
  msPerImage: { load: number; inference: number; save: number };
  shape: number[];
  peakRssMb: number;
}

export type PytorchComparison =
  | { available: false; reason: string }
  | {
      available: true;
      python: string;
      versions: Record<string, string>;
      layer: string;
      seed: PytorchResult;
      truncated: PytorchResult;
      /** layertap images/s divided by PyTorch's. */
      ratios: { seed: number; truncated: number };
      /** The same per CPU second: the fairer comparison when other work shares the machine. */
      ratiosPerCpu: { seed: number; truncated: number };
    };

export interface PytorchOptions {
  python: string;
  /** torch device: `cpu`, `cuda`, or `auto`. */
  device: string;
  /** The model; the comparison has VGG16's two patterns only. */
  model?: string;
  layers: readonly string[];
  preprocess: string;
  batchSize: number;
  imageSize: number;
  threads?: number;
  imagesDir: string;
  /** Where the scripts write their .npy files. */
  workDir: string;
}

/** Runs both PyTorch patterns on the same images, one after the other, and compares with `layertap`'s run. */
export async function comparePytorch(
  options: PytorchOptions,
  layertap: { imagesPerSecond: number; cpuPerSecond: number },
  progress: (line: string) => void,
): Promise<PytorchComparison> {
  if ((options.model ?? 'vgg16') !== 'vgg16') return { available: false, reason: `the end-to-end PyTorch comparison runs VGG16; for ${options.model} compare the model alone: node packages/engines/bench/engines.js --model ${options.model} --compare-pytorch` };
  const features = options.layers.length === 1 ? layerInfo(options.layers[0] ?? '').torchvision.find((s) => s.startsWith('features.')) : undefined;
  if (!features) return { available: false, reason: 'the PyTorch comparison takes one layer of torchvision features (features.N)' };
  if (options.preprocess !== 'torchvision') return { available: false, reason: 'the PyTorch comparison needs --preprocess torchvision' };
  const index = Number(features.split('.')[1]);
  let versions: Record<string, string>;
  try {
    versions = JSON.parse(await execText(options.python, [PYTORCH_SCRIPT, '--check'])) as Record<string, string>;
  } catch (err) {
    return { available: false, reason: `${options.python} cannot run torch and torchvision: ${String(err).split('\n')[0]}` };
  }
  const run = async (mode: 'seed' | 'truncated'): Promise<PytorchResult> => {
    progress(`PyTorch ${mode} pattern (${mode === 'seed' ? `vgg16() + hook on features[${index}]` : `features[:${index + 1}]`})...`);
    const out = path.join(options.workDir, `pytorch-${mode}`);
    await rm(out, { recursive: true, force: true });
    // The same number of threads as layertap's CPU engine (PyTorch's own default here can be 1).
    const threads = options.threads ?? cpus().length;
    const args = [
      PYTORCH_SCRIPT, '--images', options.imagesDir, '--out', out, '--mode', mode, '--index', String(index),
      '--batch-size', String(options.batchSize), '--image-size', String(options.imageSize), '--threads', String(threads), '--device', options.device,
    ];
    const result = JSON.parse(await execText(options.python, args)) as PytorchResult;
    progress(`PyTorch ${mode}: ${result.imagesPerSecond.toFixed(2)} images/s on ${result.device}`);
    return result;
  };
  const seed = await run('seed');
  const truncated = await run('truncated');
  const perCpu = (r: { imagesPerSecond: number; cpuPerSecond: number }) => r.imagesPerSecond / Math.max(r.cpuPerSecond, 1e-9);
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

/** stdout of a command (its last line), or a rejection with its stderr. */
function execText(command: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${err.message}${stderr ? `\n${stderr}` : ''}`));
      else resolve(stdout.trim().split('\n').at(-1) ?? '');
    });
  });
}

export interface PytorchPipelineResult {
  images: number;
  seconds: number;
  imagesPerSecond: number;
  /** CPU time of the script and its DataLoader workers, per image. */
  cpuMsPerImage: number;
  saveMsPerImage: number;
  workers: number;
  dtype: string;
  shape: number[];
  versions: Record<string, string>;
}

export type PytorchPipelineComparison =
  | { available: false; reason: string }
  | {
      available: true;
      python: string;
      /** Each run of the script (the figures use the cheapest, as the worker's do not repeat). */
      runs: PytorchPipelineResult[];
      /** The cheapest run's CPU-ms per image. */
      cpuMsPerImage: number;
      /** layertap's CPU-ms per image over PyTorch's: below 1 is cheaper than PyTorch. */
      ratio: number;
    };

export interface PytorchPipelineOptions {
  python: string;
  imagesDir: string;
  workDir: string;
  /** The stored shape of one sample of the (one) layer: the zeros the script saves. */
  shape: readonly number[];
  dtype: string;
  batchSize: number;
  imageSize: number;
  preprocess: string;
  /** Runs of the script (the cheapest counts). Default 2. */
  runs?: number;
}

/**
 * The PyTorch user's pipeline with the model replaced by zeros (a DataLoader with 2 workers, torchvision's
 * transforms, `np.save` per sample), on the same photos: what `layertap bench --worker --engine null` is
 * compared with.
 */
export async function comparePytorchPipeline(
  options: PytorchPipelineOptions,
  layertapCpuMsPerImage: number | undefined,
  progress: (line: string) => void,
): Promise<PytorchPipelineComparison> {
  if (options.preprocess !== 'torchvision') return { available: false, reason: 'the PyTorch comparison needs --preprocess torchvision' };
  if (layertapCpuMsPerImage === undefined) return { available: false, reason: "the worker's CPU time was not measured (no /proc here)" };
  try {
    await execText(options.python, [PYTORCH_SCRIPT, '--check']);
  } catch (err) {
    return { available: false, reason: `${options.python} cannot run torch and torchvision: ${String(err).split('\n')[0]}` };
  }
  const runs: PytorchPipelineResult[] = [];
  const out = path.join(options.workDir, 'pytorch-pipeline');
  for (let i = 0; i < (options.runs ?? 2); i++) {
    progress(`PyTorch pipeline (DataLoader, 2 workers, model replaced by zeros), run ${i + 1}...`);
    await rm(out, { recursive: true, force: true });
    const args = [
      PYTORCH_SCRIPT, '--mode', 'pipeline', '--images', options.imagesDir, '--out', out, '--shape', options.shape.join(','),
      '--dtype', options.dtype, '--batch-size', String(options.batchSize), '--image-size', String(options.imageSize),
    ];
    runs.push(JSON.parse(await execText(options.python, args)) as PytorchPipelineResult);
  }
  await rm(out, { recursive: true, force: true });
  const cpuMsPerImage = Math.min(...runs.map((r) => r.cpuMsPerImage));
  return { available: true, python: options.python, runs, cpuMsPerImage, ratio: layertapCpuMsPerImage / cpuMsPerImage };
}
