import {
  ChunkResult,
  ErrorCode,
  describeError,
  isLayertapError,
  type BackendName,
  type EngineName,
  type ChunkJob,
  type ManifestLine,
  type Sample,
} from '@layertap/contracts';
import { PREPROCESSING, preprocessImage, type ImageFetcher } from '@layertap/imaging';
import {
  encodeNpy,
  float32ToFloat16Bits,
  npyByteLength,
  npyHeader,
  partKey,
  sampleArray,
  sampleKey,
  ShardBuilder,
  shardKey,
  shardOutputRef,
  shardTensorName,
  type OutputWriter,
} from '@layertap/storage';
import type { Logger } from '@layertap/config';
import type { DatasetStore } from '@layertap/queue';
import type { InferenceHost } from './inference/host';
import type { InferResult, ModelInfo } from './inference/protocol';
import { createLimiter } from './limiter';
import type { ChunkMetrics } from './metrics';
import { storedShape } from './stored-shape';
import { autoBatchSize } from '@layertap/model/batch-size';
import { globalPool } from './global-pool';

export interface ChunkContext {
  fetcher: ImageFetcher;
  inference: InferenceHost;
  store: DatasetStore;
  /** The writer for an output URI (cached by the caller). */
  output: (uri: string) => OutputWriter;
  log: Logger;
  backend: BackendName;
  engine: EngineName;
  /** ONNX Runtime threads per inference process. */
  threads?: number;
  /** Reports progress to BullMQ (job.updateProgress). */
  reportProgress?: (progress: { ok: number; failed: number }) => Promise<void>;
  /** Aborted when the worker shuts down: the chunk stops and is released for a retry. */
  signal?: AbortSignal;
  /** How many images are fetched and decoded at once. */
  decodeConcurrency: number;
  /** How many objects are uploaded at once. */
  uploadConcurrency: number;
  /** Largest decoded image accepted, in pixels (decompression bombs). */
  maxPixels: number;
  /** Memory one inference slot may use for a batch's activations (`--batch-size auto`). */
  memoryBudgetBytes: number;
  /**
   * Look for outputs an earlier attempt already stored whole (size and `.npy` header checked) and skip
   * those samples. Set for retried chunks and resumed runs. `--format npy` only: a shard is rewritten whole.
   */
  checkExisting: boolean;
  /** Where samples, stage times and inference memory are reported. Default: nowhere. */
  metrics?: ChunkMetrics;
  /** This worker process, recorded in the chunk result. */
  worker?: { hostname: string; pid: number };
  /** layertap's version, recorded in shard metadata. */
  version?: string;
}

interface Ready {
  sample: Sample;
  index: number;
  pixels: Float32Array;
}

/** Bookkeeping of one chunk's samples: each ends with exactly one manifest line. */
class ChunkLedger {
  readonly lines: Array<ManifestLine | undefined>;
  readonly timings = { inferenceMs: 0, readbackMs: 0, maxBatchMs: 0, batches: 0 };
  /** Memory after the last batch: tensors alive in the inference process and both processes' RSS. */
  memory: { numTensors: number; numBytes: number; childRssBytes: number; rssBytes: number } | undefined;
  /** Samples whose outputs an earlier attempt had already stored. */
  skipped = 0;
  ok = 0;
  failed = 0;
  readonly failures: Record<string, number> = {};

  constructor(
    private readonly job: ChunkJob,
    private readonly log: Logger,
    private readonly metrics?: ChunkMetrics,
  ) {
    this.lines = new Array(job.samples.length);
  }

  /** Records a failed sample; each is logged with its id and reason (the logger carries dataset and chunk). */
  fail(index: number, code: string, message: string, options: { quiet?: boolean } = {}): void {
    const sample = this.job.samples[index];
    if (!sample || this.lines[index]) return;
    this.lines[index] = { id: sample.id, uri: sample.uri, status: 'failed', error: { code, message }, outputs: {}, shape: {}, dtype: this.job.dataset.dtype };
    this.failed++;
    this.failures[code] = (this.failures[code] ?? 0) + 1;
    this.metrics?.sample('failed', code);
    if (!options.quiet) this.log.info({ sampleId: sample.id, code, err: message }, 'sample failed');
  }

  succeed(index: number, outputs: Record<string, string>, shape: Record<string, number[]>): void {
    const sample = this.job.samples[index];
    if (!sample || this.lines[index]) return;
    this.lines[index] = { id: sample.id, uri: sample.uri, status: 'ok', outputs, shape, dtype: this.job.dataset.dtype };
    this.ok++;
    this.metrics?.sample('ok');
  }

  /**
   * Every sample without a line yet fails with `code` (cancellation): one log line for all of them, with
   * their count, rather than one per sample.
   */
  failRest(code: string, message: string): void {
    let count = 0;
    for (let i = 0; i < this.lines.length; i++) {
      if (this.lines[i]) continue;
      this.fail(i, code, message, { quiet: true });
      count++;
    }
    if (count > 0) this.log.info({ code, samples: count }, 'samples not run');
  }

  /** The lines of every sample (call once each has one). */
  all(): ManifestLine[] {
    return this.lines.filter((l): l is ManifestLine => l !== undefined);
  }

  toJsonl(): string {
    return this.lines.map((l) => JSON.stringify(l)).join('\n') + '\n';
  }
}

function errorCode(err: unknown, fallback: string): string {
  return isLayertapError(err) ? err.code : fallback;
}

/** `log` with the dataset, run and chunk bound, without repeating bindings it already has. */
function chunkLogger(log: Logger, job: ChunkJob): Logger {
  const bound = log.bindings();
  const wanted: Record<string, unknown> = { datasetId: job.dataset.datasetId, run: job.dataset.run, chunk: job.chunk };
  const missing = Object.fromEntries(Object.entries(wanted).filter(([k]) => !(k in bound)));
  return Object.keys(missing).length ? log.child(missing) : log;
}

const seconds = (startedAt: number) => (performance.now() - startedAt) / 1000;

/**
 * Processes one chunk: fetch and preprocess the images (bounded concurrency, running ahead of inference),
 * batch the ones that decoded (up to the dataset's batch size: failed samples drop out), run each batch
 * through the hooked model in the inference process while the previous batch's `.npy` files upload, and
 * finally write the chunk's manifest part. The part is written last and whole, so a retried chunk never
 * duplicates lines and no sample is recorded `ok` before its objects are stored.
 */
export async function processChunk(job: ChunkJob, ctx: ChunkContext): Promise<ChunkResult> {
  const started = Date.now();
  const { dataset } = job;
  const writer = ctx.output(dataset.output);
  const log = chunkLogger(ctx.log, job);
  const ledger = new ChunkLedger(job, log, ctx.metrics);
  let model: ModelInfo | undefined;

  if (await ctx.store.isCancelled(dataset.datasetId)) {
    ledger.failRest(ErrorCode.Cancelled, 'dataset was cancelled before this sample ran');
  } else {
    model = await ctx.inference.load({
      engine: ctx.engine,
      backend: ctx.backend,
      ...(ctx.threads ? { threads: ctx.threads } : {}),
      imageSize: dataset.imageSize,
      layers: dataset.layers,
      seed: dataset.seed,
      ...(dataset.weights ? { weights: dataset.weights } : {}),
    });
    // --format shards: every array of the chunk goes into one safetensors file, written after the last
    // batch and before the part (memory: the whole shard, e.g. ~100 MB for 64 block2_pool samples at 224).
    const shard =
      dataset.format === 'shards'
        ? new ShardBuilder({
            sampleIds: job.samples.map((s) => s.id),
            layers: shardLayers(dataset),
            dtype: dataset.dtype,
            metadata: shardMetadata(job, model, ctx.version),
          })
        : undefined;
    if (model.fresh) {
      log.info({ engine: model.backend, reason: model.backendReason, loadMs: model.loadMs, weights: model.weights.description }, 'model loaded');
    }
    await runBatches(job, { ...ctx, log }, writer, ledger, model, shard);
    if (shard) await writeShard(job, ctx, writer, shard);
  }

  await putTimed(ctx, writer, partKey(dataset.datasetId, dataset.run, job.chunk), ledger.toJsonl(), 'application/x-ndjson');
  const result: ChunkResult = {
    chunk: job.chunk,
    run: dataset.run,
    ok: ledger.ok,
    failed: ledger.failed,
    failures: ledger.failures,
    backend: model?.backend ?? 'none',
    weights: model?.weights ?? { description: dataset.weights ?? `random, seed ${dataset.seed}` },
    startedAt: new Date(started).toISOString(),
    durationMs: Date.now() - started,
    timings: ledger.timings,
    skipped: ledger.skipped,
    ...(ctx.worker ? { worker: ctx.worker } : {}),
    ...(ledger.memory ? { memory: ledger.memory } : {}),
  };
  if (ledger.skipped) ctx.metrics?.skipped(ledger.skipped);
  // Counts, the sample index (by id and URI), failure examples and a throughput point, in one transaction.
  await ctx.store.recordChunk(dataset.datasetId, result, ledger.all());
  return result;
}

/** Writes an object and reports the time to the `upload` stage. */
async function putTimed(ctx: ChunkContext, writer: OutputWriter, key: string, body: Buffer | string, contentType: string): Promise<void> {
  const t0 = performance.now();
  await writer.put(key, body, { contentType });
  ctx.metrics?.stage('upload', seconds(t0));
}

function shardLayers(dataset: ChunkJob['dataset']) {
  return dataset.layers.map((l) => ({ spec: l.spec, shape: storedShape(l.canonical, dataset) }));
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
    layers: JSON.stringify(dataset.layers.map((l) => ({ spec: l.spec, canonical: l.canonical, shape: storedShape(l.canonical, dataset) }))),
    dtype: dataset.dtype,
    layout: dataset.layout,
    pool: dataset.pool,
    imageSize: String(dataset.imageSize),
    preprocessing: JSON.stringify({ mode: dataset.preprocess, imageSize: dataset.imageSize, ...PREPROCESSING[dataset.preprocess] }),
    model: 'vgg16',
    weights: model.weights.description,
    ...(model.weights.sha256 ? { weightsSha256: model.weights.sha256 } : {}),
    ...(dataset.weights ? { weightsSource: dataset.weights } : {}),
    backend: model.backend,
    layertapVersion: version,
  };
}

/** Stores the chunk's shard (a retried chunk rewrites it whole); a chunk with no array removes any old one. */
async function writeShard(job: ChunkJob, ctx: ChunkContext, writer: OutputWriter, shard: ShardBuilder): Promise<void> {
  const key = shardKey(job.dataset.datasetId, job.dataset.run, job.chunk);
  const body = shard.finish();
  if (body) await putTimed(ctx, writer, key, body, 'application/octet-stream');
  else await writer.delete(key);
}

async function runBatches(
  job: ChunkJob,
  ctx: ChunkContext,
  writer: OutputWriter,
  ledger: ChunkLedger,
  model: ModelInfo,
  shard: ShardBuilder | undefined,
): Promise<void> {
  const { dataset, samples } = job;
  const pixelsPerSample = dataset.imageSize * dataset.imageSize * 3;
  const decode = createLimiter(ctx.decodeConcurrency);
  const upload = createLimiter(ctx.uploadConcurrency);
  // Decoded images wait in memory for at most two batches ahead of inference.
  const batchSize =
    dataset.batchSize === 'auto' ? autoBatchSize(dataset.layers.map((l) => l.spec), dataset.imageSize, ctx.memoryBudgetBytes) : dataset.batchSize;
  if (dataset.batchSize === 'auto') ctx.log.info({ batchSize, budgetMiB: Math.round(ctx.memoryBudgetBytes / 1024 ** 2) }, 'batch size auto');
  const lookahead = Math.max(batchSize * 2, ctx.decodeConcurrency);
  const prepared: Array<Promise<Ready | undefined> | undefined> = new Array(samples.length);
  let nextToStart = 0;
  const startUpTo = (end: number) => {
    for (; nextToStart < Math.min(end, samples.length); nextToStart++) {
      const index = nextToStart;
      const sample = samples[index] as Sample;
      const task = decode(async () => {
        try {
          if (ctx.checkExisting && !shard && (await alreadyStored(writer, dataset, sample, ledger, index))) return undefined;
          const t0 = performance.now();
          const bytes = await ctx.fetcher.fetch(sample.uri, ctx.signal);
          const image = await preprocessImage(bytes, { mode: dataset.preprocess, imageSize: dataset.imageSize, maxPixels: ctx.maxPixels });
          ctx.metrics?.stage('fetch_decode', seconds(t0));
          return { sample, index, pixels: image.data };
        } catch (err) {
          // Shutting down: the chunk is released whole, not failed sample by sample.
          if (ctx.signal?.aborted) throw err;
          ledger.fail(index, errorCode(err, ErrorCode.DecodeFailed), describeError(err));
          return undefined;
        }
      });
      // Awaited in order below; a rejection while an earlier sample is awaited must not go unhandled.
      task.catch(() => undefined);
      prepared[index] = task;
    }
  };

  // Writes of one batch run while the next batch infers; at most two batches of writes are in flight.
  const writes: Array<Promise<void>> = [];
  const settleWrites = async (keep: number) => {
    while (writes.length > keep) await writes.shift();
  };
  /** One sample's array of one layer, as stored: layout and pooling applied. */
  const arrayOf = (result: InferResult, layerIndex: number, k: number) => {
    const layer = result.outputs[layerIndex]!;
    const sample = sampleArray(layer.data, layer.shape, k, dataset.layout, layer.layout);
    return globalPool(sample.data, sample.shape, dataset.layout, dataset.pool);
  };
  const storeNpy = (batch: Ready[], result: InferResult): Promise<void> =>
    Promise.all(
      batch.map(async (item, k) => {
        const outputs: Record<string, string> = {};
        const shapes: Record<string, number[]> = {};
        await Promise.all(
          result.outputs.map((layer, layerIndex) =>
            upload(async () => {
              const t0 = performance.now();
              const { data, shape } = arrayOf(result, layerIndex, k);
              const body = dataset.dtype === 'float16' ? encodeNpy(float32ToFloat16Bits(data), shape, 'float16') : encodeNpy(data, shape, 'float32');
              ctx.metrics?.stage('encode', seconds(t0));
              const key = sampleKey(dataset.datasetId, layer.spec, item.sample.id);
              await putTimed(ctx, writer, key, body, 'application/octet-stream');
              outputs[layer.spec] = key;
              shapes[layer.spec] = shape;
            }),
          ),
        );
        ledger.succeed(item.index, outputs, shapes);
      }),
    ).then(() => undefined);
  /** Copies the batch's arrays into the chunk's shard; the shard is written once, after the last batch. */
  const storeInShard = async (builder: ShardBuilder, batch: Ready[], result: InferResult): Promise<void> => {
    const key = shardKey(dataset.datasetId, dataset.run, job.chunk);
    batch.forEach((item, k) => {
      const outputs: Record<string, string> = {};
      const shapes: Record<string, number[]> = {};
      result.outputs.forEach((layer, layerIndex) => {
        const t0 = performance.now();
        const { data, shape } = arrayOf(result, layerIndex, k);
        builder.set(item.index, layer.spec, data);
        ctx.metrics?.stage('encode', seconds(t0));
        outputs[layer.spec] = shardOutputRef(key, shardTensorName(item.sample.id, layer.spec));
        shapes[layer.spec] = shape;
      });
      ledger.succeed(item.index, outputs, shapes);
    });
  };
  const store = (batch: Ready[], result: InferResult, batchStarted: number): Promise<void> =>
    (shard ? storeInShard(shard, batch, result) : storeNpy(batch, result)).then(() => {
      ctx.metrics?.batch(seconds(batchStarted), batch.length);
      return reportProgress(job, ctx, ledger);
    });

  let failure: unknown;
  const guard = (p: Promise<void>) => p.catch((err: unknown) => void (failure ??= err));
  startUpTo(lookahead);
  let batch: Ready[] = [];
  for (let i = 0; i < samples.length && failure === undefined; i++) {
    const ready = await prepared[i];
    prepared[i] = undefined;
    startUpTo(i + 1 + lookahead);
    if (ready) batch.push(ready);
    const last = i === samples.length - 1;
    if (batch.length === 0 || (batch.length < batchSize && !last)) continue;
    if (ctx.signal?.aborted) throw ctx.signal.reason ?? new Error('worker is shutting down');
    if (await ctx.store.isCancelled(dataset.datasetId)) break;
    const input = new Float32Array(batch.length * pixelsPerSample);
    batch.forEach((item, k) => input.set(item.pixels, k * pixelsPerSample));
    const batchStarted = performance.now();
    const result = await abortable(ctx.inference.infer(input, batch.length), ctx.signal);
    ledger.timings.inferenceMs += result.inferenceMs;
    ledger.timings.readbackMs += result.readbackMs;
    ledger.timings.maxBatchMs = Math.max(ledger.timings.maxBatchMs, result.inferenceMs + result.readbackMs);
    ledger.timings.batches++;
    ledger.memory = { ...result.memory, rssBytes: process.memoryUsage().rss };
    ctx.metrics?.stage('inference', result.inferenceMs / 1000);
    ctx.metrics?.stage('readback', result.readbackMs / 1000);
    ctx.metrics?.inferenceMemory(result.memory, model.backend, model.backendReason);
    writes.push(guard(store(batch, result, batchStarted)));
    batch = [];
    await settleWrites(1);
    await reportProgress(job, ctx, ledger);
  }
  // Let fetches that are still running finish (they may record failures) before the part is written.
  await Promise.allSettled(prepared.filter(Boolean));
  await settleWrites(0);
  if (failure !== undefined) throw failure;
  ledger.failRest(ErrorCode.Cancelled, 'dataset was cancelled before this sample ran');
}

/** Resolves like `promise`, or rejects as soon as `signal` aborts (the work itself is abandoned). */
function abortable<T>(promise: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted) return Promise.reject(signal.reason ?? new Error('aborted'));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason ?? new Error('aborted'));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

/** Records the sample as done when every layer's `.npy` is already stored whole. */
async function alreadyStored(writer: OutputWriter, dataset: ChunkJob['dataset'], sample: Sample, ledger: ChunkLedger, index: number): Promise<boolean> {
  const outputs: Record<string, string> = {};
  const shapes: Record<string, number[]> = {};
  for (const layer of dataset.layers) {
    const shape = storedShape(layer.canonical, dataset);
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

async function reportProgress(job: ChunkJob, ctx: ChunkContext, ledger: ChunkLedger): Promise<void> {
  const { dataset } = job;
  await ctx.store.setChunkProgress(dataset.datasetId, {
    run: dataset.run,
    chunk: job.chunk,
    ok: ledger.ok,
    failed: ledger.failed,
    failures: ledger.failures,
    final: false,
  });
  await ctx.reportProgress?.({ ok: ledger.ok, failed: ledger.failed });
}
