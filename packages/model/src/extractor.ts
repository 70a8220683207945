// The Extractor: PyTorch's register_forward_hook for the TF.js VGG16, with host-memory outputs and strict
// tensor accounting.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { ErrorCode, LayertapError, ValidationError, type BackendName } from '@layertap/contracts';
import { selectBackend, type BackendSelection } from './backend';
import { checkImageSize, deepestLayer, layerInfo } from './layers';
import { silentLog, type LogFn } from './log';
import { buildVgg16 } from './vgg16';
import { VGG16_WEIGHTS, requiredWeights, validateWeights, type WeightsMap } from './weight-specs';

export interface ExtractorOptions {
  /** TF.js backend; see `selectBackend`. Default `auto`. */
  backend?: BackendName;
  /** Side of the square input images, in pixels (>= 32). */
  imageSize: number;
  /**
   * Weights in TF layout (see `WeightsMap`). Default: seeded random weights. The extractor keeps the map to
   * rebuild the model when hooks need more layers; the backend holds its own copy of what is built.
   */
  weights?: WeightsMap;
  /** Provenance of `weights` (file, sha256) for manifests. Default: `given weights (<n> tensors)`. */
  weightsDescription?: string;
  /** Seed of the random weights when no `weights` are given. Default 0. */
  seed?: number;
  /** Structured log callback. Default: silent. */
  log?: LogFn;
}

/** One hooked layer's output for a batch, in host memory (never a backend tensor). */
export interface LayerOutput {
  /** The spec the hook was registered with (`features.9`). */
  spec: string;
  canonical: string;
  /**
   * Values in C order of `shape`. Hooks on the same layer receive the same array: copy it before changing it.
   */
  data: Float32Array;
  /** As computed: [N, H, W, C] for feature maps, [N, C] for vectors (`flatten` is in (H,W,C) order). */
  shape: number[];
  batchSize: number;
}

export type ForwardHook = (output: LayerOutput) => void | Promise<void>;

export interface HookHandle {
  /** Stops the hook; later runs no longer compute its layer unless another hook needs it. Idempotent. */
  remove(): void;
}

/** A batch of preprocessed images: NHWC float32, `batchSize * imageSize * imageSize * 3` values. */
export interface ExtractorInput {
  data: Float32Array;
  batchSize: number;
}

export interface RunResult {
  batchSize: number;
  /** Canonical layers computed and read back, in forward order (empty when no hook is registered). */
  layers: string[];
  /** Dispatching the forward pass (on asynchronous backends the compute itself lands in `readbackMs`). */
  inferenceMs: number;
  /** Waiting for the outputs and copying them to host memory. */
  readbackMs: number;
  /** Running the hooks. */
  hooksMs: number;
}

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

interface Hook {
  id: number;
  spec: string;
  canonical: string;
  order: number;
  fn: ForwardHook;
}

/**
 * The truncated model currently built. Views (multi-output models over the same layers and weights) serve
 * every hook set it covers: any set no deeper and needing no pre-activation that it fuses.
 */
interface Network {
  model: tfl.LayersModel;
  deepest: string;
  split: Set<string>;
  views: Map<string, tfl.LayersModel>;
}

/**
 * Runs VGG16 on batches and hands hooked layers' outputs to callbacks, like PyTorch's
 * `register_forward_hook`: several hooks and layers, one forward pass, the model truncated after the
 * deepest hooked layer. It owns every tensor it creates and checks after each run that none is left behind.
 * Runs are serialised; the extractor assumes it is the only user of TF.js in its process.
 */
export class Extractor {
  private readonly hooks = new Map<number, Hook>();
  private nextHookId = 0;
  private network: Network | undefined;
  private tail: Promise<unknown> = Promise.resolve();
  private disposed = false;
  private running = false;

  private constructor(
    private readonly options: ExtractorOptions,
    private readonly selection: BackendSelection,
    private readonly log: LogFn,
  ) {}

  /** Selects the backend and checks the options and the given weights; the model is built on first use. */
  static async create(options: ExtractorOptions): Promise<Extractor> {
    checkImageSize(options.imageSize);
    const log = options.log ?? silentLog;
    // Tensors that are given must be right; which ones must be present depends on the hooks (checked then).
    if (options.weights) {
      const weights = options.weights;
      validateWeights(weights, VGG16_WEIGHTS.filter((spec) => weights.has(spec.name)));
      const known = new Set(VGG16_WEIGHTS.map((spec) => spec.name));
      const unknown = [...weights.keys()].filter((name) => !known.has(name));
      if (unknown.length > 0) {
        log('weights: ignoring tensors VGG16 does not have', { tensors: unknown.slice(0, 10), count: unknown.length });
      }
    }
    const selection = await selectBackend(options.backend ?? 'auto', { log });
    return new Extractor(options, selection, log);
  }

  /** Name of the tfjs backend in use (`tensorflow`, `webgpu`, `wasm`, `cpu`). */
  get backend(): string {
    return this.selection.name;
  }

  /** Why that backend was chosen. */
  get backendReason(): string {
    return this.selection.reason;
  }

  get imageSize(): number {
    return this.options.imageSize;
  }

  /** Where the weights came from: `random, seed N` or the given description. */
  get weightsDescription(): string {
    const { weights, weightsDescription, seed } = this.options;
    if (!weights) return `random, seed ${seed ?? 0}`;
    return weightsDescription ?? `given weights (${weights.size} tensors)`;
  }

  /**
   * Calls `fn` with `layer`'s output after each run. `layer` is any spec (`features.9`, `block2_pool`,
   * `fc1_preact`). Throws `unknown_layer` for a bad spec and `invalid_weights` when the given weights lack
   * a tensor this layer needs.
   */
  registerForwardHook(layer: string, fn: ForwardHook): HookHandle {
    this.assertUsable();
    const spec = layer.trim();
    const info = layerInfo(spec);
    if (this.options.weights) validateWeights(this.options.weights, requiredWeights([info.name]));
    const id = this.nextHookId++;
    this.hooks.set(id, { id, spec, canonical: info.name, order: info.order, fn });
    return { remove: () => void this.hooks.delete(id) };
  }

  /**
   * Runs one forward pass over the batch, reads every hooked layer back to host memory, frees every tensor
   * it made, then calls the hooks in forward order (registration order within a layer). Throws
   * `tensor_leak` when the number of live tensors differs afterwards (hooks included).
   */
  run(input: ExtractorInput): Promise<RunResult> {
    return this.exclusive(() => this.forward(input, true));
  }

  /** One pass over a zero batch through the hooked layers without calling hooks: builds the model and lets
   * backends compile their kernels before timed work. */
  warmup(batchSize = 1): Promise<RunResult> {
    const size = batchSize * this.options.imageSize * this.options.imageSize * 3;
    return this.exclusive(() => this.forward({ data: new Float32Array(size), batchSize }, false));
  }

  /** Live tensors and their bytes on the backend (the whole process, as tfjs counts them). */
  memory(): MemoryInfo {
    const { numTensors, numBytes } = tf.memory();
    return { numTensors, numBytes };
  }

  /** The model built for the hooks so far, or undefined before the first run. */
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

  /**
   * Frees the model and its weights and drops the hooks; a run in progress finishes first (its weights are
   * freed when it ends). The extractor cannot be used afterwards.
   */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.hooks.clear();
    if (!this.running) this.disposeNetwork();
  }

  private exclusive<T>(work: () => Promise<T>): Promise<T> {
    const result = this.tail.then(async () => {
      this.assertUsable();
      this.running = true;
      try {
        return await work();
      } finally {
        this.running = false;
        if (this.disposed) this.disposeNetwork();
      }
    });
    this.tail = result.catch(() => undefined);
    return result;
  }

  private async forward(input: ExtractorInput, callHooks: boolean): Promise<RunResult> {
    this.checkInput(input);
    const hooks = [...this.hooks.values()].sort((a, b) => a.order - b.order || a.id - b.id);
    const layers = [...new Set(hooks.map((hook) => hook.canonical))];
    const empty: RunResult = { batchSize: input.batchSize, layers, inferenceMs: 0, readbackMs: 0, hooksMs: 0 };
    if (layers.length === 0) return empty;

    const model = this.modelFor(layers);
    const before = this.memory();
    const size = this.options.imageSize;
    let tensors: tf.Tensor[] = [];
    let outputs: { data: Float32Array; shape: number[] }[];
    const started = performance.now();
    let inferred = started;
    try {
      tensors = tf.tidy(() => {
        const x = tf.tensor4d(input.data, [input.batchSize, size, size, 3], 'float32');
        const result = model.execute(x, model.outputs.map((output) => output.name));
        return Array.isArray(result) ? result : [result];
      });
      inferred = performance.now();
      // Outside tidy: reading back is asynchronous.
      const values = await Promise.all(tensors.map((tensor) => tensor.data<'float32'>()));
      outputs = tensors.map((tensor, i) => ({ data: values[i] ?? new Float32Array(0), shape: [...tensor.shape] }));
    } finally {
      tf.dispose(tensors);
    }
    const readBack = performance.now();

    if (callHooks) {
      for (const hook of hooks) {
        const output = outputs[layers.indexOf(hook.canonical)];
        if (!output) continue;
        await hook.fn({ spec: hook.spec, canonical: hook.canonical, ...output, batchSize: input.batchSize });
      }
    }
    const finished = performance.now();

    this.checkLeak(before);
    return { ...empty, inferenceMs: inferred - started, readbackMs: readBack - inferred, hooksMs: finished - readBack };
  }

  private checkInput({ data, batchSize }: ExtractorInput): void {
    const size = this.options.imageSize;
    if (!Number.isInteger(batchSize) || batchSize < 1) {
      throw new ValidationError(ErrorCode.InvalidRequest, `batch size must be a positive integer, got ${batchSize}`);
    }
    const expected = batchSize * size * size * 3;
    if (!(data instanceof Float32Array) || data.length !== expected) {
      const got = data instanceof Float32Array ? `${data.length} values` : 'not a Float32Array';
      throw new ValidationError(
        ErrorCode.InvalidRequest,
        `input must be ${batchSize}x${size}x${size}x3 = ${expected} float32 values (NHWC), got ${got}`,
      );
    }
  }

  private checkLeak(before: MemoryInfo): void {
    const after = this.memory();
    if (after.numTensors === before.numTensors) return;
    const kept = after.numTensors - before.numTensors;
    const change = `${kept > 0 ? '+' : ''}${kept}, ${after.numBytes - before.numBytes} bytes`;
    throw new LayertapError(
      ErrorCode.TensorLeak,
      `a run changed the live tensor count from ${before.numTensors} to ${after.numTensors} (${change}); the ` +
        'extractor disposed its own tensors, so a hook or code running beside it kept some',
    );
  }

  /** A model whose outputs are `layers` (canonical, forward order), reusing the built network if it can. */
  private modelFor(layers: string[]): tfl.LayersModel {
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
  private rebuild(layers: string[], split: string[]): Network {
    const previous = this.network;
    const outputs = [...layers];
    if (previous && !outputs.includes(previous.deepest)) outputs.push(previous.deepest);
    const splitAll = new Set([...split, ...(previous?.split ?? [])]);
    // Free the old weights first: peak memory is then one network, not two.
    this.disposeNetwork();
    const started = performance.now();
    const model = buildVgg16({
      imageSize: this.options.imageSize,
      outputs,
      weights: this.options.weights,
      seed: this.options.seed ?? 0,
      split: [...splitAll],
    });
    this.network = { model, deepest: deepestLayer(outputs), split: splitAll, views: new Map() };
    this.log('built VGG16', {
      model: model.name,
      layers: model.layers.length,
      weights: this.weightsDescription,
      backend: this.backend,
      ms: Math.round(performance.now() - started),
    });
    return this.network;
  }

  private disposeNetwork(): void {
    // Views share the network's layers; disposing the network frees the weights once.
    this.network?.model.dispose();
    this.network = undefined;
  }

  private assertUsable(): void {
    if (this.disposed) throw new LayertapError(ErrorCode.InferenceFailed, 'the extractor has been disposed');
  }
}
