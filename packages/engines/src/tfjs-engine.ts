// The TF.js engine: VGG16 as tfjs-layers on the selected backend (tensorflow, webgpu, wasm, cpu), NHWC.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { EngineFault, describeError } from '@layertap/contracts';
import type { BackendSelection } from './backend';
import { imagesWithin, largestActivationBytes, largestIm2colBytes, type LogFn, getModel, type ModelDescriptor, type WeightsMap } from '@layertap/model';
import { buildTfjsModel } from './tfjs-models';
import type { EngineOutput, EngineRun, InferenceEngine, MemoryInfo, ModelDescription } from './engine';

export interface TfjsEngineOptions {
  imageSize: number;
  weights?: WeightsMap;
  /** For the build log line. */
  weightsDescription: string;
  seed: number;
  log: LogFn;
  /** The model (default VGG16). */
  model?: ModelDescriptor;
  /**
   * WebGPU: the largest buffer one shader may bind (the adapter's `maxStorageBufferBindingSize`). Batches run
   * in slices whose tensors fit it, and fc1's kernel is built in column blocks that fit it; over it, WebGPU
   * rejects the binding and TF.js returns zeros without an error. Default: no limit (other backends).
   */
  maxBindingBytes?: number;
  /**
   * WebGPU: compute convolutions with TF.js' separate im2col shader (`WEBGPU_CONV_SEPARATE_IM2COL_SHADER`),
   * faster on large GPUs. Its im2col matrix is 9x a conv's input, so slices shrink to keep it under
   * `maxBindingBytes`. Default false.
   */
  im2col?: boolean;
}

/** What WebGPU's error scopes and device-lost promise need (Dawn's GPUDevice). */
interface GpuDeviceLike {
  pushErrorScope(filter: 'validation' | 'out-of-memory' | 'internal'): void;
  popErrorScope(): Promise<{ message: string } | null>;
  lost?: Promise<{ reason?: string; message: string }>;
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
  /** Why the WebGPU device was lost, once it was: every later run is an engine fault. */
  private lost: string | undefined;
  private watched: GpuDeviceLike | undefined;

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

  /**
   * Runs the batch in slices that fit the WebGPU binding limit (one slice elsewhere). Each slice is
   * dispatched, then its readback starts while the next slice is dispatched, so the GPU computes slice k+1
   * while slice k is copied back. On WebGPU every device error in the run (a rejected binding, out of memory,
   * a lost device) becomes an `EngineFault`: TF.js itself would hand back zeros.
   */
  async run(layers: readonly string[], data: Float32Array, batchSize: number): Promise<EngineRun> {
    const model = this.modelFor(layers);
    await this.activate();
    const size = this.options.imageSize;
    const sample = size * size * 3;
    const step = Math.min(batchSize, this.sliceImages(layers));
    const device = this.gpuDevice();
    // A process-wide flag read as each conv is dispatched: set for this engine's run.
    if (device) tf.env().set('WEBGPU_CONV_SEPARATE_IM2COL_SHADER', this.options.im2col ?? false);
    let scopes = device ? 3 : 0;
    device?.pushErrorScope('internal');
    device?.pushErrorScope('out-of-memory');
    device?.pushErrorScope('validation');
    const slices: { start: number; n: number; tensors: tf.Tensor[]; values: Promise<Float32Array[]> }[] = [];
    const started = performance.now();
    let dispatched = started;
    try {
      for (let start = 0; start < batchSize; start += step) {
        const n = Math.min(step, batchSize - start);
        const tensors = tf.tidy(() => {
          const x = tf.tensor4d(data.subarray(start * sample, (start + n) * sample), [n, size, size, 3], 'float32');
          const result = model.execute(x, model.outputs.map((output) => output.name));
          return Array.isArray(result) ? result : [result];
        });
        // Outside tidy: reading back is asynchronous. Not awaited here: the next slice is dispatched first.
        const values = Promise.all(tensors.map((tensor) => tensor.data<'float32'>()));
        values.catch(() => undefined);
        slices.push({ start, n, tensors, values });
      }
      dispatched = performance.now();
      const outputs = model.outputs.map((output): EngineOutput => {
        const perSample = output.shape.slice(1).reduce<number>((a, b) => a * (b ?? 1), 1);
        return { data: new Float32Array(batchSize * perSample), shape: [batchSize, ...output.shape.slice(1).map((d) => d ?? 1)], layout: 'nhwc' };
      });
      for (const slice of slices) {
        const values = await slice.values;
        outputs.forEach((output, i) => {
          const perSample = output.data.length / batchSize;
          output.data.set(values[i] ?? new Float32Array(0), slice.start * perSample);
        });
      }
      scopes = 0;
      await this.checkDevice(device);
      return { outputs, inferenceMs: dispatched - started, readbackMs: performance.now() - dispatched };
    } finally {
      for (const slice of slices) tf.dispose(slice.tensors);
      // A run that threw leaves its scopes open: close them, the error is already on its way.
      for (; scopes > 0; scopes--) void device?.popErrorScope().catch(() => undefined);
    }
  }

  /** The most images one run may take here: all of them, or on WebGPU what fits the binding limit. */
  sliceImages(layers: readonly string[]): number {
    const limit = this.options.maxBindingBytes;
    if (limit === undefined || this.selection.name !== 'webgpu') return Number.MAX_SAFE_INTEGER;
    const model = this.model();
    const perImage = Math.max(largestActivationBytes(layers, this.options.imageSize, model), this.options.im2col ? largestIm2colBytes(layers, this.options.imageSize, model) : 0);
    return imagesWithin(limit, perImage);
  }

  private model(): ModelDescriptor {
    return this.options.model ?? getModel();
  }

  /** Makes this engine's backend the active one (TF.js has one per process; another engine may have switched). */
  private async activate(): Promise<void> {
    if (this.lost !== undefined) throw new EngineFault(`the WebGPU device was lost: ${this.lost}`);
    if (tf.getBackend() !== this.selection.name && !(await tf.setBackend(this.selection.name))) {
      throw new EngineFault(`the TF.js ${this.selection.name} backend cannot be activated again`);
    }
  }

  /** The WebGPU device, watched for loss from its first use; undefined on other backends. */
  private gpuDevice(): GpuDeviceLike | undefined {
    if (this.selection.name !== 'webgpu') return undefined;
    const device = (tf.backend() as unknown as { device?: GpuDeviceLike }).device;
    if (device && device !== this.watched) {
      this.watched = device;
      void device.lost?.then((info) => void (this.lost = info.message || info.reason || 'no reason given'));
    }
    return device;
  }

  /** Pops the run's error scopes: any error in them means the outputs are not to be trusted. */
  private async checkDevice(device: GpuDeviceLike | undefined): Promise<void> {
    if (!device) return;
    const errors: string[] = [];
    for (const kind of ['validation', 'out-of-memory', 'internal']) {
      try {
        const error = await device.popErrorScope();
        if (error) errors.push(`${kind}: ${error.message.split('\n')[0]}`);
      } catch (err) {
        errors.push(`${kind}: ${describeError(err)}`);
      }
    }
    if (this.lost !== undefined) errors.push(`device lost: ${this.lost}`);
    if (errors.length) throw new EngineFault(`WebGPU reported errors while running VGG16 (the outputs are wrong): ${errors.join('; ')}`);
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
    const model = this.model();
    const deepest = deepestOf(layers, model);
    const split = layers.filter((layer) => layer.endsWith('_preact')).map((layer) => model.layer(layer).weights ?? layer);
    let network = this.network;
    const covers =
      network !== undefined &&
      model.layer(deepest).order <= model.layer(network.deepest).order &&
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
    const model = buildTfjsModel(this.model(), {
      imageSize: this.options.imageSize,
      outputs,
      ...(this.options.weights ? { weights: this.options.weights } : {}),
      seed: this.options.seed,
      split: [...splitAll],
      ...(this.selection.name === 'webgpu' && this.options.maxBindingBytes ? { maxWeightBytes: this.options.maxBindingBytes } : {}),
    });
    this.network = { model, deepest: deepestOf(outputs, this.model()), split: splitAll, views: new Map() };
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

/** The canonical name of the layer furthest along the forward pass. */
function deepestOf(layers: readonly string[], model: ModelDescriptor): string {
  return layers.map((spec) => model.layer(spec)).reduce((a, b) => (b.order > a.order ? b : a)).name;
}
