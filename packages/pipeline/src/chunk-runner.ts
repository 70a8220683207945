// One chunk job, from dequeued to recorded: load the model, run the samples through the BatchRunner, store
// each sample's arrays (or the chunk's shard), write the chunk's manifest part, record the result.
import { ChunkResult, ErrorCode, describeError, isLayertapError, storedUri, type BackendName, type ChunkJob, type EngineName, type Sample } from '@layertap/contracts';
import type { Logger } from '@layertap/config';
import { PREPROCESSING, decodeImage, fitPixels, type ImageFetcher } from '@layertap/imaging';
import { budgetedBatchSize, type BudgetedBatch } from '@layertap/model/batch-size';
import { modelFor } from '@layertap/model/models';
import type { DatasetStore } from '@layertap/queue';
import { npyByteLength, npyHeader, partKey, sampleKey, ShardBuilder, shardKey, shardOutputRef, shardTensorName, type ObjectBody, type OutputWriter } from '@layertap/storage';
import { BatchRunner, type PreparedItem } from './batch-runner';
import { ChunkLedger } from './chunk-ledger';
import type { InferResult, ModelInfo, ModelSpec } from './inference/protocol';
import type { Limiter } from './limiter';
import type { ChunkMetrics } from './metrics';
import { sampleNpy, storedSample } from './stored-batch';

/** What runs a chunk's batches: an inference process (InferenceHost) or anything speaking its interface. */
export interface InferenceClient {
  load(spec: ModelSpec): Promise<ModelInfo>;
  /** `batch`: 8-bit RGB pixels (NHWC) of the images, after resizing and cropping. */
  infer(batch: Uint8Array, batchSize: number): Promise<InferResult>;
  /** Takes back a result's memory once it is stored (the next batches are received into it). Optional. */
  release?(result: InferResult): void;
}

/** What a chunk records in Redis (the DatasetStore). */
export type ChunkStore = Pick<DatasetStore, 'isCancelled' | 'recordEngine' | 'recordChunk' | 'setChunkProgress'>;

export interface ChunkRunnerOptions {
  fetcher: ImageFetcher;
  inference: InferenceClient;
  store: ChunkStore;
  /** The writer for an output URI (cached by the caller). */
  output: (uri: string) => OutputWriter;
  log: Logger;
  engine: EngineName;
  backend: BackendName;
  /**
   * ONNX Runtime threads per inference process, or a function asked at each chunk (the workers on the host
   * come and go; a different count loads the model again with it).
   */
  threads?: number | (() => number);
  /** TF.js WebGPU: convolutions through the separate im2col shader. */
  im2col?: boolean;
  /** Engines this runner's inference process must not use again (dropped after faults), with why. */
  excludedEngines?: () => ReadonlyMap<string, string>;
  /** How many images are fetched and decoded at once. */
  decodeConcurrency: number;
  /** How many objects are written at once. */
  uploadConcurrency: number;
  /** Largest decoded image accepted, in pixels (decompression bombs). */
  maxPixels: number;
  /** Memory one inference slot may use for a batch's activations: a limit, and what `--batch-size auto` fills. */
  memoryBudgetBytes: number;
  /** Where samples, stage times and inference memory are reported. Default: nowhere. */
  metrics?: ChunkMetrics;
  /** This worker process, recorded in the chunk result. */
  worker?: { hostname: string; pid: number };
  /** layertap's version, recorded in shard metadata. */
  version?: string;
}

/** What differs between attempts of one chunk job. */
export interface ChunkAttempt {
  /**
   * Look for outputs an earlier attempt already stored whole (size and `.npy` header checked) and skip those
   * samples. Set for retried chunks and resumed runs. `--format npy` only: a shard is rewritten whole.
   */
  checkExisting: boolean;
  /** Aborted when the worker shuts down: the chunk stops at once and is released for a retry. */
  signal?: AbortSignal;
  /** Reports progress to BullMQ (job.updateProgress). */
  reportProgress?: (progress: { ok: number; failed: number }) => Promise<void>;
}

/**
 * Runs chunk jobs through one inference process. Images are fetched and decoded ahead of inference (bounded),
 * batched up to the dataset's batch size (failed samples drop out), sent to the inference process with the
 * next batch queued behind, and each batch's arrays are stored while later batches compute. The chunk's
 * manifest part is written last and whole, so a retried chunk never duplicates lines and no sample is
 * recorded `ok` before its objects are stored.
 */
export class ChunkRunner {
  /** The engine of the model this runner's inference process loaded last (`onnx/cpu`). */
  engine: string | undefined;

  constructor(private readonly options: ChunkRunnerOptions) {}

  async run(job: ChunkJob, attempt: ChunkAttempt): Promise<ChunkResult> {
    const o = this.options;
    const started = Date.now();
    const { dataset } = job;
    const writer = o.output(dataset.output);
    const log = chunkLogger(o.log, job);
    const ledger = new ChunkLedger(job, log, o.metrics);
    let model: ModelInfo | undefined;

    if (await o.store.isCancelled(dataset.datasetId)) {
      ledger.failRest(ErrorCode.Cancelled, 'dataset was cancelled before this sample ran');
    } else {
      const excluded = o.excludedEngines?.();
      const threads = typeof o.threads === 'function' ? o.threads() : o.threads;
      model = await o.inference.load({
        engine: o.engine,
        backend: o.backend,
        ...(threads ? { threads } : {}),
        ...(o.im2col ? { im2col: true } : {}),
        ...(excluded?.size ? { exclude: [...excluded] } : {}),
        model: dataset.model,
        ...(dataset.onnx ? { onnx: dataset.onnx } : {}),
        imageSize: dataset.imageSize,
        layers: dataset.layers,
        seed: dataset.seed,
        ...(dataset.weights ? { weights: dataset.weights } : {}),
        preprocess: dataset.preprocess,
        ...(dataset.normalize ? { normalize: dataset.normalize } : {}),
        store: { layout: dataset.layout, pool: dataset.pool, dtype: dataset.dtype },
      });
      this.engine = `${model.engine.engine}/${model.engine.backend}`;
      if (model.fresh) {
        log.info(
          {
            engine: model.backend,
            device: model.engine.device.description,
            reason: model.engine.reason,
            ...(model.engine.warnings.length ? { warnings: model.engine.warnings } : {}),
            loadMs: model.loadMs,
            weights: model.weights.description,
          },
          'model loaded',
        );
      }
      await o.store.recordEngine(dataset.datasetId, model.engine);
      // --format shards: every array of the chunk goes into one safetensors file, written after the last
      // batch and before the part (memory: the whole shard, e.g. ~100 MB for 64 block2_pool samples at 224).
      const shard =
        dataset.format === 'shards'
          ? new ShardBuilder({
              sampleIds: job.samples.map((s) => s.id),
              layers: dataset.layers.map((l) => ({ spec: l.spec, shape: l.shape })),
              dtype: dataset.dtype,
              metadata: shardMetadata(job, model, o.version),
            })
          : undefined;
      await this.runBatches(job, writer, ledger, model, shard, attempt, log);
      if (shard) await this.writeShard(job, writer, shard, ledger);
    }

    await this.put(writer, partKey(dataset.datasetId, dataset.run, job.chunk), ledger.toJsonl(), 'application/x-ndjson', ledger);
    const result: ChunkResult = {
      chunk: job.chunk,
      run: dataset.run,
      ok: ledger.ok,
      failed: ledger.failed,
      failures: ledger.failures,
      backend: model?.backend ?? 'none',
      ...(model ? { engine: model.engine } : {}),
      weights: model?.weights ?? { description: dataset.weights ? storedUri(dataset.weights) : `random, seed ${dataset.seed}` },
      startedAt: new Date(started).toISOString(),
      durationMs: Date.now() - started,
      timings: ledger.timings(),
      skipped: ledger.skipped,
      ...(o.worker ? { worker: o.worker } : {}),
      ...(ledger.memory ? { memory: ledger.memory } : {}),
    };
    if (ledger.skipped) o.metrics?.skipped(ledger.skipped);
    // Counts, the sample index (by id and URI), failure examples and a throughput point, in one transaction.
    await o.store.recordChunk(dataset.datasetId, result, ledger.all());
    return result;
  }

  private async runBatches(
    job: ChunkJob,
    writer: OutputWriter,
    ledger: ChunkLedger,
    model: ModelInfo,
    shard: ShardBuilder | undefined,
    attempt: ChunkAttempt,
    log: Logger,
  ): Promise<void> {
    const o = this.options;
    const { dataset, samples } = job;
    // The memory budget is a limit: a batch size its activations cannot fit runs smaller (said once per chunk).
    const batch = budgetedBatchSize(dataset.batchSize, dataset.layers.map((l) => l.canonical), dataset.imageSize, o.memoryBudgetBytes, modelFor(dataset));
    const { batchSize } = batch;
    logBatchSize(log, dataset.batchSize, batch, o.memoryBudgetBytes);
    // The plan's shapes: what the inference process gives back must be exactly these.
    const shapes = dataset.layers.map((l) => l.shape);
    const checkShapes = (result: InferResult): void => {
      result.outputs.forEach((layer, l) => {
        const want = shapes[l] as number[];
        const got = layer.shape.slice(1);
        if (got.length !== want.length || got.some((d, i) => d !== want[i])) {
          throw new RangeError(`${layer.spec}: the inference process gave shape ${JSON.stringify(got)}, the plan expects ${JSON.stringify(want)}`);
        }
      });
    };
    const timed = <T>(stage: Parameters<ChunkLedger['stage']>[0], work: () => Promise<T> | T): Promise<T> => {
      const t0 = performance.now();
      return Promise.resolve(work()).finally(() => ledger.stage(stage, performance.now() - t0));
    };

    const prepare = async (index: number): Promise<Uint8Array | undefined> => {
      const sample = samples[index] as Sample;
      try {
        if (attempt.checkExisting && !shard && (await alreadyStored(writer, dataset, sample, ledger, index))) return undefined;
        const bytes = await timed('fetch', () => o.fetcher.fetch(sample.uri, attempt.signal));
        const decoded = await timed('decode', () => decodeImage(bytes, { maxPixels: o.maxPixels, exifOrientation: dataset.exifOrientation ?? 'apply' }));
        // 8-bit pixels, resized and cropped: the inference process normalises them (a quarter of the bytes).
        return await timed('preprocess', () => fitPixels(decoded.rgb, { mode: dataset.preprocess, imageSize: dataset.imageSize }));
      } catch (err) {
        // Shutting down: the chunk is released whole, not failed sample by sample.
        if (attempt.signal?.aborted) throw err;
        ledger.fail(index, isLayertapError(err) ? err.code : ErrorCode.DecodeFailed, describeError(err));
        return undefined;
      }
    };

    const infer = async (input: Uint8Array, n: number): Promise<InferResult & { sentAt: number }> => {
      const sentAt = performance.now();
      const result = await o.inference.infer(input, n);
      return { ...result, sentAt };
    };

    const store = async (batch: PreparedItem[], result: InferResult & { sentAt: number }, write: Limiter): Promise<void> => {
      ledger.batches++;
      ledger.maxBatchMs = Math.max(ledger.maxBatchMs, result.inferenceMs + result.readbackMs);
      ledger.stage('inference', result.inferenceMs);
      ledger.stage('readback', result.readbackMs);
      ledger.stage('transfer', result.transferMs ?? 0);
      ledger.memory = { ...result.memory, rssBytes: process.memoryUsage().rss };
      checkShapes(result);
      o.metrics?.inferenceMemory(result.memory, model.backend, model.engine.reason);
      if (shard) this.storeInShard(job, shard, batch, result, ledger);
      else await this.storeNpy(job, writer, batch, result, write, ledger);
      // Every write of the batch finished (a failed one throws past this: its memory is left to the GC, as
      // writes of the same batch may still be reading it).
      o.inference.release?.(result);
      o.metrics?.batch((performance.now() - result.sentAt) / 1000, batch.length);
      await reportProgress(job, o.store, ledger, attempt);
    };

    const runner = new BatchRunner({
      batchSize,
      imageValues: dataset.imageSize * dataset.imageSize * 3,
      prepareConcurrency: o.decodeConcurrency,
      writeConcurrency: o.uploadConcurrency,
      prepare,
      infer,
      store,
      stop: () => o.store.isCancelled(dataset.datasetId),
      ...(attempt.signal ? { signal: attempt.signal } : {}),
    });
    await runner.run(samples.length);
    ledger.failRest(ErrorCode.Cancelled, 'dataset was cancelled before this sample ran');
  }

  /** Each sample's arrays as `.npy` files, written in parallel (through the write limiter). */
  private async storeNpy(job: ChunkJob, writer: OutputWriter, batch: PreparedItem[], result: InferResult, write: Limiter, ledger: ChunkLedger): Promise<void> {
    const { dataset } = job;
    await Promise.all(
      batch.map(async (item, k) => {
        const sample = job.samples[item.index] as Sample;
        const outputs: Record<string, string> = {};
        const stored: Record<string, number[]> = {};
        await Promise.all(
          result.outputs.map((layer) =>
            write(async () => {
              const t0 = performance.now();
              const body = sampleNpy(layer, k);
              ledger.stage('encode', performance.now() - t0);
              const key = sampleKey(dataset.datasetId, layer.spec, sample.id);
              await this.put(writer, key, body, 'application/octet-stream', ledger);
              outputs[layer.spec] = key;
              stored[layer.spec] = layer.shape.slice(1);
            }),
          ),
        );
        ledger.succeed(item.index, outputs, stored);
      }),
    );
  }

  /** Copies the batch's arrays into the chunk's shard; the shard is written once, after the last batch. */
  private storeInShard(job: ChunkJob, shard: ShardBuilder, batch: PreparedItem[], result: InferResult, ledger: ChunkLedger): void {
    const { dataset } = job;
    const key = shardKey(dataset.datasetId, dataset.run, job.chunk);
    for (const [k, item] of batch.entries()) {
      const sample = job.samples[item.index] as Sample;
      const outputs: Record<string, string> = {};
      const shapes: Record<string, number[]> = {};
      for (const layer of result.outputs) {
        const t0 = performance.now();
        const { data, shape } = storedSample(layer, k);
        shard.set(item.index, layer.spec, data);
        ledger.stage('encode', performance.now() - t0);
        outputs[layer.spec] = shardOutputRef(key, shardTensorName(sample.id, layer.spec));
        shapes[layer.spec] = shape;
      }
      ledger.succeed(item.index, outputs, shapes);
    }
  }

  /** Stores the chunk's shard (a retried chunk rewrites it whole); a chunk with no array removes any old one. */
  private async writeShard(job: ChunkJob, writer: OutputWriter, shard: ShardBuilder, ledger: ChunkLedger): Promise<void> {
    const key = shardKey(job.dataset.datasetId, job.dataset.run, job.chunk);
    const body = shard.finish();
    if (body) await this.put(writer, key, body, 'application/octet-stream', ledger);
    else await writer.delete(key);
  }

  /** Writes an object and reports the time to the `write` stage. */
  private async put(writer: OutputWriter, key: string, body: ObjectBody, contentType: string, ledger: ChunkLedger): Promise<void> {
    const t0 = performance.now();
    await writer.put(key, body, { contentType });
    ledger.stage('write', performance.now() - t0);
  }
}

/** `log` with the dataset, run and chunk bound, without repeating bindings it already has. */
function chunkLogger(log: Logger, job: ChunkJob): Logger {
  const bound = log.bindings();
  const wanted: Record<string, unknown> = { datasetId: job.dataset.datasetId, run: job.dataset.run, chunk: job.chunk };
  const missing = Object.fromEntries(Object.entries(wanted).filter(([k]) => !(k in bound)));
  return Object.keys(missing).length ? log.child(missing) : log;
}

/** A shard's `__metadata__`: where its tensors come from (string values, as safetensors requires). */
function shardMetadata(job: ChunkJob, model: ModelInfo, version = 'unknown'): Record<string, string> {
  const { dataset } = job;
  return {
    format: 'layertap-shard/1',
    tensorNames: '<sampleId>/<layerSpec>',
    datasetId: dataset.datasetId,
    run: String(dataset.run),
    chunk: String(job.chunk),
    layers: JSON.stringify(dataset.layers.map((l) => ({ spec: l.spec, canonical: l.canonical, shape: l.shape }))),
    dtype: dataset.dtype,
    layout: dataset.layout,
    pool: dataset.pool,
    imageSize: String(dataset.imageSize),
    preprocessing: JSON.stringify({ mode: dataset.preprocess, imageSize: dataset.imageSize, ...PREPROCESSING[dataset.preprocess] }),
    model: dataset.model,
    ...(dataset.onnx ? { onnxModel: storedUri(dataset.onnx.uri), onnxSha256: dataset.onnx.sha256 } : {}),
    ...(dataset.normalize ? { normalize: JSON.stringify(dataset.normalize) } : {}),
    weights: model.weights.description,
    ...(model.weights.sha256 ? { weightsSha256: model.weights.sha256 } : {}),
    ...(dataset.weights ? { weightsSource: storedUri(dataset.weights) } : {}),
    backend: model.backend,
    engine: `${model.engine.engine}/${model.engine.backend} on ${model.engine.device.description}`,
    layertapVersion: version,
  };
}

/** Says, once per chunk, which batch size runs when the memory budget decided it (`auto`, or less than asked). */
function logBatchSize(log: Logger, requested: number | 'auto', batch: BudgetedBatch, budgetBytes: number): void {
  const figures = { requested, sampleMiB: Number((batch.sampleBytes / 1024 ** 2).toFixed(1)), batchSize: batch.batchSize, budgetMiB: Math.round(budgetBytes / 1024 ** 2) };
  if (batch.overBudget) log.warn(figures, 'one sample needs more than the memory budget (LAYERTAP_MEMORY_BUDGET_MB): batches of 1');
  else if (batch.shrunk) log.info(figures, 'batch size shrunk to fit the memory budget (LAYERTAP_MEMORY_BUDGET_MB)');
  else if (requested === 'auto') log.info(figures, 'batch size auto');
}

/** Records the sample as done when every layer's `.npy` is already stored whole. */
async function alreadyStored(writer: OutputWriter, dataset: ChunkJob['dataset'], sample: Sample, ledger: ChunkLedger, index: number): Promise<boolean> {
  const outputs: Record<string, string> = {};
  const shapes: Record<string, number[]> = {};
  for (const layer of dataset.layers) {
    const shape = layer.shape;
    const key = sampleKey(dataset.datasetId, layer.spec, sample.id);
    const header = npyHeader(shape, dataset.dtype);
    if (!(await writer.exists(key, npyByteLength(shape, dataset.dtype)))) return false;
    const head = await writer.head(key, header.length);
    if (!head || !head.equals(header)) return false;
    outputs[layer.spec] = key;
    shapes[layer.spec] = shape;
  }
  ledger.succeed(index, outputs, shapes);
  ledger.skipped++;
  return true;
}

async function reportProgress(job: ChunkJob, store: ChunkStore, ledger: ChunkLedger, attempt: ChunkAttempt): Promise<void> {
  const { dataset } = job;
  await store.setChunkProgress(dataset.datasetId, {
    run: dataset.run,
    chunk: job.chunk,
    ok: ledger.ok,
    failed: ledger.failed,
    failures: ledger.failures,
    final: false,
  });
  await attempt.reportProgress?.({ ok: ledger.ok, failed: ledger.failed });
}
