// Builds VGG16 as TF.js layers, like keras.applications.VGG16, truncated after the deepest requested layer.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { ErrorCode, LayertapError } from '@layertap/contracts';
import { adaptiveAvgPool2d } from '../../adaptive-avg-pool';
import { AVGPOOL_SIZE, VGG16_LAYERS, checkImageSize, layerInfo, outputLayers, type Vgg16Layer, randomWeight, validateWeights, type WeightsMap, VGG16_WEIGHTS, requiredWeights } from '@layertap/model';

export interface Vgg16Options {
  /** Side of the square input, in pixels (>= 32). */
  imageSize: number;
  /**
   * Layers whose outputs the model returns, in this order (canonical names or any spec; each tensor once).
   * The model is built up to the deepest of them and no further.
   */
  outputs: readonly string[];
  /** Weights in TF layout, validated before anything is built. Default: seeded random weights. */
  weights?: WeightsMap;
  /** Seed of the random weights; ignored when `weights` is given. Default 0. */
  seed?: number;
  /**
   * Keras conv/dense layers (`block1_conv1`, `fc1`) to build as a linear layer plus a separate ReLU even
   * when their `_preact` is not an output, so the graph can serve such an output later. Layers whose
   * `_preact` is an output are always split; the others keep Keras' fused ReLU (faster).
   */
  split?: readonly string[];
  /**
   * Largest weight tensor one layer may hold, in bytes. A dense kernel over it (fc1's is 411 MB) is built as
   * column blocks that each fit, concatenated under the layer's name: WebGPU adapters bind at most
   * `maxStorageBufferBindingSize` bytes per buffer (128 MiB on some), and TF.js binds a kernel whole.
   * Default: no limit.
   */
  maxWeightBytes?: number;
}

/**
 * Builds VGG16 for NHWC float32 input [N, S, S, 3] (already preprocessed) up to the deepest of `outputs`,
 * returning a model whose outputs are those layers, in order. Every built tensor comes from a layer named
 * by its canonical name, so `getLayer(canonical).output` works on the result. The caller owns the model:
 * `model.dispose()` frees its weights.
 */
export function buildVgg16(options: Vgg16Options): tfl.LayersModel {
  checkImageSize(options.imageSize);
  const outputs = outputLayers(options.outputs);
  const deepest = outputs.reduce((a, b) => (b.order > a.order ? b : a));
  if (options.weights) validateWeights(options.weights, requiredWeights([deepest.name]));
  const split = new Set([
    ...(options.split ?? []),
    ...outputs.filter((layer) => layer.name.endsWith('_preact')).flatMap((layer) => layer.weights ?? []),
  ]);
  const initializer = weightInitializers(options.weights, options.seed ?? 0);

  const input = tfl.input({ shape: [options.imageSize, options.imageSize, 3], dtype: 'float32', name: 'input' });
  const tensors = new Map<string, tfl.SymbolicTensor>();
  let x = input;
  for (const row of VGG16_LAYERS.slice(0, deepest.order + 1)) {
    const layer = makeLayer(row, split, initializer, options.maxWeightBytes ?? Infinity);
    if (!layer) continue;
    x = layer.apply(x) as tfl.SymbolicTensor;
    tensors.set(row.name, x);
  }
  return tfl.model({
    inputs: input,
    outputs: outputs.map((layer) => tensors.get(layer.name) ?? missingTensor(layer.name)),
    name: `vgg16_to_${deepest.name}`,
  });
}


function missingTensor(name: string): never {
  // Only reachable if a fused pre-activation were asked for, which `split` rules out.
  throw new LayertapError(ErrorCode.InferenceFailed, `internal: no tensor for ${name}`);
}

type Initializer = ReturnType<typeof tfl.initializers.zeros>;
/** An initializer per weight tensor, and the tensor's values themselves (for layers built in blocks). */
type InitializerFor = ((tensor: string) => Initializer) & { values: (tensor: string) => Float32Array };

/**
 * One tfjs layer for a table row, or undefined for a pre-activation that is fused into the next row's
 * ReLU (Keras' own layout: one Conv2D/Dense with `activation: 'relu'`).
 */
function makeLayer(row: Vgg16Layer, split: ReadonlySet<string>, init: InitializerFor, maxWeightBytes: number): LayerLike | undefined {
  const isSplit = row.weights !== undefined && split.has(row.weights);
  switch (row.kind) {
    case 'conv':
    case 'dense':
      if (row.name.endsWith('_preact') && !isSplit) return undefined;
      return weightedLayer(row, row.kind, 'linear', init, maxWeightBytes);
    case 'relu':
      if (isSplit) return tfl.layers.reLU({ name: row.name });
      return weightedLayer(row, layerInfo(`${row.name}_preact`).kind === 'conv' ? 'conv' : 'dense', 'relu', init, maxWeightBytes);
    case 'pool':
      return tfl.layers.maxPooling2d({ name: row.name, poolSize: 2, strides: 2, padding: 'valid' });
    case 'avgpool':
      return new AdaptiveAvgPool2d({ name: row.name, size: AVGPOOL_SIZE });
    case 'flatten':
      return tfl.layers.flatten({ name: row.name });
  }
}

/** What `buildVgg16` applies in sequence: a tfjs layer, or a dense layer built as column blocks. */
interface LayerLike {
  apply(x: tfl.SymbolicTensor): tfl.SymbolicTensor | tfl.SymbolicTensor[] | tf.Tensor | tf.Tensor[];
}

function weightedLayer(
  row: Vgg16Layer,
  kind: 'conv' | 'dense',
  activation: 'relu' | 'linear',
  init: InitializerFor,
  maxWeightBytes: number,
): LayerLike {
  const owner = row.weights ?? row.name;
  const common = { activation, trainable: false } as const;
  if (kind === 'conv') {
    return tfl.layers.conv2d({ ...common, name: row.name, kernelInitializer: init(`${owner}/kernel`), biasInitializer: init(`${owner}/bias`), filters: row.channels, kernelSize: 3, strides: 1, padding: 'same' });
  }
  const spec = VGG16_WEIGHTS.find((w) => w.name === `${owner}/kernel`);
  const [inputs = 0, units = row.channels] = spec?.shape ?? [];
  const blocks = columnBlocks(inputs * units * 4, units, maxWeightBytes);
  if (blocks === 1) return tfl.layers.dense({ ...common, name: row.name, units, kernelInitializer: init(`${owner}/kernel`), biasInitializer: init(`${owner}/bias`) });
  // Column block b of the kernel and bias: the same maths, each kernel small enough to bind.
  const width = units / blocks;
  const parts = Array.from({ length: blocks }, (_, b) =>
    tfl.layers.dense({
      ...common,
      name: `${row.name}_part${b}`,
      units: width,
      kernelInitializer: new ValueInitializer(() => columns(init.values(`${owner}/kernel`), inputs, units, b * width, width)),
      biasInitializer: new ValueInitializer(() => init.values(`${owner}/bias`).slice(b * width, (b + 1) * width)),
    }),
  );
  const concat = tfl.layers.concatenate({ name: row.name, axis: -1 });
  return { apply: (x) => concat.apply(parts.map((part) => part.apply(x) as tfl.SymbolicTensor)) };
}

/** The fewest equal column blocks (a divisor of `units`) whose kernels each fit `maxBytes`. */
export function columnBlocks(kernelBytes: number, units: number, maxBytes: number): number {
  for (let blocks = 1; blocks <= units; blocks++) {
    if (units % blocks === 0 && kernelBytes / blocks <= maxBytes) return blocks;
  }
  return units;
}

/** Columns [from, from + width) of a row-major [rows, cols] matrix. */
function columns(matrix: Float32Array, rows: number, cols: number, from: number, width: number): Float32Array {
  const out = new Float32Array(rows * width);
  for (let r = 0; r < rows; r++) out.set(matrix.subarray(r * cols + from, r * cols + from + width), r * width);
  return out;
}

// tfjs-layers only accepts initializers that are instances of its (unexported) Initializer class; reach it
// through a built-in one. This lets a layer's weights be created straight from our values, once, instead of
// initialising them to zeros and overwriting them (a second 411 MB buffer for fc1).
const InitializerBase = Object.getPrototypeOf(tfl.initializers.zeros().constructor) as new () => Initializer;

/** Gives a weight its value when tfjs-layers builds the layer: only layers actually built cost anything. */
class ValueInitializer extends InitializerBase {
  constructor(private readonly values: () => Float32Array) {
    super();
  }

  override apply(shape: number[]): tf.Tensor {
    return tf.tensor(this.values(), shape, 'float32');
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {};
  }
}

function weightInitializers(weights: WeightsMap | undefined, seed: number): InitializerFor {
  const specs = new Map(VGG16_WEIGHTS.map((spec) => [spec.name, spec]));
  // The last tensor made, kept while the builder lives: a kernel built in column blocks is made once, not per block.
  let last: { tensor: string; data: Float32Array } | undefined;
  const values = (tensor: string): Float32Array => {
    const given = weights?.get(tensor);
    if (given) return given.data;
    if (last?.tensor === tensor) return last.data;
    const spec = specs.get(tensor);
    if (!spec) throw new LayertapError(ErrorCode.InferenceFailed, `internal: no weight spec for ${tensor}`);
    // Seeded values are made here, when the layer is built, so unbuilt layers never cost their weights.
    last = { tensor, data: randomWeight(seed, spec) };
    return last.data;
  };
  return Object.assign((tensor: string) => new ValueInitializer(() => values(tensor)), { values });
}

/** torchvision's AdaptiveAvgPool2d as a tfjs layer (NHWC in, [N, size, size, C] out). */
class AdaptiveAvgPool2d extends tfl.layers.Layer {
  static readonly className = 'LayertapAdaptiveAvgPool2d';
  private readonly size: number;

  constructor(args: { name: string; size: number }) {
    super({ name: args.name, trainable: false });
    this.size = args.size;
  }

  override computeOutputShape(inputShape: tfl.Shape | tfl.Shape[]): tfl.Shape {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tfl.Shape;
    return [shape[0] ?? null, this.size, this.size, shape[3] ?? null];
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    const x = Array.isArray(inputs) ? inputs[0] : inputs;
    if (!x || x.rank !== 4) throw new LayertapError(ErrorCode.InferenceFailed, `${this.name} expects one NHWC tensor`);
    return adaptiveAvgPool2d(x as tf.Tensor4D, this.size);
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), size: this.size };
  }
}
