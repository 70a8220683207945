// The Extractor: PyTorch's register_forward_hook for any model descriptor (VGG16, ResNet-50), on TF.js or ONNX Runtime, with host-memory
// outputs and strict tensor accounting.
import {
  EngineFault,
  ErrorCode,
  LayertapError,
  ValidationError,
  describeError,
  type BackendName,
  type EngineInfo,
  type EngineName,
  type ModelName,
} from '@layertap/contracts';
import { silentLog, type LogFn, getModel, type ModelDescriptor, validateWeights, type WeightsMap } from '@layertap/model';
import type { InferenceEngine, MemoryInfo, ModelDescription, TensorLayout } from './engine';
import { NullEngine } from './null-engine';
import { OnnxEngine } from './onnx-engine';
import { checkProvider } from './onnx-runtime';
import { EngineChain, NoEngineError, defaultThreads, type EngineChoice } from './select-engine';
import { TfjsEngine } from './tfjs-engine';
import { verifyEngine } from './verify-engine';

export type { MemoryInfo, ModelDescription } from './engine';

export interface ExtractorOptions {
  /** The model (its layer table, weights and builders): a built-in's name or a descriptor (an ONNX file's). Default `vgg16`. */
  model?: ModelName | ModelDescriptor;
  /**
   * What runs the model: `onnx` (ONNX Runtime), `tfjs`, `null` (zeros, for measuring the pipeline) or `auto`,
   * the fastest that works here (see `AUTO_ORDER` in @layertap/contracts). Default `auto`.
   */
  engine?: EngineName;
  /**
   * The engine's backend: an ONNX Runtime provider (`cpu`, `webgpu`, `cuda`) or a TF.js backend
   * (`tensorflow`, `webgpu`, `wasm`, `cpu`). Default `auto`. A named `webgpu` may run on a software adapter
   * (with a warning); `auto` never does.
   */
  backend?: BackendName;
  /** Engines not to use (`onnx/webgpu`), with why they were dropped: the next one in the chain is used. */
  exclude?: ReadonlyMap<string, string>;
  /**
   * Layers (any spec) of the proof run: the chosen engine runs them on a small seeded input beside ONNX
   * Runtime on the CPU and must agree within 1e-4 of the largest value, or it is dropped and the next engine
   * is tried. Default: no proof run.
   */
  verify?: readonly string[];
  /** TF.js WebGPU: convolutions through the separate im2col shader (see `TfjsEngineOptions.im2col`). */
  im2col?: boolean;
  /** ONNX Runtime compute threads. Default: the number of cores this process may use. */
  threads?: number;
  /**
   * ONNX Runtime: most images per session run; larger batches run in slices into one output buffer, which
   * bounds activation memory. Default 4 on the CPU provider, the whole batch on GPU providers.
   */
  runBatch?: number;
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
  /**
   * As computed: feature maps are [N, H, W, C] with layout `nhwc` (TF.js) or [N, C, H, W] with layout `nchw`
   * (ONNX Runtime); vectors are [N, C] (`flatten` is in Keras (H,W,C) order on every engine).
   */
  shape: number[];
  /** Memory order of a 4-D `shape`; 2-D outputs are [N, C] whatever it says. */
  layout: TensorLayout;
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

interface Hook {
  id: number;
  spec: string;
  canonical: string;
  order: number;
  fn: ForwardHook;
}

/**
 * Runs a model on batches and hands hooked layers' outputs to callbacks, like PyTorch's
 * `register_forward_hook`: several hooks and layers, one forward pass, the model truncated after the
 * deepest hooked layer, on TF.js or ONNX Runtime (the hooks, specs, weights and outputs are the same on both;
 * only the memory order of feature maps, `LayerOutput.layout`, differs). It owns every tensor it creates and
 * checks after each run that none is left behind. Runs are serialised; with the tfjs engine the extractor
 * assumes it is the only user of TF.js in its process.
 */
export class Extractor {
  private readonly hooks = new Map<number, Hook>();
  private nextHookId = 0;
  private tail: Promise<unknown> = Promise.resolve();
  private disposed = false;
  private running = false;

  private constructor(
    private readonly options: ExtractorOptions,
    private readonly runner: InferenceEngine,
    /** Which engine runs, on what device, and why. */
    readonly info: EngineInfo,
    private readonly model: ModelDescriptor,
  ) {}

  /** Chooses the engine and backend and checks the options and the given weights; the model is built on first use. */
  static async create(options: ExtractorOptions): Promise<Extractor> {
    const model = typeof options.model === 'object' ? options.model : getModel(options.model);
    model.checkImageSize(options.imageSize);
    const tfjsRefusal = model.engines.tfjs === true ? undefined : model.engines.tfjs;
    if (tfjsRefusal && options.engine === 'tfjs') throw new ValidationError(ErrorCode.InvalidRequest, tfjsRefusal);
    const log = options.log ?? silentLog;
    if (options.threads !== undefined && !(Number.isInteger(options.threads) && options.threads >= 1)) {
      throw new ValidationError(ErrorCode.InvalidRequest, `threads must be a positive integer, got ${options.threads}`);
    }
    if (options.runBatch !== undefined && !(Number.isInteger(options.runBatch) && options.runBatch >= 1)) {
      throw new ValidationError(ErrorCode.InvalidRequest, `runBatch must be a positive integer, got ${options.runBatch}`);
    }
    // Tensors that are given must be right; which ones must be present depends on the hooks (checked then).
    if (options.weights) {
      const weights = options.weights;
      validateWeights(weights, model.weights.filter((spec) => weights.has(spec.name)), model.title);
      const known = new Set(model.weights.map((spec) => spec.name));
      const unknown = [...weights.keys()].filter((name) => !known.has(name));
      if (unknown.length > 0) {
        log(`weights: ignoring tensors ${model.name} does not have`, { tensors: unknown.slice(0, 10), count: unknown.length });
      }
    }
    const chain = EngineChain.plan({
      engine: options.engine ?? 'auto',
      backend: options.backend ?? 'auto',
      threads: options.threads ?? defaultThreads(),
      ...(options.exclude ? { exclude: options.exclude } : {}),
      log,
    });
    const proofLayers = options.verify ? canonicalLayers(options.verify, model) : undefined;
    for (;;) {
      const choice = await chain.next();
      if (!choice) throw new NoEngineError(chain.reasons);
      if (tfjsRefusal && choice.target.engine === 'tfjs') {
        chain.drop(choice, tfjsRefusal);
        continue;
      }
      const runner = openEngine(choice, options, model, log);
      let proof = '';
      if (proofLayers && needsProof(choice)) {
        const result = await prove(runner, options, model, proofLayers, log);
        if (!result.ok) {
          runner.dispose();
          log(`engine ${choice.label} dropped: ${result.reason}`, { engine: choice.label });
          chain.drop(choice, result.reason);
          continue;
        }
        proof = `; ${result.note}`;
      }
      const info: EngineInfo = {
        engine: choice.target.engine,
        backend: choice.target.backend,
        device: choice.device,
        reason: `${choice.reason}${proof}`,
        warnings: choice.warnings,
      };
      return new Extractor(options, runner, info, model);
    }
  }

  /** The engine that runs the model: `onnx`, `tfjs` or `null`. */
  get engine(): InferenceEngine['engine'] {
    return this.runner.engine;
  }

  /**
   * The tfjs backend (`tensorflow`, `webgpu`, `wasm`, `cpu`) or ONNX Runtime provider (`cpu`, `webgpu`,
   * `cuda`) in use.
   */
  get backend(): string {
    return this.runner.backend;
  }

  /** Why that engine and backend were chosen (what was passed over, and the proof run). */
  get backendReason(): string {
    return this.info.reason;
  }

  /** ONNX Runtime's compute threads; undefined on TF.js (wasm runs one thread, the others decide). */
  get threads(): number | undefined {
    return this.runner.threads;
  }

  /** `tfjs/wasm`, `onnx/cpu`: engine and backend in one label (for logs, results and benchmarks). */
  get label(): string {
    return `${this.runner.engine}/${this.runner.backend}`;
  }

  get imageSize(): number {
    return this.options.imageSize;
  }

  /** Where the weights came from: `random, seed N` or the given description. */
  get weightsDescription(): string {
    return describeWeights(this.options);
  }

  /**
   * Calls `fn` with `layer`'s output after each run. `layer` is any spec (`features.9`, `block2_pool`,
   * `fc1_preact`). Throws `unknown_layer` for a bad spec and `invalid_weights` when the given weights lack
   * a tensor this layer needs.
   */
  registerForwardHook(layer: string, fn: ForwardHook): HookHandle {
    this.assertUsable();
    const spec = layer.trim();
    const info = this.model.layer(spec);
    if (this.options.weights) validateWeights(this.options.weights, this.model.requiredWeights([info.name]), this.model.title);
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
   * backends compile their kernels before timed work. Once per process is enough. */
  warmup(batchSize = 1): Promise<RunResult> {
    const size = batchSize * this.options.imageSize * this.options.imageSize * 3;
    return this.exclusive(() => this.forward({ data: new Float32Array(size), batchSize }, false));
  }

  /**
   * Live tensors and their bytes: tfjs' process-wide count, or for ONNX Runtime the OrtValues this
   * extractor holds (none between runs) plus the weight bytes of its session.
   */
  memory(): MemoryInfo {
    return this.runner.memory();
  }

  /** The model built for the hooks so far, or undefined before the first run. */
  describeModel(): ModelDescription | undefined {
    return this.runner.describeModel();
  }

  /**
   * Frees the model and its weights and drops the hooks; a run in progress finishes first (its weights are
   * freed when it ends). The extractor cannot be used afterwards.
   */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.hooks.clear();
    if (!this.running) this.runner.dispose();
  }

  private exclusive<T>(work: () => Promise<T>): Promise<T> {
    const result = this.tail.then(async () => {
      this.assertUsable();
      this.running = true;
      try {
        return await work();
      } finally {
        this.running = false;
        if (this.disposed) this.runner.dispose();
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

    await this.engineCall(() => this.runner.prepare(layers));
    const before = this.memory();
    const { outputs, inferenceMs, readbackMs } = await this.engineCall(() => this.runner.run(layers, input.data, input.batchSize));
    const readBack = performance.now();
    if (callHooks) {
      for (const hook of hooks) {
        const output = outputs[layers.indexOf(hook.canonical)];
        if (!output) continue;
        await hook.fn({ spec: hook.spec, canonical: hook.canonical, ...output, batchSize: input.batchSize });
      }
    }
    const hooksMs = performance.now() - readBack;
    this.checkLeak(before);
    return { ...empty, inferenceMs, readbackMs, hooksMs };
  }

  /**
   * Runs engine code; whatever it throws besides a bad request is the engine's fault (a kernel error, a lost
   * device, a refused graph), not the input's: an `EngineFault`, which callers treat apart from bad samples.
   */
  private async engineCall<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (err) {
      if (err instanceof ValidationError || err instanceof EngineFault) throw err;
      throw new EngineFault(`${this.label} failed: ${describeError(err).split('\n')[0]}`, { cause: err });
    }
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

  private assertUsable(): void {
    if (this.disposed) throw new LayertapError(ErrorCode.InferenceFailed, 'the extractor has been disposed');
  }
}

/** Canonical names in forward order, each once. */
function canonicalLayers(specs: readonly string[], model: ModelDescriptor): string[] {
  const layers = [...new Set(specs.map((spec) => model.layer(spec).name))];
  return layers.sort((a, b) => model.layer(a).order - model.layer(b).order);
}

/** The CPU engine is the reference itself, and the null engine computes nothing to compare. */
function needsProof(choice: EngineChoice): boolean {
  return choice.label !== 'onnx/cpu' && choice.target.engine !== 'null';
}

/** Builds the engine for a choice (the model itself is built on first use). */
function openEngine(choice: EngineChoice, options: ExtractorOptions, model: ModelDescriptor, log: LogFn): InferenceEngine {
  const common = {
    model,
    imageSize: options.imageSize,
    ...(options.weights ? { weights: options.weights } : {}),
    weightsDescription: describeWeights(options),
    seed: options.seed ?? 0,
    log,
  };
  switch (choice.target.engine) {
    case 'null':
      return new NullEngine(options.imageSize, choice.reason, model);
    case 'tfjs':
      if (!choice.selection) throw new LayertapError(ErrorCode.InferenceFailed, `internal: ${choice.label} chosen without a TF.js backend`);
      return new TfjsEngine(
        {
          ...common,
          ...(choice.maxBindingBytes ? { maxBindingBytes: choice.maxBindingBytes } : {}),
          ...(options.im2col ? { im2col: true } : {}),
        },
        { ...choice.selection, reason: choice.reason },
      );
    case 'onnx':
      return new OnnxEngine({
        ...common,
        provider: choice.target.backend as 'cpu' | 'webgpu' | 'cuda',
        threads: choice.threads ?? options.threads ?? defaultThreads(),
        ...(options.runBatch ? { runBatch: options.runBatch } : {}),
        ...(choice.maxBindingBytes ? { maxBindingBytes: choice.maxBindingBytes } : {}),
        reason: choice.reason,
      });
    default:
      throw new LayertapError(ErrorCode.InferenceFailed, `internal: no engine ${String(choice.target.engine)}`);
  }
}

/**
 * The proof run against ONNX Runtime on the CPU, built with the same weights; without it (onnxruntime-node
 * missing), an engine runs unproven and says so.
 */
async function prove(candidate: InferenceEngine, options: ExtractorOptions, model: ModelDescriptor, layers: string[], log: LogFn): Promise<{ ok: true; note: string } | { ok: false; reason: string }> {
  const cpu = await checkProvider('cpu');
  if (!cpu.available) return { ok: true, note: `no proof run: ONNX Runtime's CPU provider, the reference, is not available (${cpu.reason})` };
  const reference = new OnnxEngine({
    model,
    imageSize: options.imageSize,
    ...(options.weights ? { weights: options.weights } : {}),
    weightsDescription: describeWeights(options),
    seed: options.seed ?? 0,
    log: silentLog,
    provider: 'cpu',
    threads: options.threads ?? defaultThreads(),
    reason: 'proof-run reference',
  });
  try {
    const result = await verifyEngine(candidate, reference, layers, options.imageSize);
    if (!result.ok) return result;
    log('engine proof run agreed with onnx/cpu', { layers, maxError: result.maxError, ms: Math.round(result.ms) });
    return { ok: true, note: `proof run on ${layers.join(', ')} agreed with onnx/cpu (max error ${result.maxError.toExponential(1)} of max value)` };
  } finally {
    reference.dispose();
  }
}

function describeWeights(options: ExtractorOptions): string {
  const { weights, weightsDescription, seed } = options;
  if (!weights) return `random, seed ${seed ?? 0}`;
  return weightsDescription ?? `given weights (${weights.size} tensors)`;
}
