// torchvision's ResNet-50 (V1.5: the stride on each bottleneck's 3x3 conv) as a layer table. Names are the
// node names of `torchvision.models.feature_extraction.create_feature_extractor` (`layer1.0.relu_1`), and
// the module names give the outputs of whole blocks and stages (`layer3.5`, `layer4`). Every conv is folded
// with the BatchNorm after it at load, so a conv's own output is not a tensor here: its BatchNorm's is.
// No tfjs here.
import { ErrorCode, ValidationError } from '@layertap/contracts';
import type { ModelLayer } from '../descriptor';
import { LayerTable } from '../layer-table';

export type ResNetLayerKind = 'conv' | 'relu' | 'maxpool' | 'add' | 'avgpool' | 'flatten' | 'linear';

/** A conv folded with its BatchNorm: the torchvision modules and the conv's geometry. */
export interface FoldedConv {
  /** The conv module (`layer1.0.conv2`): its `.weight` (the convs have no bias). */
  readonly conv: string;
  /** The BatchNorm module after it (`layer1.0.bn2`): `.weight`, `.bias`, `.running_mean`, `.running_var`. */
  readonly bn: string;
  readonly kernel: number;
  readonly stride: number;
  readonly pad: number;
  readonly inChannels: number;
}

export interface ResNetLayer extends ModelLayer {
  readonly kind: ResNetLayerKind;
  /** Table rows (or `input`) this tensor is computed from. */
  readonly inputs: readonly string[];
  /** Stride-2 steps before this tensor (each maps a side h to floor((h - 1) / 2) + 1); feature maps only. */
  readonly halvings?: number;
  readonly fold?: FoldedConv;
}

/** Smallest accepted image side (as VGG16's; the network itself takes any side >= 1). */
export const RESNET50_MIN_IMAGE_SIZE = 32;

const STAGES = [
  { blocks: 3, planes: 64 },
  { blocks: 4, planes: 128 },
  { blocks: 6, planes: 256 },
  { blocks: 3, planes: 512 },
] as const;
const EXPANSION = 4;

type Row = Omit<ResNetLayer, 'order'>;

function rows(): Row[] {
  const out: Row[] = [];
  const conv = (name: string, input: string, fold: FoldedConv, channels: number, halvings: number, aliases: string[] = []): string => {
    out.push({ name, kind: 'conv', channels, aliases, inputs: [input], halvings, fold, weights: fold.conv });
    return name;
  };
  const simple = (name: string, kind: ResNetLayerKind, inputs: string[], channels: number, halvings: number | undefined, aliases: string[] = []): string => {
    out.push({ name, kind, channels, aliases, inputs, ...(halvings === undefined ? {} : { halvings }) });
    return name;
  };

  let x = conv('bn1', 'input', { conv: 'conv1', bn: 'bn1', kernel: 7, stride: 2, pad: 3, inChannels: 3 }, 64, 1);
  x = simple('relu', 'relu', [x], 64, 1);
  x = simple('maxpool', 'maxpool', [x], 64, 2);
  let channels = 64;
  let halvings = 2;
  STAGES.forEach(({ blocks, planes }, s) => {
    const stage = `layer${s + 1}`;
    for (let b = 0; b < blocks; b++) {
      const p = `${stage}.${b}`;
      const stride = s > 0 && b === 0 ? 2 : 1;
      const inner = halvings + (stride === 2 ? 1 : 0);
      const width = planes * EXPANSION;
      let y = conv(`${p}.bn1`, x, { conv: `${p}.conv1`, bn: `${p}.bn1`, kernel: 1, stride: 1, pad: 0, inChannels: channels }, planes, halvings);
      y = simple(`${p}.relu`, 'relu', [y], planes, halvings);
      y = conv(`${p}.bn2`, y, { conv: `${p}.conv2`, bn: `${p}.bn2`, kernel: 3, stride, pad: 1, inChannels: planes }, planes, inner);
      y = simple(`${p}.relu_1`, 'relu', [y], planes, inner);
      y = conv(`${p}.bn3`, y, { conv: `${p}.conv3`, bn: `${p}.bn3`, kernel: 1, stride: 1, pad: 0, inChannels: planes }, width, inner);
      const identity = b === 0
        ? conv(`${p}.downsample.1`, x, { conv: `${p}.downsample.0`, bn: `${p}.downsample.1`, kernel: 1, stride, pad: 0, inChannels: channels }, width, inner, [`${p}.downsample`])
        : x;
      y = simple(`${p}.add`, 'add', [y, identity], width, inner);
      // A block's output is its last ReLU; the stage's output is its last block's.
      const last = b === blocks - 1;
      x = simple(last ? stage : p, 'relu', [y], width, inner, last ? [p, `${p}.relu_2`] : [`${p}.relu_2`]);
      channels = width;
      halvings = inner;
    }
  });
  x = simple('avgpool', 'avgpool', [x], channels, undefined);
  x = simple('flatten', 'flatten', [x], channels, undefined);
  out.push({ name: 'fc', kind: 'linear', channels: 1000, aliases: [], inputs: [x], weights: 'fc' });
  return out;
}

/** Every tensor of ResNet-50 in forward order. */
export const RESNET50_LAYERS: readonly ResNetLayer[] = rows().map((row, order) => Object.freeze({ ...row, order }));

/** Names of folded convs (`conv1`, `layer1.0.conv2`, `layer1.0.downsample.0`) -> the BatchNorm to hook instead. */
const FOLDED = new Map(RESNET50_LAYERS.flatMap((layer) => (layer.fold ? [[layer.fold.conv, layer.name] as const] : [])));

export function describeResNet50Specs(): string {
  return (
    'bn1, relu, maxpool; layer1-layer4; each block layerN.B (layer1.0-2, layer2.0-3, layer3.0-5, layer4.0-2) and its ' +
    'nodes .bn1, .relu, .bn2, .relu_1, .bn3, .add, .relu_2 (= the block), and .downsample.1 (= .downsample) in block 0; ' +
    'avgpool, flatten, fc (torchvision create_feature_extractor node names; convs are folded with their BatchNorm)'
  );
}

export const RESNET50_TABLE = new LayerTable('ResNet-50', RESNET50_LAYERS, describeResNet50Specs, (spec) => {
  const bn = FOLDED.get(spec);
  return bn ? `its BatchNorm is folded into it at load: hook ${bn}, the conv's output after BatchNorm` : undefined;
});

export function checkResNet50ImageSize(imageSize: number): void {
  if (!Number.isInteger(imageSize) || imageSize < RESNET50_MIN_IMAGE_SIZE) {
    throw new ValidationError(ErrorCode.InvalidRequest, `image size must be an integer >= ${RESNET50_MIN_IMAGE_SIZE}, got ${imageSize}`);
  }
}

/** Side after `halvings` stride-2 steps (7x7/2 pad 3, 3x3/2 pad 1 and 1x1/2 all give floor((h - 1) / 2) + 1). */
export function stridedSide(imageSize: number, halvings: number): number {
  let side = imageSize;
  for (let i = 0; i < halvings; i++) side = Math.floor((side - 1) / 2) + 1;
  return side;
}

/** (C, H, W) for feature maps, (C, 1, 1) for avgpool, (C) for flatten and fc. */
export function resNet50OutputShape(spec: string, imageSize: number): number[] {
  checkResNet50ImageSize(imageSize);
  const layer = RESNET50_TABLE.layer(spec);
  if (layer.halvings !== undefined) {
    const side = stridedSide(imageSize, layer.halvings);
    return [layer.channels, side, side];
  }
  if (layer.kind === 'avgpool') return [layer.channels, 1, 1];
  return [layer.channels];
}
