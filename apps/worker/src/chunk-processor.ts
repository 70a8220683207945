import {
  ChunkResult,
  ErrorCode,
  describeError,
  isLayertapError,
  type BackendName,
  type ChunkJob,
  type ManifestLine,
  type Sample,
} from '@layertap/contracts';
import { preprocessImage, type ImageFetcher } from '@layertap/imaging';
import { encodeNpy, float32ToFloat16Bits, npyByteLength, npyHeader, partKey, sampleArray, sampleKey, type OutputWriter } from '@layertap/storage';
import type { Logger } from '@layertap/config';
import type { DatasetStore } from '@layertap/queue';
import type { InferenceHost } from './inference-host';
import type { InferResult, ModelInfo } from './inference-protocol';
import { createLimiter } from './limiter';
import { storedShape } from './output-shapes';
import { globalPool } from './global-pool';

export interface ChunkContext {
  fetcher: ImageFetcher;
  inference: InferenceHost;
  store: DatasetStore;
  /** The writer for an output URI (cached by the caller). */
  output: (uri: string) => OutputWriter;
  log: Logger;
  backend: BackendName;
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
  /**
   * Look for outputs an earlier attempt already stored whole (size and `.npy` header checked) and skip
   * those samples. Set for retried chunks and resumed runs.
   */
  checkExisting: boolean;
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
  ) {
    this.lines = new Array(job.samples.length);
  }

  fail(index: number, code: string, message: string): void {
    const sample = this.job.samples[index];
    if (!sample || this.lines[index]) return;
    this.lines[index] = { id: sample.id, uri: sample.uri, status: 'failed', error: { code, message }, outputs: {}, shape: {}, dtype: this.job.dataset.dtype };
    this.failed++;
    this.failures[code] = (this.failures[code] ?? 0) + 1;
  }

  succeed(index: number, outputs: Record<string, string>, shape: Record<string, number[]>): void {
    const sample = this.job.samples[index];
    if (!sample || this.lines[index]) return;
    this.lines[index] = { id: sample.id, uri: sample.uri, status: 'ok', outputs, shape, dtype: this.job.dataset.dtype };
    this.ok++;
  }

  /** Every sample without a line yet fails with `code` (cancellation, shutdown). */
  failRest(code: string, message: string): void {
    for (let i = 0; i < this.lines.length; i++) if (!this.lines[i]) this.fail(i, code, message);
  }

  toJsonl(): string {
    return this.lines.map((l) => JSON.stringify(l)).join('\n') + '\n';
  }
}

function errorCode(err: unknown, fallback: string): string {
  return isLayertapError(err) ? err.code : fallback;
}

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
  const ledger = new ChunkLedger(job);
  let model: ModelInfo | undefined;

  if (await ctx.store.isCancelled(dataset.datasetId)) {
    ledger.failRest(ErrorCode.Cancelled, 'dataset was cancelled before this sample ran');
  } else {
    model = await ctx.inference.load({
      backend: ctx.backend,
      imageSize: dataset.imageSize,
      layers: dataset.layers,
      seed: dataset.seed,
      ...(dataset.weights ? { weights: dataset.weights } : {}),
    });
    await runBatches(job, ctx, writer, ledger);
  }

  await writer.put(partKey(dataset.datasetId, dataset.run, job.chunk), ledger.toJsonl(), { contentType: 'application/x-ndjson' });
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
    ...(ledger.memory ? { memory: ledger.memory } : {}),
  };
  await ctx.store.setChunkResult(dataset.datasetId, result);
  return result;
}

async function runBatches(job: ChunkJob, ctx: ChunkContext, writer: OutputWriter, ledger: ChunkLedger): Promise<void> {
  const { dataset, samples } = job;
  const pixelsPerSample = dataset.imageSize * dataset.imageSize * 3;
  const decode = createLimiter(ctx.decodeConcurrency);
  const upload = createLimiter(ctx.uploadConcurrency);
  // Decoded images wait in memory for at most two batches ahead of inference.
  const lookahead = Math.max(dataset.batchSize * 2, ctx.decodeConcurrency);
  const prepared: Array<Promise<Ready | undefined> | undefined> = new Array(samples.length);
  let nextToStart = 0;
  const startUpTo = (end: number) => {
    for (; nextToStart < Math.min(end, samples.length); nextToStart++) {
      const index = nextToStart;
      const sample = samples[index] as Sample;
      prepared[index] = decode(async () => {
        try {
          if (ctx.checkExisting && (await alreadyStored(writer, dataset, sample, ledger, index))) return undefined;
          const bytes = await ctx.fetcher.fetch(sample.uri, ctx.signal);
          const image = await preprocessImage(bytes, { mode: dataset.preprocess, imageSize: dataset.imageSize, maxPixels: ctx.maxPixels });
          return { sample, index, pixels: image.data };
        } catch (err) {
          ledger.fail(index, errorCode(err, ErrorCode.DecodeFailed), describeError(err));
          ctx.log.info({ datasetId: dataset.datasetId, chunk: job.chunk, sampleId: sample.id, code: errorCode(err, ErrorCode.DecodeFailed), err: describeError(err) }, 'sample failed');
          return undefined;
        }
      });
    }
  };

  // Writes of one batch run while the next batch infers; at most two batches of writes are in flight.
  const writes: Array<Promise<void>> = [];
  const settleWrites = async (keep: number) => {
    while (writes.length > keep) await writes.shift();
  };
  const store = (batch: Ready[], result: InferResult): Promise<void> =>
    Promise.all(
      batch.map(async (item, k) => {
        const outputs: Record<string, string> = {};
        const shapes: Record<string, number[]> = {};
        await Promise.all(
          result.outputs.map((layer) =>
            upload(async () => {
              const sample = sampleArray(layer.data, layer.shape, k, dataset.layout);
              const { data, shape } = globalPool(sample.data, sample.shape, dataset.layout, dataset.pool);
              const body = dataset.dtype === 'float16' ? encodeNpy(float32ToFloat16Bits(data), shape, 'float16') : encodeNpy(data, shape, 'float32');
              const key = sampleKey(dataset.datasetId, layer.spec, item.sample.id);
              await writer.put(key, body, { contentType: 'application/octet-stream' });
              outputs[layer.spec] = key;
              shapes[layer.spec] = shape;
            }),
          ),
        );
        ledger.succeed(item.index, outputs, shapes);
      }),
    ).then(() => reportProgress(job, ctx, ledger));

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
    if (batch.length === 0 || (batch.length < dataset.batchSize && !last)) continue;
    if (ctx.signal?.aborted) throw ctx.signal.reason ?? new Error('worker is shutting down');
    if (await ctx.store.isCancelled(dataset.datasetId)) break;
    const input = new Float32Array(batch.length * pixelsPerSample);
    batch.forEach((item, k) => input.set(item.pixels, k * pixelsPerSample));
    const result = await abortable(ctx.inference.infer(input, batch.length), ctx.signal);
    ledger.timings.inferenceMs += result.inferenceMs;
    ledger.timings.readbackMs += result.readbackMs;
    ledger.timings.maxBatchMs = Math.max(ledger.timings.maxBatchMs, result.inferenceMs + result.readbackMs);
    ledger.timings.batches++;
    ledger.memory = { ...result.memory, rssBytes: process.memoryUsage().rss };
    writes.push(guard(store(batch, result)));
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
