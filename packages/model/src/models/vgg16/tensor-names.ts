// How the tensors of VGG16 are named in the files layertap reads, and which canonical `WeightsMap` key each
// name stands for.
import { VGG16_LAYERS } from './layers';
import { VGG16_WEIGHTS } from './weight-specs';

/** `block1_conv1/kernel`, possibly under a model or scope prefix (`vgg16/`) and with TF's `:0` suffix. */
const KERAS_NAME = /(?:^|\/)(block\d_conv\d|fc1|fc2|predictions)\/(kernel|bias)(?::0)?$/;
/** `features.0.weight`, `classifier.6.bias` (torchvision's VGG state_dict). */
const TORCHVISION_NAME = /^(features|classifier)\.(\d+)\.(weight|bias)$/;

const CANONICAL = new Set(VGG16_WEIGHTS.map((spec) => spec.name));

/** The `WeightsMap` key a Keras-style tensor name stands for, or undefined for a tensor VGG16 lacks. */
export function kerasWeightKey(name: string): string | undefined {
  const match = KERAS_NAME.exec(name);
  if (!match) return undefined;
  const key = `${match[1]}/${match[2]}`;
  return CANONICAL.has(key) ? key : undefined;
}

/** Keras layer (`block1_conv1`, `fc1`) of each torchvision module with weights (`features.0`, `classifier.0`). */
const TORCHVISION_MODULES = new Map<string, string>(
  VGG16_LAYERS.filter((layer) => (layer.kind === 'conv' || layer.kind === 'dense') && layer.weights).flatMap((layer) =>
    layer.torchvision.slice(0, 1).map((module) => [module, layer.weights as string] as const),
  ),
);

/** A torchvision state_dict key and the canonical tensor it maps to. */
export interface TorchvisionKey {
  key: string;
  canonical: string;
  kind: 'conv' | 'dense';
  param: 'kernel' | 'bias';
}

/** Maps `features.0.weight` to `block1_conv1/kernel`; undefined for keys that are not VGG16's. */
export function torchvisionWeightKey(key: string): TorchvisionKey | undefined {
  const match = TORCHVISION_NAME.exec(key);
  if (!match) return undefined;
  const layer = TORCHVISION_MODULES.get(`${match[1]}.${match[2]}`);
  if (!layer) return undefined;
  const param = match[3] === 'weight' ? 'kernel' : 'bias';
  return { key, canonical: `${layer}/${param}`, kind: match[1] === 'features' ? 'conv' : 'dense', param };
}

/** The torchvision state_dict key of a canonical tensor (`fc1/kernel` -> `classifier.0.weight`). */
export function torchvisionKeyOf(canonical: string): string {
  const [layer, param] = canonical.split('/');
  for (const [module, owner] of TORCHVISION_MODULES) {
    if (owner === layer) return `${module}.${param === 'kernel' ? 'weight' : 'bias'}`;
  }
  throw new RangeError(`no torchvision key for ${canonical}`);
}

/** Whether `name` is a torchvision-style key (of VGG16 or not): used to tell the two namings apart. */
export function looksTorchvision(name: string): boolean {
  return TORCHVISION_NAME.test(name);
}

/**
 * Why a file's tensor names cannot be VGG16's, when it is a known near miss: a state_dict saved from
 * `nn.DataParallel` (every key under `module.`), or BatchNorm VGG (`vgg16_bn`: running statistics, shifted
 * indices). Undefined otherwise.
 */
export function namingHint(names: readonly string[]): string | undefined {
  if (names.some((name) => /^features\.\d+\.running_(mean|var)$/.test(name))) {
    return 'BatchNorm VGG (vgg16_bn) is not supported: its features indices and BatchNorm layers are not VGG16\'s; use plain vgg16 weights (torchvision IMAGENET1K_V1)';
  }
  const wrapped = names.filter((name) => name.startsWith('module.'));
  if (wrapped.length > 0 && wrapped.length === names.length && wrapped.some((name) => looksTorchvision(name.slice('module.'.length)))) {
    return (
      "every key starts with 'module.' (a state_dict saved from nn.DataParallel or DistributedDataParallel): save " +
      "model.module.state_dict() instead, or strip the prefix: {k.removeprefix('module.'): v for k, v in sd.items()}"
    );
  }
  return undefined;
}
