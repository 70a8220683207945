// ResNet-50's weight tensors by torchvision state_dict name, in torch layout. No tfjs.
import type { WeightSpec } from '../../weight-specs';
import { RESNET50_LAYERS, RESNET50_TABLE } from './layers';

function weightSpecs(): WeightSpec[] {
  const specs: WeightSpec[] = [];
  for (const layer of RESNET50_LAYERS) {
    const base = { order: layer.order };
    if (layer.fold) {
      const { conv, bn, kernel, inChannels } = layer.fold;
      const c = layer.channels;
      specs.push({ ...base, layer: conv, name: `${conv}.weight`, shape: [c, inChannels, kernel, kernel], param: 'weight' });
      specs.push({ ...base, layer: bn, name: `${bn}.weight`, shape: [c], param: 'gamma' });
      specs.push({ ...base, layer: bn, name: `${bn}.bias`, shape: [c], param: 'beta' });
      specs.push({ ...base, layer: bn, name: `${bn}.running_mean`, shape: [c], param: 'mean' });
      specs.push({ ...base, layer: bn, name: `${bn}.running_var`, shape: [c], param: 'var' });
    }
    if (layer.kind === 'linear') {
      specs.push({ ...base, layer: 'fc', name: 'fc.weight', shape: [layer.channels, 2048], param: 'weight' });
      specs.push({ ...base, layer: 'fc', name: 'fc.bias', shape: [layer.channels], param: 'bias' });
    }
  }
  return specs;
}

/** Every weight tensor of ResNet-50 (torchvision state_dict keys without `num_batches_tracked`), in forward order. */
export const RESNET50_WEIGHTS: readonly WeightSpec[] = weightSpecs();

/** The tensors a model truncated after the deepest of `layers` needs. */
export function resNet50RequiredWeights(layers: readonly string[]): WeightSpec[] {
  const deepest = Math.max(...layers.map((spec) => RESNET50_TABLE.layer(spec).order));
  return RESNET50_WEIGHTS.filter((spec) => spec.order <= deepest);
}
