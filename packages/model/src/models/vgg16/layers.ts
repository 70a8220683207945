// The VGG16 layer table and layer-spec resolution. Also published as `@layertap/model/layers`, which the
// producer loads to validate requests without TensorFlow.js: keep this file (and what it imports) free of tfjs.
import { ErrorCode, ValidationError } from '@layertap/contracts';
import type { ModelLayer, ResolvedLayer } from '../descriptor';

export type { ResolvedLayer } from '../descriptor';
import { closestName } from '../../did-you-mean';

/**
 * The torchvision module whose output a layer is. Keras fuses the ReLU into its convs and dense layers, so a
 * Keras conv name (`block1_conv1`) is a `relu` here and its pre-activation (`block1_conv1_preact`) a `conv`.
 */
export type LayerKind = 'conv' | 'relu' | 'pool' | 'avgpool' | 'flatten' | 'dense';

/** One tensor of the VGG16 forward pass. */
export interface Vgg16Layer extends ModelLayer {
  /** Canonical name: the Keras `applications.VGG16` layer name, or `<keras name>_preact` before a ReLU. */
  readonly name: string;
  readonly kind: LayerKind;
  /** The same as `torchvision`: the specs besides the canonical name. */
  readonly aliases: readonly string[];
  /** Channels of a feature map, or units of a vector. */
  readonly channels: number;
  /** torchvision specs that give this same tensor (`features.9`, `classifier.1`, `avgpool`). */
  readonly torchvision: readonly string[];
  /** Keras layer whose `kernel` and `bias` compute this tensor (a ReLU and its pre-activation share one). */
  readonly weights?: string;
  /** Feature maps only: how many 2x2/2 max pools the image went through before this tensor. */
  readonly pools?: number;
  /** Position in the forward pass, from 0. */
  readonly order: number;
}

/** Smallest accepted image side: five 2x2 pools must leave at least one pixel. */
export const MIN_IMAGE_SIZE = 32;

/** torchvision's `AdaptiveAvgPool2d((7, 7))` output side, and so the side fc1 was trained on. */
export const AVGPOOL_SIZE = 7;

const CONV_BLOCKS: readonly { convs: number; channels: number }[] = [
  { convs: 2, channels: 64 },
  { convs: 2, channels: 128 },
  { convs: 3, channels: 256 },
  { convs: 3, channels: 512 },
  { convs: 3, channels: 512 },
];

type LayerRow = Omit<Vgg16Layer, 'order' | 'aliases'>;

/** Rows of the convolutional part, in forward order, with torchvision's `features` indices counted along. */
function featureRows(): LayerRow[] {
  const rows: LayerRow[] = [];
  let index = 0;
  CONV_BLOCKS.forEach(({ convs, channels }, b) => {
    const block = `block${b + 1}`;
    for (let c = 1; c <= convs; c++) {
      const conv = `${block}_conv${c}`;
      const common = { channels, weights: conv, pools: b };
      rows.push({ ...common, name: `${conv}_preact`, kind: 'conv', torchvision: [`features.${index++}`] });
      rows.push({ ...common, name: conv, kind: 'relu', torchvision: [`features.${index++}`] });
    }
    rows.push({ name: `${block}_pool`, kind: 'pool', channels, torchvision: [`features.${index++}`], pools: b + 1 });
  });
  return rows;
}

// The classifier's Dropout modules (classifier.2 and .5) are the identity at inference, so they name the
// same tensor as the ReLU before them. `predictions` is the logits: Keras applies a softmax inside that
// layer, torchvision's classifier.6 does not, and layertap follows torchvision.
const HEAD_ROWS: readonly LayerRow[] = [
  { name: 'avgpool', kind: 'avgpool', channels: 512, torchvision: ['avgpool'] },
  { name: 'flatten', kind: 'flatten', channels: 512 * AVGPOOL_SIZE * AVGPOOL_SIZE, torchvision: [] },
  { name: 'fc1_preact', kind: 'dense', channels: 4096, torchvision: ['classifier.0'], weights: 'fc1' },
  { name: 'fc1', kind: 'relu', channels: 4096, torchvision: ['classifier.1', 'classifier.2'], weights: 'fc1' },
  { name: 'fc2_preact', kind: 'dense', channels: 4096, torchvision: ['classifier.3'], weights: 'fc2' },
  { name: 'fc2', kind: 'relu', channels: 4096, torchvision: ['classifier.4', 'classifier.5'], weights: 'fc2' },
  { name: 'predictions', kind: 'dense', channels: 1000, torchvision: ['classifier.6'], weights: 'predictions' },
];

/**
 * Every tensor of VGG16 in forward order: the single source of truth for names, torchvision indices, kinds
 * and shapes. `avgpool` is torchvision's AdaptiveAvgPool2d((7,7)) (the identity at 224); `flatten` is in
 * Keras (H,W,C) order and has no torchvision module (torchvision calls `torch.flatten`, channel-major).
 */
export const VGG16_LAYERS: readonly Vgg16Layer[] = [...featureRows(), ...HEAD_ROWS].map((row, order) =>
  Object.freeze({ ...row, aliases: row.torchvision, order }),
);

const BY_SPEC = new Map<string, Vgg16Layer>(
  VGG16_LAYERS.flatMap((layer) => [layer.name, ...layer.torchvision].map((spec) => [spec, layer] as const)),
);

/** Every accepted spec, in forward order: each canonical name followed by its torchvision specs. */
export function listLayerSpecs(): string[] {
  return [...BY_SPEC.keys()];
}

/** The table row of a canonical name (or of any spec). */
export function layerInfo(spec: string): Vgg16Layer {
  const layer = BY_SPEC.get(spec.trim());
  if (!layer) throw unknownLayer(spec);
  return layer;
}

/** Resolves a Keras name (`block2_pool`), a `_preact` name or a torchvision spec (`features.9`). */
export function resolveLayerSpec(spec: string): ResolvedLayer {
  const trimmed = spec.trim();
  const layer = layerInfo(trimmed);
  return { spec: trimmed, canonical: layer.name, order: layer.order };
}

/**
 * Resolves specs in request order. The same spec twice is refused (it would name one output folder twice);
 * two different specs of one tensor (`features.9` and `block2_pool`) are allowed.
 */
export function resolveLayerSpecs(specs: readonly string[]): ResolvedLayer[] {
  const seen = new Set<string>();
  return specs.map((spec) => {
    const resolved = resolveLayerSpec(spec);
    if (seen.has(resolved.spec)) {
      throw new ValidationError(ErrorCode.InvalidRequest, `layer ${JSON.stringify(resolved.spec)} is requested twice`);
    }
    seen.add(resolved.spec);
    return resolved;
  });
}

/** The table rows of a model's requested outputs, each tensor once (a builder's input); throws for none or a repeat. */
export function outputLayers(specs: readonly string[]): Vgg16Layer[] {
  if (specs.length === 0) throw new ValidationError(ErrorCode.InvalidRequest, 'no output layers given');
  const layers = specs.map(layerInfo);
  const names = layers.map((layer) => layer.name);
  const repeated = names.find((name, i) => names.indexOf(name) !== i);
  if (repeated) throw new ValidationError(ErrorCode.InvalidRequest, `output layer ${repeated} is given twice`);
  return layers;
}

/** The canonical name of the layer furthest along the forward pass (the model is truncated after it). */
export function deepestLayer(layers: readonly string[]): string {
  let deepest: Vgg16Layer | undefined;
  for (const spec of layers) {
    const layer = layerInfo(spec);
    if (!deepest || layer.order > deepest.order) deepest = layer;
  }
  if (!deepest) throw new ValidationError(ErrorCode.InvalidRequest, 'no layers given');
  return deepest.name;
}

/** Refuses image sizes the network cannot take (five 2x2 pools must leave at least one pixel). */
export function checkImageSize(imageSize: number): void {
  if (!Number.isInteger(imageSize) || imageSize < MIN_IMAGE_SIZE) {
    throw new ValidationError(
      ErrorCode.InvalidRequest,
      `image size must be an integer >= ${MIN_IMAGE_SIZE}, got ${imageSize}`,
    );
  }
}

/** Side of a feature map after `pools` 2x2/2 max pools: floor division, like both Keras and torchvision. */
export function pooledSize(imageSize: number, pools: number): number {
  let size = imageSize;
  for (let i = 0; i < pools; i++) size = Math.floor(size / 2);
  return size;
}

/**
 * Shape of one sample's output: (C,H,W) for feature maps, (C,) for vectors. Sizes other than 224 work for
 * every layer: the adaptive average pool brings any block5_pool to 7x7 before the head.
 */
export function layerOutputShape(canonical: string, imageSize: number): number[] {
  checkImageSize(imageSize);
  const layer = layerInfo(canonical);
  if (layer.pools !== undefined) {
    const side = pooledSize(imageSize, layer.pools);
    return [layer.channels, side, side];
  }
  if (layer.kind === 'avgpool') return [layer.channels, AVGPOOL_SIZE, AVGPOOL_SIZE];
  return [layer.channels];
}

/** A compact list of what is accepted, generated from the table so it never goes stale. */
export function describeValidSpecs(): string {
  const names = VGG16_LAYERS.filter((layer) => !layer.name.endsWith('_preact')).map((layer) => layer.name);
  const ranges = torchvisionRanges();
  return (
    `${names.join(', ')} (each conv and fc1/fc2 also as <name>_preact, before its ReLU); ` +
    `torchvision: ${ranges.join(', ')}`
  );
}

/** `features.0-30, avgpool, classifier.0-6`: numbered specs collapse into a range, in forward order. */
function torchvisionRanges(): string[] {
  const groups = new Map<string, number[]>();
  for (const spec of VGG16_LAYERS.flatMap((layer) => layer.torchvision)) {
    const [prefix = spec, index] = spec.split('.');
    const indices = groups.get(prefix) ?? [];
    if (index !== undefined) indices.push(Number(index));
    groups.set(prefix, indices);
  }
  return [...groups].map(([prefix, indices]) =>
    indices.length ? `${prefix}.${Math.min(...indices)}-${Math.max(...indices)}` : prefix,
  );
}

function unknownLayer(spec: string): ValidationError {
  const trimmed = spec.trim();
  const lower = trimmed.toLowerCase();
  const guess = lower !== trimmed && BY_SPEC.has(lower) ? lower : closestName(trimmed, BY_SPEC.keys());
  const hint = guess ? ` (did you mean ${JSON.stringify(guess)}?)` : '';
  return new ValidationError(
    ErrorCode.UnknownLayer,
    `unknown VGG16 layer ${JSON.stringify(trimmed)}${hint}. Valid layers: ${describeValidSpecs()}`,
  );
}
