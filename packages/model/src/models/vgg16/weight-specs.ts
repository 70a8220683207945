// Which weight tensors VGG16 has (Keras names, TF layout) and which of them a set of layers needs. No tfjs.
import type { WeightSpec } from '../../weight-specs';
import { VGG16_LAYERS, layerInfo } from './layers';

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

