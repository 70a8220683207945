// What a model's weight tensor is, and checking a given set against a model's specs. Each model lists its
// own specs (models/<name>/weight-specs.ts). No tfjs here: weight readers and the producer use it freely.
import { ErrorCode, ValidationError } from '@layertap/contracts';

/**
 * A model's weights by tensor name, in the model's layout; data is C-order float32. VGG16's are in TensorFlow
 * layout, keyed `"<keras_layer>/kernel"` and `"<keras_layer>/bias"` (`block1_conv1/kernel`): conv kernels
 * [kh, kw, in, out], dense kernels [in, out] with fc1's rows in Keras (H,W,C) flatten order. torchvision
 * models (ResNet-50) keep their state_dict names and torch layout (`layer1.0.conv1.weight`, [out, in, kh, kw]).
 */
export type WeightsMap = Map<string, { shape: number[]; data: Float32Array }>;

/**
 * What checking weights needs of them: each tensor's shape and how many values it holds. A `WeightsMap` is
 * one; so is what a file's header declares (`data.length` the values its bytes hold), read without the data.
 */
export type WeightShapes = ReadonlyMap<string, { readonly shape: readonly number[]; readonly data: { readonly length: number } }>;

/** One weight tensor: its `WeightsMap` key, shape, and the layer (module) it belongs to. */
export interface WeightSpec {
  readonly name: string;
  readonly shape: readonly number[];
  readonly layer: string;
  /**
   * What the tensor is, which also decides its seeded random values (see `randomWeight`): `kernel` is
   * Glorot-uniform (TF layout fans), `weight` a torch conv/linear weight (Glorot-uniform with torch layout
   * fans), `bias` uniform in +-0.01, and BatchNorm's `gamma` (uniform in [0.5, 1.5)), `beta` (+-0.1),
   * `mean` (+-0.1) and `var` (uniform in [0.5, 1.5)).
   */
  readonly param: 'kernel' | 'bias' | 'weight' | 'gamma' | 'beta' | 'mean' | 'var';
  /** Layer position of the first tensor computed with this weight (the model needs it from there on). */
  readonly order: number;
}

function formatShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

/** What is wrong with one tensor of `weights`, or undefined when it is present and well formed. */
export function weightProblem(weights: WeightShapes, spec: WeightSpec): string | undefined {
  const tensor = weights.get(spec.name);
  if (!tensor) return `${spec.name} is missing (expected shape ${formatShape(spec.shape)})`;
  const { shape, data } = tensor;
  if (shape.length !== spec.shape.length || shape.some((size, i) => size !== spec.shape[i])) {
    return `${spec.name} has shape ${formatShape(shape)}, expected ${formatShape(spec.shape)}`;
  }
  const size = spec.shape.reduce((a, b) => a * b, 1);
  if (data.length !== size) {
    return `${spec.name} has ${data.length} values, its shape ${formatShape(shape)} needs ${size}`;
  }
  return undefined;
}

/** Throws `InvalidWeights` naming every tensor of `specs` that is missing or misshapen in `weights`. */
export function validateWeights(weights: WeightShapes, specs: readonly WeightSpec[], model = 'VGG16'): void {
  const problems = specs.map((spec) => weightProblem(weights, spec)).filter((p): p is string => p !== undefined);
  if (problems.length > 0) {
    throw new ValidationError(ErrorCode.InvalidWeights, `invalid ${model} weights: ${problems.join('; ')}`);
  }
}
