// What the Extractor needs from whatever runs VGG16 underneath (TF.js, ONNX Runtime): run a batch for a set
// of layers and hand the outputs back in host memory, account for what it holds, and free it.

import type { ConcreteEngine } from '@layertap/contracts';

/** Memory order of a 4-D activation batch: TF.js computes NHWC, ONNX Runtime NCHW. */
export type TensorLayout = 'nhwc' | 'nchw';

/** ONNX Runtime execution providers layertap uses. */
export type OnnxProvider = 'cpu' | 'webgpu' | 'cuda';

/** One layer's output for a whole batch, in host memory. */
export interface EngineOutput {
  data: Float32Array;
  /** [N, H, W, C] (`nhwc`) or [N, C, H, W] (`nchw`) for feature maps, [N, C] for vectors. */
  shape: number[];
  /** Memory order of 4-D outputs; 2-D outputs are [N, C] either way. */
  layout: TensorLayout;
}

export interface EngineRun {
  /** Outputs of `layers`, in the same order. */
  outputs: EngineOutput[];
  /** Dispatching the forward pass (asynchronous backends compute during `readbackMs`). */
  inferenceMs: number;
  /** Waiting for the outputs and copying them to host memory. */
  readbackMs: number;
}

/** Live backend values and their bytes; the Extractor checks the count is unchanged by a run. */
export interface MemoryInfo {
  numTensors: number;
  numBytes: number;
}

/** What is built right now: layer names in forward order and weight tensors, for tests and provenance. */
export interface ModelDescription {
  name: string;
  layers: string[];
  weights: { name: string; shape: number[] }[];
}

/**
 * A VGG16 runner. `run` is never called concurrently (the Extractor serialises runs); `layers` are canonical
 * names in forward order, and the input is NHWC float32 preprocessed images, already checked.
 */
export interface InferenceEngine {
  readonly engine: ConcreteEngine;
  /** tfjs backend (`tensorflow`, `webgpu`, `wasm`, `cpu`) or ONNX Runtime provider (`cpu`, `webgpu`, `cuda`). */
  readonly backend: string;
  /** Why this engine and backend run (for logs and provenance). */
  readonly reason: string;
  /** Compute threads, where the engine sets them (ONNX Runtime); undefined where the backend decides. */
  readonly threads?: number;
  /**
   * Builds (or reuses) the model for `layers`, so that what a build allocates is not counted as a run's
   * leak. `run` prepares too; calling this first only moves the build out of the measured run.
   */
  prepare(layers: readonly string[]): Promise<void>;
  run(layers: readonly string[], data: Float32Array, batchSize: number): Promise<EngineRun>;
  memory(): MemoryInfo;
  describeModel(): ModelDescription | undefined;
  /** Frees the model; the engine is not used afterwards. */
  dispose(): void;
}
