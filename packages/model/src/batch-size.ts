import { getModel, type ModelDescriptor } from './models';

/** Largest batch `autoBatchSize` picks, whatever the budget: beyond it throughput no longer grows. */
export const MAX_AUTO_BATCH = 256;

function elements(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/**
 * Copies of each hooked output alive at once, summed over the two processes of a worker slot: two batches are
 * in flight in each (the inference process computes one while the previous result leaves; the worker stores
 * one while the next arrives), and each is held about twice (the engine's result and its serialised copy;
 * the bytes received and the arrays read from them). Measured: every VGG16 layer at 224 px, batches of 1, 4
 * and 16 on ONNX Runtime CPU, grew the worker's and its inference process's peak RSS together by 0.58 to 0.84
 * GiB per sample, 5.4 to 7.9 times the hooked outputs (README, "Memory").
 */
export const HOOKED_COPIES = 8;

/**
 * Bytes one sample needs while a batch runs, for the hooked `layers` at `imageSize`, over the worker and its
 * inference process: the input, the two largest activations alive at once on the way to the deepest layer
 * (an op's input and output), and each hooked output `HOOKED_COPIES` times. A deliberately generous float32
 * estimate (weights excluded: they are paid once per process): the worker must not run out.
 */
export function sampleMemoryBytes(layers: readonly string[], imageSize: number, model: ModelDescriptor = getModel()): number {
  const path = pathTo(layers, model).map((layer) => elements(model.outputShape(layer.name, imageSize)));
  const [first = 0, second = 0] = [...path].sort((a, b) => b - a);
  const hooked = layers.reduce((sum, spec) => sum + elements(model.outputShape(model.layer(spec).name, imageSize)), 0);
  return 4 * (imageSize * imageSize * 3 + first + second + HOOKED_COPIES * hooked);
}

/**
 * `--batch-size auto`: the largest batch whose activations fit `budgetBytes` (weights excluded: they are
 * paid once per process), between 1 and `MAX_AUTO_BATCH`.
 */
export function autoBatchSize(layers: readonly string[], imageSize: number, budgetBytes: number, model: ModelDescriptor = getModel()): number {
  const fits = Math.floor(budgetBytes / sampleMemoryBytes(layers, imageSize, model));
  return Math.max(1, Math.min(MAX_AUTO_BATCH, fits));
}

/** The batch a worker runs for a dataset, against its memory budget. */
export interface BudgetedBatch {
  /** The batch asked for (`auto`: the largest that fits), made smaller when the budget cannot hold it; at least 1. */
  batchSize: number;
  /** Bytes one sample needs (`sampleMemoryBytes`). */
  sampleBytes: number;
  /** The budget made a number asked for smaller. */
  shrunk: boolean;
  /** Even one sample needs more than the budget: the batch is 1 and may still not fit. */
  overBudget: boolean;
}

/**
 * The budget is a limit, not only what `auto` aims for: a batch size asked for is run as asked when its
 * activations fit `budgetBytes`, else as the largest batch that fits (at least 1).
 */
export function budgetedBatchSize(
  requested: number | 'auto',
  layers: readonly string[],
  imageSize: number,
  budgetBytes: number,
  model: ModelDescriptor = getModel(),
): BudgetedBatch {
  const sampleBytes = sampleMemoryBytes(layers, imageSize, model);
  const overBudget = sampleBytes > budgetBytes;
  if (requested === 'auto') return { batchSize: autoBatchSize(layers, imageSize, budgetBytes, model), sampleBytes, shrunk: false, overBudget };
  const batchSize = Math.max(1, Math.min(requested, Math.floor(budgetBytes / sampleBytes)));
  return { batchSize, sampleBytes, shrunk: batchSize < requested, overBudget };
}

/**
 * Bytes of the largest tensor one sample makes on the way to the deepest of `layers` (the input included):
 * what a WebGPU buffer holding a batch's activations grows by per image, against the adapter's binding limit.
 */
export function largestActivationBytes(layers: readonly string[], imageSize: number, model: ModelDescriptor = getModel()): number {
  const sizes = pathTo(layers, model).map((layer) => elements(model.outputShape(layer.name, imageSize)));
  return 4 * Math.max(imageSize * imageSize * 3, ...sizes);
}

/**
 * Bytes of the largest im2col matrix one sample makes (a 3x3 conv over C channels: H*W rows of 9*C values),
 * for TF.js WebGPU's separate im2col shader; 0 when no conv is on the way.
 */
export function largestIm2colBytes(layers: readonly string[], imageSize: number, model: ModelDescriptor = getModel()): number {
  let channels = 3;
  let largest = 0;
  for (const layer of pathTo(layers, model)) {
    if (layer.kind === 'conv') {
      const [, h = 0, w = 0] = model.outputShape(layer.name, imageSize);
      largest = Math.max(largest, 4 * h * w * 9 * channels);
    }
    if (layer.pools !== undefined) channels = layer.channels;
  }
  return largest;
}

/** Images per run that keep every tensor under `maxBytes` (at least 1; a bigger one then fails loudly). */
export function imagesWithin(maxBytes: number, bytesPerImage: number): number {
  return bytesPerImage > 0 ? Math.max(1, Math.floor(maxBytes / bytesPerImage)) : Number.MAX_SAFE_INTEGER;
}

/** The model's layers from the first to the deepest of `layers`, in forward order. */
function pathTo(layers: readonly string[], model: ModelDescriptor): ModelDescriptor['layers'][number][] {
  const deepest = Math.max(...layers.map((spec) => model.layer(spec).order));
  return model.layers.filter((layer) => layer.order <= deepest);
}
