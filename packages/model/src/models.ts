// The models layertap runs, each behind one descriptor: its layer table (names, specs, shapes), its weight
// specs, and its TF.js and ONNX builders. VGG16 is the one implementation; a second architecture is a second
// descriptor (its table, weights and builders in their own files), and nothing else changes: specs are
// resolved, shapes computed and engines built through the descriptor a dataset names.
import { ErrorCode, ValidationError, type ModelName } from '@layertap/contracts';
import type * as tfl from '@tensorflow/tfjs-layers';
import type { Vgg16Onnx, Vgg16OnnxOptions } from './engines/onnx-graph';
import {
  VGG16_LAYERS,
  checkImageSize,
  describeValidSpecs,
  layerInfo,
  layerOutputShape,
  resolveLayerSpecs,
  type ResolvedLayer,
  type Vgg16Layer,
} from './layers';
import type { Vgg16Options } from './vgg16';
import { VGG16_WEIGHTS, requiredWeights, type WeightSpec } from './weight-specs';

/** A layer of a model's table. */
export type ModelLayer = Vgg16Layer;

/** What a TF.js or ONNX build is asked for (the model's own options type, in the common shape). */
export type ModelBuildOptions = Vgg16Options;
export type OnnxBuildOptions = Vgg16OnnxOptions;
export type OnnxBuild = Vgg16Onnx;

export interface ModelDescriptor {
  readonly name: ModelName;
  /** What the architecture is, for provenance. */
  readonly architecture: string;
  /** Every tensor of the forward pass, in order. */
  readonly layers: readonly ModelLayer[];
  /** The table row of any spec (throws `unknown_layer` listing the valid ones). */
  layer(spec: string): ModelLayer;
  /** Resolves specs in request order (a spec twice is refused). */
  resolveLayers(specs: readonly string[]): ResolvedLayer[];
  /** Shape of one sample's output: (C,H,W) for feature maps, (C,) for vectors. */
  outputShape(canonical: string, imageSize: number): number[];
  /** Refuses image sizes the network cannot take. */
  checkImageSize(imageSize: number): void;
  /** The accepted specs in a line, for error messages. */
  describeValidSpecs(): string;
  /** Every weight tensor, in TF layout. */
  readonly weights: readonly WeightSpec[];
  /** The weight tensors the given layers need. */
  requiredWeights(layers: readonly string[]): WeightSpec[];
  /** The TF.js model up to the deepest output (loads TF.js on first use). */
  buildTfjs(options: ModelBuildOptions): tfl.LayersModel;
  /** The ONNX graph up to the deepest output. */
  buildOnnx(options: OnnxBuildOptions): OnnxBuild;
}

// The builders load TF.js (and the ONNX writer its helpers): required on first use, so that resolving specs
// and computing shapes (the CLI, the dashboard) never loads TensorFlow.js.
/* eslint-disable @typescript-eslint/no-require-imports */
const VGG16: ModelDescriptor = {
  name: 'vgg16',
  architecture: 'keras.applications.VGG16 (include_top=True); torchvision vgg16 indices accepted',
  layers: VGG16_LAYERS,
  layer: layerInfo,
  resolveLayers: resolveLayerSpecs,
  outputShape: layerOutputShape,
  checkImageSize,
  describeValidSpecs,
  weights: VGG16_WEIGHTS,
  requiredWeights,
  buildTfjs: (options) => (require('./vgg16') as typeof import('./vgg16')).buildVgg16(options),
  buildOnnx: (options) => (require('./engines/onnx-graph') as typeof import('./engines/onnx-graph')).buildVgg16Onnx(options),
};
/* eslint-enable @typescript-eslint/no-require-imports */

const MODELS: Record<ModelName, ModelDescriptor> = { vgg16: VGG16 };

/** The descriptor of a model (default VGG16). */
export function getModel(name: ModelName = 'vgg16'): ModelDescriptor {
  const model = MODELS[name];
  if (!model) throw new ValidationError(ErrorCode.InvalidRequest, `unknown model ${JSON.stringify(name)}; layertap has ${Object.keys(MODELS).join(', ')}`);
  return model;
}
