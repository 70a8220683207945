// Which weight tensors VGG16 has, which of them a set of layers needs, and checking a given set against
// that. No tfjs here: weight readers and the producer can use it without loading TensorFlow.js.
import { ErrorCode, ValidationError } from '@layertap/contracts';
import { VGG16_LAYERS, layerInfo } from './layers';

/**
 * Weights in TensorFlow layout, keyed `"<keras_layer>/kernel"` and `"<keras_layer>/bias"` (`block1_conv1/kernel`).
 * Conv kernels are [kh, kw, in, out]; dense kernels [in, out], with fc1's rows in Keras (H,W,C) flatten
 * order (torchvision's are (C,H,W): a converter must permute them). Data is C-order float32.
 */
export type WeightsMap = Map<string, { shape: number[]; data: Float32Array }>;

/** One weight tensor: its `WeightsMap` key, shape, and the Keras layer it belongs to. */
export interface WeightSpec {
  readonly name: string;
  readonly shape: readonly number[];
  readonly layer: string;
  readonly param: 'kernel' | 'bias';
  /** Layer position of the first tensor computed with this weight (the model needs it from there on). */
  readonly order: number;
}

const CONV_KERNEL = 3;
const IMAGE_CHANNELS = 3;

function weightSpecs(): WeightSpec[] {
  const specs: WeightSpec[] = [];
  let inputs = IMAGE_CHANNELS;
  for (const layer of VGG16_LAYERS) {
    // The pre-activation row comes first for each weighted layer; its ReLU row shares the weights.
    if (layer.weights && (layer.kind === 'conv' || layer.kind === 'dense')) {
      const kernel =
        layer.kind === 'conv' ? [CONV_KERNEL, CONV_KERNEL, inputs, layer.channels] : [inputs, layer.channels];
      const base = { layer: layer.weights, order: layer.order };
      specs.push({ ...base, name: `${layer.weights}/kernel`, shape: kernel, param: 'kernel' });
      specs.push({ ...base, name: `${layer.weights}/bias`, shape: [layer.channels], param: 'bias' });
    }
    inputs = layer.channels;
  }
  return specs;
}

/** Every weight tensor of VGG16 with its top, in forward order (13 convs, fc1, fc2, predictions). */
export const VGG16_WEIGHTS: readonly WeightSpec[] = weightSpecs();

/** The weight tensors a model truncated after the deepest of `layers` needs, in forward order. */
export function requiredWeights(layers: readonly string[]): WeightSpec[] {
  const deepest = Math.max(...layers.map((spec) => layerInfo(spec).order));
  return VGG16_WEIGHTS.filter((spec) => spec.order <= deepest);
}

function formatShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

/** What is wrong with one tensor of `weights`, or undefined when it is present and well formed. */
export function weightProblem(weights: WeightsMap, spec: WeightSpec): string | undefined {
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
export function validateWeights(weights: WeightsMap, specs: readonly WeightSpec[]): void {
  const problems = specs.map((spec) => weightProblem(weights, spec)).filter((p): p is string => p !== undefined);
  if (problems.length > 0) {
    throw new ValidationError(ErrorCode.InvalidWeights, `invalid VGG16 weights: ${problems.join('; ')}`);
  }
}
