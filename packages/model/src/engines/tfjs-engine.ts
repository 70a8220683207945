// The TF.js engine: VGG16 as tfjs-layers on the selected backend (tensorflow, webgpu, wasm, cpu), NHWC.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import type { BackendSelection } from '../backend';
import { deepestLayer, layerInfo } from '../layers';
import type { LogFn } from '../log';
import { buildVgg16 } from '../vgg16';
import type { WeightsMap } from '../weight-specs';
import type { EngineOutput, EngineRun, InferenceEngine, MemoryInfo, ModelDescription } from './engine';

export interface TfjsEngineOptions {
  imageSize: number;
  weights?: WeightsMap;
  /** For the build log line. */
  weightsDescription: string;
  seed: number;
  log: LogFn;
}

/**
 * The truncated model currently built. Views (multi-output models over the same layers and weights) serve
 * every layer set it covers: any set no deeper and needing no pre-activation that it fuses.
 */
interface Network {
  model: tfl.LayersModel;
  deepest: string;
  split: Set<string>;
  views: Map<string, tfl.LayersModel>;
}

/**
 * Runs VGG16 with TF.js. Owns every tensor it creates: a run frees its input and outputs before it returns,
 * so between runs only the weights of the built network are alive. Assumes it is the only user of TF.js in
 * its process (`memory()` is tfjs' process-wide count).
 */
export class TfjsEngine implements InferenceEngine {
  readonly engine = 'tfjs';
  private network: Network | undefined;

  constructor(
    private readonly options: TfjsEngineOptions,
    private readonly selection: BackendSelection,
  ) {}

  get backend(): string {
    return this.selection.name;
  }

  get reason(): string {
    return this.selection.reason;
  }

  prepare(layers: readonly string[]): Promise<void> {
    this.modelFor(layers);
    return Promise.resolve();
  }

  async run(layers: readonly string[], data: Float32Array, batchSize: number): Promise<EngineRun> {
    const model = this.modelFor(layers);
    const size = this.options.imageSize;
    let tensors: tf.Tensor[] = [];
    let outputs: EngineOutput[];
    const started = performance.now();
    let inferred = started;
    try {
      tensors = tf.tidy(() => {
        const x = tf.tensor4d(data, [batchSize, size, size, 3], 'float32');
        const result = model.execute(x, model.outputs.map((output) => output.name));
        return Array.isArray(result) ? result : [result];
      });
      inferred = performance.now();
      // Outside tidy: reading back is asynchronous.
      const values = await Promise.all(tensors.map((tensor) => tensor.data<'float32'>()));
      outputs = tensors.map((tensor, i) => ({
        data: values[i] ?? new Float32Array(0),
        shape: [...tensor.shape],
        layout: 'nhwc',
      }));
    } finally {
      tf.dispose(tensors);
    }
    return { outputs, inferenceMs: inferred - started, readbackMs: performance.now() - inferred };
  }

  memory(): MemoryInfo {
    const { numTensors, numBytes } = tf.memory();
    return { numTensors, numBytes };
  }

  describeModel(): ModelDescription | undefined {
    const model = this.network?.model;
    if (!model) return undefined;
    return {
      name: model.name,
      layers: model.layers.map((layer) => layer.name),
      weights: model.weights.map((weight) => ({
        name: weight.originalName,
        shape: weight.shape.map((size) => size ?? -1),
      })),
    };
  }

  dispose(): void {
    // Views share the network's layers; disposing the network frees the weights once.
    this.network?.model.dispose();
    this.network = undefined;
  }

  /** A model whose outputs are `layers` (canonical, forward order), reusing the built network if it can. */
  private modelFor(layers: readonly string[]): tfl.LayersModel {
    const key = layers.join(',');
    const deepest = deepestLayer(layers);
    const split = layers.filter((layer) => layer.endsWith('_preact')).map((layer) => layerInfo(layer).weights ?? layer);
    let network = this.network;
    const covers =
      network !== undefined &&
      layerInfo(deepest).order <= layerInfo(network.deepest).order &&
      split.every((layer) => network?.split.has(layer));
    if (!network || !covers) network = this.rebuild(layers, split);
    let view = network.views.get(key);
    if (!view) {
      const built = network.model;
      view = tfl.model({
        inputs: built.inputs,
        outputs: layers.map((layer) => built.getLayer(layer).output as tfl.SymbolicTensor),
        name: `${built.name}_view`,
      });
      network.views.set(key, view);
    }
    return view;
  }

  /**
   * Builds a network for `layers` that also keeps what the previous one could serve (its depth and split
   * pre-activations), so alternating hook sets do not rebuild over and over.
   */
  private rebuild(layers: readonly string[], split: string[]): Network {
    const previous = this.network;
    const outputs = [...layers];
    if (previous && !outputs.includes(previous.deepest)) outputs.push(previous.deepest);
    const splitAll = new Set([...split, ...(previous?.split ?? [])]);
    // Free the old weights first: peak memory is then one network, not two.
    this.dispose();
    const started = performance.now();
    const model = buildVgg16({
      imageSize: this.options.imageSize,
      outputs,
      ...(this.options.weights ? { weights: this.options.weights } : {}),
      seed: this.options.seed,
      split: [...splitAll],
    });
    this.network = { model, deepest: deepestLayer(outputs), split: splitAll, views: new Map() };
    this.options.log('built VGG16', {
      engine: 'tfjs',
      model: model.name,
      layers: model.layers.length,
      weights: this.options.weightsDescription,
      backend: this.backend,
      ms: Math.round(performance.now() - started),
    });
    return this.network;
  }
}
