// The ONNX Runtime engine: the graph a model descriptor generates (`buildOnnx`), run by onnxruntime-node on
// the CPU, WebGPU or CUDA provider. Outputs are NCHW, as the graph computes them.
import type { InferenceSession, Tensor } from 'onnxruntime-node';
import { ErrorCode, LayertapError } from '@layertap/contracts';
import { imagesWithin, largestActivationBytes, type LogFn, type WeightsMap, getModel, type ModelDescriptor, ONNX_INPUT_NAME, type OnnxBuildOutput } from '@layertap/model';
import type { EngineOutput, EngineRun, InferenceEngine, MemoryInfo, ModelDescription, OnnxProvider } from './engine';
import { loadOrt, type OrtModule } from './onnx-runtime';

/** Images per ONNX Runtime call on the CPU provider: larger batches run in slices of this many. */
export const DEFAULT_CPU_RUN_BATCH = 4;

/** WebGPU's default `maxStorageBufferBindingSize`: what a binding may hold when the adapter's limit is unknown. */
export const WEBGPU_DEFAULT_BINDING_BYTES = 128 * 1024 ** 2;

export interface OnnxEngineOptions {
  imageSize: number;
  weights?: WeightsMap;
  /** For the build log line. */
  weightsDescription: string;
  seed: number;
  log: LogFn;
  provider: OnnxProvider;
  /** Intra-op threads (the CPU provider's compute threads). */
  threads: number;
  /**
   * Most images per `session.run`: a larger batch runs in slices written into one output buffer, which bounds
   * ONNX Runtime's activation memory (block1's maps are 12.8 MB per image) without changing the results.
   * Default: 4 on the CPU provider (measured: its throughput does not grow with the slice), the whole batch on
   * GPU providers.
   */
  runBatch?: number;
  /**
   * WebGPU: the adapter's largest binding. ONNX Runtime's WebGPU provider binds each tensor whole and fails a
   * Conv whose output is larger (`raw_hash_map<>::at`, seen on llvmpipe's 128 MiB at 11 images of 224 px),
   * so slices are cut to fit it. Default `WEBGPU_DEFAULT_BINDING_BYTES`.
   */
  maxBindingBytes?: number;
  /** The model (default VGG16). */
  model?: ModelDescriptor;
  /** Why this provider was chosen (for `reason`). */
  reason: string;
}

interface Session {
  session: InferenceSession;
  /** Graph outputs (canonical names) and their per-sample shapes. */
  outputs: Map<string, OnnxBuildOutput>;
  deepest: string;
  description: ModelDescription;
  weightBytes: number;
}

/**
 * Runs a model with ONNX Runtime. The session is built for the hooked layers (they are the graph outputs, and
 * nothing past the deepest is in the graph) and rebuilt when a run asks for a layer it does not output.
 * Every OrtValue a run creates (input slices, outputs) is disposed before the run returns: `memory()`
 * counts them, so between runs it reports no live tensors and the session's weight bytes.
 */
export class OnnxEngine implements InferenceEngine {
  readonly engine = 'onnx';
  private current: Session | undefined;
  private liveTensors = 0;
  private liveBytes = 0;

  constructor(
    private readonly options: OnnxEngineOptions,
    private readonly ort: OrtModule = loadOrt(),
  ) {}

  get backend(): string {
    return this.options.provider;
  }

  private model(): ModelDescriptor {
    return this.options.model ?? getModel();
  }

  get reason(): string {
    return this.options.reason;
  }

  get threads(): number {
    return this.options.threads;
  }

  async prepare(layers: readonly string[]): Promise<void> {
    await this.sessionFor(layers);
  }

  async run(layers: readonly string[], data: Float32Array, batchSize: number): Promise<EngineRun> {
    const session = await this.sessionFor(layers);
    const specs = layers.map((layer) => session.outputs.get(layer) ?? missingOutput(layer));
    const sample = this.options.imageSize * this.options.imageSize * 3;
    const step = this.runBatchSize(batchSize, layers);
    let inferenceMs = 0;
    let readbackMs = 0;
    const buffers: (Float32Array | undefined)[] = specs.map(() => undefined);
    for (let start = 0; start < batchSize; start += step) {
      const n = Math.min(step, batchSize - start);
      const began = performance.now();
      const input = this.track(
        new this.ort.Tensor('float32', data.subarray(start * sample, (start + n) * sample), [n, this.options.imageSize, this.options.imageSize, 3]),
      );
      let result: InferenceSession.ReturnType | undefined;
      try {
        result = await session.session.run({ [ONNX_INPUT_NAME]: input }, [...layers]);
        for (const value of Object.values(result)) this.track(value as Tensor);
        const ran = performance.now();
        specs.forEach((spec, i) => {
          const values = outputData(result?.[spec.name], spec.name);
          // One slice: hand ONNX Runtime's own output over, no copy.
          if (n === batchSize) buffers[i] = values;
          else {
            const perSample = values.length / n;
            buffers[i] ??= new Float32Array(batchSize * perSample);
            buffers[i]?.set(values, start * perSample);
          }
        });
        inferenceMs += ran - began;
        readbackMs += performance.now() - ran;
      } finally {
        this.release(input);
        for (const value of Object.values(result ?? {})) this.release(value as Tensor);
      }
    }
    const outputs = specs.map(
      (spec, i): EngineOutput => ({
        data: buffers[i] ?? new Float32Array(0),
        shape: [batchSize, ...spec.sampleShape],
        layout: 'nchw',
      }),
    );
    return { outputs, inferenceMs, readbackMs };
  }

  memory(): MemoryInfo {
    return { numTensors: this.liveTensors, numBytes: this.liveBytes + (this.current?.weightBytes ?? 0) };
  }

  describeModel(): ModelDescription | undefined {
    return this.current?.description;
  }

  dispose(): void {
    const current = this.current;
    this.current = undefined;
    // release() only frees native memory; nothing waits on it.
    void current?.session.release().catch(() => undefined);
  }

  /** Images per `session.run`: the option, the CPU default, or the whole batch, within WebGPU's binding limit. */
  runBatchSize(batchSize: number, layers: readonly string[]): number {
    const { provider, runBatch } = this.options;
    let limit = runBatch ?? (provider === 'cpu' ? DEFAULT_CPU_RUN_BATCH : batchSize);
    if (provider === 'webgpu') {
      const fits = imagesWithin(this.options.maxBindingBytes ?? WEBGPU_DEFAULT_BINDING_BYTES, largestActivationBytes(layers, this.options.imageSize, this.model()));
      limit = Math.min(limit, fits);
    }
    return Math.max(1, Math.min(limit, batchSize));
  }

  private track<T extends Tensor>(tensor: T): T {
    this.liveTensors++;
    this.liveBytes += tensor.size * 4;
    return tensor;
  }

  private release(tensor: Tensor): void {
    this.liveTensors--;
    this.liveBytes -= tensor.size * 4;
    tensor.dispose();
  }

  /**
   * The session for `layers`: the current one when it outputs them all and goes no deeper (ONNX Runtime runs
   * every node of a graph whatever is fetched), else a new one. A new one at the same depth keeps the old
   * outputs too, so alternating hook sets of one depth do not rebuild over and over.
   */
  private async sessionFor(layers: readonly string[]): Promise<Session> {
    const model = this.model();
    const deepest = layers.reduce((a, b) => (model.layer(b).order > model.layer(a).order ? b : a));
    const current = this.current;
    if (current && current.deepest === deepest && layers.every((layer) => current.outputs.has(layer))) return current;
    const outputs = new Set(layers);
    if (current?.deepest === deepest) for (const layer of current.outputs.keys()) outputs.add(layer);
    // Forward order, as the table gives it.
    const ordered = [...outputs].sort((a, b) => model.layer(a).order - model.layer(b).order);
    this.dispose();
    this.current = await this.build(ordered);
    return this.current;
  }

  private async build(outputs: string[]): Promise<Session> {
    const started = performance.now();
    const graph = this.model().buildOnnx({
      imageSize: this.options.imageSize,
      outputs,
      ...(this.options.weights ? { weights: this.options.weights } : {}),
      seed: this.options.seed,
    });
    const generated = performance.now();
    let session: InferenceSession;
    try {
      session = await this.ort.InferenceSession.create(graph.bytes, this.sessionOptions());
    } catch (err) {
      throw new LayertapError(ErrorCode.InferenceFailed, `ONNX Runtime refused the generated ${this.model().title} graph: ${String(err)}`, { cause: err });
    }
    this.options.log(`built ${this.model().title}`, {
      engine: 'onnx',
      model: graph.name,
      nodes: graph.nodes.length,
      weights: this.options.weightsDescription,
      backend: this.backend,
      threads: this.options.threads,
      graphMs: Math.round(generated - started),
      sessionMs: Math.round(performance.now() - generated),
    });
    return {
      session,
      outputs: new Map(graph.outputs.map((output) => [output.name, output])),
      deepest: graph.deepest,
      weightBytes: graph.weightBytes,
      description: {
        name: graph.name,
        layers: graph.layers,
        weights: graph.weights,
      },
    };
  }

  private sessionOptions(): InferenceSession.SessionOptions {
    return {
      executionProviders: [this.options.provider],
      intraOpNumThreads: this.options.threads,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      // 'all' lets the CPU provider convert the convolutions to its blocked NCHWc kernels.
      graphOptimizationLevel: 'all',
      logSeverityLevel: 3,
      // Idle compute threads sleep instead of spinning: VGG16's operators are long, so waking costs nothing
      // measurable, and the cores stay free for decoding and writing, which share them in a worker.
      extra: { session: { intra_op: { allow_spinning: '0' } } },
    };
  }
}

function outputData(value: Tensor | undefined, name: string): Float32Array {
  if (value?.type !== 'float32' || !(value.data instanceof Float32Array)) {
    throw new LayertapError(ErrorCode.InferenceFailed, `ONNX Runtime returned no float32 output for ${name}`);
  }
  return value.data;
}

function missingOutput(name: string): never {
  throw new LayertapError(ErrorCode.InferenceFailed, `internal: the ONNX session has no output ${name}`);
}
