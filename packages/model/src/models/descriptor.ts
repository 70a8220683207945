// What every model is to the rest of layertap: a layer table, shapes, weight specs and builders per engine.
// Type-only (plus the ONNX graph's input names): loaders, engines, the plan and stored shapes use these and
// import no model's tables. No tfjs here.
import type { ModelName } from '@layertap/contracts';
import type { WeightSpec, WeightsMap } from '../weight-specs';

/** One hookable tensor of a model's forward pass. */
export interface ModelLayer {
  /** Canonical name (what the table, the graph outputs and manifests use). */
  readonly name: string;
  /** What computes it (`conv`, `relu`, `pool`, `block`, ...): the model's own vocabulary. */
  readonly kind: string;
  /** Channels of a feature map, or units of a vector. */
  readonly channels: number;
  /** Other specs that name the same tensor (torchvision module names where the canonical name is not one). */
  readonly aliases: readonly string[];
  /** Weights owner whose tensors compute it, when it has one. */
  readonly weights?: string;
  /** VGG16 feature maps: 2x2/2 max pools before this tensor (what TF.js' im2col estimate needs). */
  readonly pools?: number;
  /** Position in the forward pass, from 0. */
  readonly order: number;
}

/** A spec as the user wrote it (trimmed; it names the output folder) and what it resolved to. */
export interface ResolvedLayer {
  readonly spec: string;
  readonly canonical: string;
  readonly order: number;
}

/** The symbolic batch dimension of a generated ONNX graph's input and outputs. */
export const ONNX_BATCH_DIM = 'N';

/** Name of a generated ONNX graph's input (NHWC float32 unless built with `inputLayout: 'nchw'`). */
export const ONNX_INPUT_NAME = 'input';

/** The layout of a 4-D tensor in memory. */
export type GraphInputLayout = 'nhwc' | 'nchw';

/** What a TF.js build is asked for. */
export interface ModelBuildOptions {
  /** Side of the square input, in pixels. */
  imageSize: number;
  /** Layers whose outputs the model returns, in this order (canonical names or any spec; each tensor once). */
  outputs: readonly string[];
  /** Weights in the model's layout (see its `weights` specs). Default: seeded random weights. */
  weights?: WeightsMap;
  /** Seed of the random weights; ignored when `weights` is given. Default 0. */
  seed?: number;
  /** VGG16: Keras layers to build with a separate ReLU (see `Vgg16Options.split`). */
  split?: readonly string[];
  /** VGG16: largest weight tensor one TF.js layer may hold (see `Vgg16Options.maxWeightBytes`). */
  maxWeightBytes?: number;
}

/** What an ONNX build is asked for. */
export interface OnnxBuildOptions {
  imageSize: number;
  /** Layers to expose as graph outputs (canonical names or any spec; each tensor once). */
  outputs: readonly string[];
  /** Weights in the model's layout. Default: seeded random weights. */
  weights?: WeightsMap;
  /** Seed of the random weights; ignored when `weights` is given. Default 0. */
  seed?: number;
  /**
   * Layout of the graph input. `nhwc` (default) takes the extractor's input as it is and transposes it in
   * the graph; `nchw` skips that transpose for callers that already have NCHW data.
   */
  inputLayout?: GraphInputLayout;
}

/** One graph output: a canonical layer name and its per-sample shape (after the batch dimension). */
export interface OnnxBuildOutput {
  name: string;
  /** (C, H, W) for feature maps, (C) for vectors. */
  sampleShape: number[];
}

/** A generated ONNX model. */
export interface OnnxBuild {
  /** The serialised ModelProto. */
  bytes: Uint8Array;
  outputs: OnnxBuildOutput[];
  /** Node op types in graph order (for tests and logs). */
  nodes: string[];
  /** Bytes of float32 weights in the model. */
  weightBytes: number;
  deepest: string;
  /** Table rows the graph computes, in forward order. */
  layers: string[];
  /** The model's weight tensors in the graph, by their `WeightsMap` name, with their ONNX shapes. */
  weights: { name: string; shape: number[] }[];
  /** Model name for logs and descriptions (`vgg16_to_block2_pool`). */
  name: string;
}

export interface ModelDescriptor {
  readonly name: ModelName;
  /** What the architecture is, for provenance. */
  readonly architecture: string;
  /** Display name in messages (`VGG16`). */
  readonly title: string;
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
  /** Every weight tensor, in the model's layout (TF layout for VGG16, torch layout for torchvision models). */
  readonly weights: readonly WeightSpec[];
  /** The weight tensors the given layers need. */
  requiredWeights(layers: readonly string[]): WeightSpec[];
  /** Engines that can build it, with a reason for those that cannot (`tfjs: ...`); the TF.js builders live in @layertap/engines. */
  readonly engines: { readonly onnx: true; readonly tfjs: true | string };
  /** The ONNX graph up to the deepest output. */
  buildOnnx(options: OnnxBuildOptions): OnnxBuild;
}
