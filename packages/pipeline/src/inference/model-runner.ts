// Loads the model a chunk asks for and runs its batches: what the inference process does, and what
// `layertap bench` does in its own process. Loads and runs happen one at a time, in the order asked, so a
// caller may send the next batch before the previous one is back.
import { EngineFault, type EngineInfo } from '@layertap/contracts';
import { normalizePixels } from '@layertap/imaging';
import { Extractor, resolveEngine } from '@layertap/engines';
import { getModel, loadWeights } from '@layertap/model';
import { modelFor, readOnnxFile } from '@layertap/model/models';
import type { FetchBytes } from '@layertap/model/weights';
import { storeBatch, type StoredBatch } from '../stored-batch';
import { modelKey, wallClockMs, type ChildUsage, type EngineProbe, type InferResult, type ModelInfo, type ModelSpec } from './protocol';

export interface ModelRunnerOptions {
  /** Downloads remote weights (http(s), s3); they are cached on disk by content hash. */
  fetchBytes?: FetchBytes;
  /** Told about engine choices and model builds. Default: silent. */
  log?: (msg: string, fields?: object) => void;
  /** An engine (`onnx/cpu`) whose every batch run fails as an engine fault: a drill (see `childFaultDrill`). */
  faultDrill?: string;
  /** Memory for the stored arrays the runner converts (float16), `bytes` long. Default: new each batch. */
  allocate?: (bytes: number) => ArrayBuffer;
}

export class ModelRunner {
  private current: { key: string; extractor: Extractor; info: ModelInfo; spec: ModelSpec } | undefined;
  private collected: StoredBatch[] = [];
  private tail: Promise<unknown> = Promise.resolve();
  /**
   * The normalised input, reused from batch to batch (runs are serial, and engines are done with their input
   * when a run resolves): a new 9.6 MB array per batch of 16 cost more in page faults than normalising.
   */
  private input = new Float32Array(0);

  constructor(private readonly options: ModelRunnerOptions = {}) {}

  /** Loads (or keeps) the model for `spec`: chooses the engine, proves it on the spec's layers, warms it up. */
  load(spec: ModelSpec): Promise<ModelInfo> {
    return this.serial(() => this.loadNow(spec));
  }

  /**
   * Runs one batch through the loaded model: 8-bit pixels (normalised here, as the spec's preprocessing says)
   * or float32 model input. `receivedAt`: when the request arrived (for transfer times).
   */
  infer(batch: Uint8Array | Float32Array, batchSize: number, receivedAt = wallClockMs()): Promise<InferResult> {
    return this.serial(() => this.inferNow(batch, batchSize, receivedAt));
  }

  /** The engine a request would get here, and why, without building a model (for the worker's start log). */
  async probe(request: EngineProbe): Promise<Omit<EngineInfo, 'warnings'> & { warnings: string[] }> {
    const choice = await resolveEngine({ engine: request.engine, backend: request.backend, ...(request.threads ? { threads: request.threads } : {}) });
    return { engine: choice.target.engine, backend: choice.target.backend, device: choice.device, reason: choice.reason, warnings: choice.warnings };
  }

  /** CPU time and memory of this process. */
  usage(): ChildUsage {
    const cpu = process.cpuUsage();
    return { cpuUserMs: cpu.user / 1000, cpuSystemMs: cpu.system / 1000, rssBytes: process.memoryUsage().rss };
  }

  /** Frees the model. */
  dispose(): void {
    this.current?.extractor.dispose();
    this.current = undefined;
  }

  private serial<T>(work: () => Promise<T>): Promise<T> {
    const run = this.tail.then(work);
    this.tail = run.catch(() => undefined);
    return run;
  }

  private async loadNow(spec: ModelSpec): Promise<ModelInfo> {
    const key = modelKey(spec);
    if (this.current?.key === key) {
      // The same model for another dataset: its preprocessing and storage settings are this spec's.
      this.current.spec = spec;
      return { ...this.current.info, fresh: false };
    }
    this.dispose();
    const started = Date.now();
    // A user's ONNX file carries its weights: read whole, checked against the sha256 the plan recorded.
    const onnx = spec.onnx
      ? await readOnnxFile(spec.onnx.uri, { sha256: spec.onnx.sha256, ...(this.options.fetchBytes ? { fetchBytes: this.options.fetchBytes } : {}) })
      : undefined;
    const weights = spec.weights && !spec.onnx
      ? await loadWeights(spec.weights, { layers: spec.layers.map((l) => l.canonical), ...(spec.model ? { model: getModel(spec.model) } : {}), ...(this.options.fetchBytes ? { fetchBytes: this.options.fetchBytes } : {}) })
      : undefined;
    const extractor = await Extractor.create({
      ...(onnx ? { model: modelFor(spec, onnx.bytes) } : spec.model ? { model: spec.model } : {}),
      engine: spec.engine,
      backend: spec.backend,
      ...(spec.exclude?.length ? { exclude: new Map(spec.exclude) } : {}),
      ...(spec.im2col ? { im2col: true } : {}),
      // The proof run: the chosen engine must agree with ONNX Runtime on the CPU on these layers first.
      verify: spec.layers.map((l) => l.canonical),
      ...(spec.threads ? { threads: spec.threads } : {}),
      imageSize: spec.imageSize,
      seed: spec.seed,
      ...(weights ? { weights: weights.tensors, weightsDescription: weights.description } : {}),
      ...(this.options.log ? { log: this.options.log } : {}),
    });
    spec.layers.forEach((layer, i) => {
      extractor.registerForwardHook(layer.canonical, (out) => {
        this.collected[i] = storeBatch({ spec: layer.spec, canonical: out.canonical, data: out.data, shape: out.shape, layout: out.layout }, this.store(), this.options.allocate);
      });
    });
    await extractor.warmup();
    const info: ModelInfo = {
      backend: `${extractor.engine}:${extractor.backend}`,
      engine: extractor.info,
      fresh: true,
      backendReason: extractor.backendReason,
      weights: onnx
        ? { description: `${onnx.source} (ONNX, weights in the file, sha256 ${onnx.sha256})`, sha256: onnx.sha256 }
        : weights
          ? { description: weights.description, sha256: weights.sha256 }
          : { description: extractor.weightsDescription },
      loadMs: Date.now() - started,
    };
    this.current = { key, extractor, info, spec };
    return info;
  }

  private inputScratch(values: number): Float32Array {
    if (this.input.length < values) this.input = new Float32Array(values);
    return this.input.subarray(0, values);
  }

  private store(): ModelSpec['store'] {
    if (!this.current) throw new Error('no model loaded');
    return this.current.spec.store;
  }

  private async inferNow(batch: Uint8Array | Float32Array, batchSize: number, receivedAt: number): Promise<InferResult> {
    const current = this.current;
    if (!current) throw new Error('no model loaded: send a load request first');
    const startedAt = wallClockMs();
    if (this.options.faultDrill && this.options.faultDrill === current.extractor.label) {
      throw new EngineFault(`fault drill (LAYERTAP_FAULT_DRILL=${this.options.faultDrill}): ${current.extractor.label} fails every batch`);
    }
    this.collected = [];
    const data = batch instanceof Uint8Array ? normalizePixels(batch, current.spec.preprocess, this.inputScratch(batch.length), current.spec.normalize) : batch;
    const timings = await current.extractor.run({ data, batchSize });
    const outputs = this.collected;
    this.collected = [];
    return {
      outputs,
      inferenceMs: timings.inferenceMs,
      readbackMs: timings.readbackMs,
      memory: { ...current.extractor.memory(), childRssBytes: process.memoryUsage().rss },
      times: { receivedAt, startedAt, finishedAt: wallClockMs() },
    };
  }
}
