import type { Readable } from 'node:stream';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { createQueueMetrics, type LayertapQueues } from '@layertap/queue';
import { bodyLength, type ObjectBody, type OutputWriter, type PutOptions } from '@layertap/storage';
import type { ChunkMetrics, WorkerObserver } from '@layertap/pipeline';

/** Whether an inference backend keeps its tensors in GPU memory (so `numBytes` is GPU memory). */
export function isGpuBackend(backend: string, reason = ''): boolean {
  const name = backend.toLowerCase();
  // `webgpu`, `onnx:cuda`, `tfjs:webgpu` (engine:backend, as the inference process reports it).
  if (/(^|[/:])(webgpu|cuda|tensorrt|dml|gpu)$/.test(name)) return true;
  // tfjs-node-gpu and tfjs-node both call their backend `tensorflow`; the reason says which one loaded.
  return name.endsWith('tensorflow') && /tfjs-node-gpu/.test(reason);
}

/** What an object written to the output is. */
export type OutputKind = 'array' | 'shard' | 'part' | 'manifest';

/** The kind of output object behind a key (for `layertap_output_bytes_total`). */
export function outputKind(key: string): OutputKind {
  if (key.endsWith('.npy')) return 'array';
  if (key.endsWith('.safetensors')) return 'shard';
  if (key.includes('/_parts/')) return 'part';
  return 'manifest';
}

const SECONDS_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];
const CHUNK_BUCKETS = [1, 5, 10, 30, 60, 120, 300, 600, 1200, 3600];

export interface WorkerMetricsOptions {
  /** Also collect prom-client's process and Node.js metrics (CPU, RSS, heap, event loop lag). Default true. */
  defaultMetrics?: boolean;
  /** Concurrency slots (reported as `layertap_worker_concurrency`). */
  concurrency?: number;
}

/**
 * The worker's Prometheus metrics, in a registry of its own (never prom-client's global one, so tests and
 * several workers in one process do not mix). Names and meanings are listed in the README.
 */
export class WorkerMetrics implements WorkerObserver {
  readonly registry = new Registry();
  private readonly samples: Counter<'status'>;
  private readonly failures: Counter<'reason'>;
  private readonly skippedSamples: Counter;
  private readonly bytes: Counter<'kind'>;
  private readonly stages: Histogram<'stage'>;
  private readonly batches: Histogram;
  private readonly batchSamples: Counter;
  private readonly chunks: Counter<'result'>;
  private readonly engineFaults: Counter<'engine' | 'dropped'>;
  private readonly chunkSeconds: Histogram;
  private readonly activeChunks: Gauge;
  private readonly tensors: Gauge<'slot'>;
  private readonly tensorBytes: Gauge<'slot'>;
  private readonly gpuBytes: Gauge<'slot'>;
  private readonly childRss: Gauge<'slot'>;
  private readonly backendInfo: Gauge<'slot' | 'backend'>;
  private readonly backends = new Map<number, string>();

  constructor(options: WorkerMetricsOptions = {}) {
    const registers = [this.registry];
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry });
    this.samples = new Counter({ name: 'layertap_samples_processed_total', help: 'Samples that got a manifest line, by status (every attempt counts)', labelNames: ['status'], registers });
    this.failures = new Counter({ name: 'layertap_sample_failures_total', help: 'Failed samples by reason code', labelNames: ['reason'], registers });
    this.skippedSamples = new Counter({ name: 'layertap_samples_skipped_total', help: 'Samples whose outputs an earlier attempt had already stored (not recomputed)', registers });
    this.bytes = new Counter({ name: 'layertap_output_bytes_total', help: 'Bytes written to the output, by kind (array, shard, part, manifest)', labelNames: ['kind'], registers });
    this.stages = new Histogram({
      name: 'layertap_stage_seconds',
      help: 'Time per pipeline stage: fetch, decode, preprocess per image; transfer, inference, readback per batch; encode per array; write per object written',
      labelNames: ['stage'],
      buckets: SECONDS_BUCKETS,
      registers,
    });
    this.batches = new Histogram({ name: 'layertap_batch_seconds', help: 'Batch latency: inference request until the arrays are stored', buckets: SECONDS_BUCKETS, registers });
    this.batchSamples = new Counter({ name: 'layertap_batch_samples_total', help: 'Samples run through inference', registers });
    this.chunks = new Counter({ name: 'layertap_chunks_total', help: 'Chunk jobs ended, by result (done, failed, released at shutdown or after an engine fault)', labelNames: ['result'], registers });
    this.engineFaults = new Counter({
      name: 'layertap_engine_faults_total',
      help: 'Batches an engine failed (a kernel error, a lost device): the chunk was released; dropped="true" when the slot moved to the next engine',
      labelNames: ['engine', 'dropped'],
      registers,
    });
    this.chunkSeconds = new Histogram({ name: 'layertap_chunk_seconds', help: 'Duration of chunk jobs that ended', buckets: CHUNK_BUCKETS, registers });
    this.activeChunks = new Gauge({ name: 'layertap_worker_active_chunks', help: 'Chunk jobs running in this worker', registers });
    const concurrency = new Gauge({ name: 'layertap_worker_concurrency', help: 'Chunk jobs this worker runs at once (--concurrency)', registers });
    concurrency.set(options.concurrency ?? 1);
    this.tensors = new Gauge({ name: 'layertap_inference_tensors', help: 'Tensors alive in the inference process after its last batch', labelNames: ['slot'], registers });
    this.tensorBytes = new Gauge({ name: 'layertap_inference_tensor_bytes', help: 'Bytes of the tensors alive in the inference process (weights included)', labelNames: ['slot'], registers });
    this.gpuBytes = new Gauge({
      name: 'layertap_gpu_memory_bytes',
      help: 'GPU memory held by the inference process, where its backend reports it (webgpu, cuda, tfjs-node-gpu)',
      labelNames: ['slot'],
      registers,
    });
    this.childRss = new Gauge({ name: 'layertap_inference_rss_bytes', help: 'Resident memory of the inference process', labelNames: ['slot'], registers });
    this.backendInfo = new Gauge({ name: 'layertap_inference_backend_info', help: 'Backend of each inference process (value 1)', labelNames: ['slot', 'backend'], registers });
    new Gauge({
      name: 'layertap_worker_rss_bytes',
      help: 'Resident memory of the worker process (sampled at scrape time)',
      registers,
      collect() {
        this.set(process.memoryUsage().rss);
      },
    });
  }

  /** Registers the queue depth gauges (sampled from Redis at scrape time). */
  watchQueues(queues: LayertapQueues): void {
    createQueueMetrics(queues, { registry: this.registry, Gauge });
  }

  /** The metrics one concurrency slot's chunks report to. */
  forSlot(slot: number): ChunkMetrics {
    const labels = { slot: String(slot) };
    return {
      sample: (status, code) => {
        this.samples.inc({ status });
        if (status === 'failed') this.failures.inc({ reason: code ?? 'unknown' });
      },
      skipped: (count) => this.skippedSamples.inc(count),
      stage: (stage, seconds) => this.stages.observe({ stage }, seconds),
      batch: (seconds, samples) => {
        this.batches.observe(seconds);
        this.batchSamples.inc(samples);
      },
      inferenceMemory: (memory, backend, reason) => {
        this.tensors.set(labels, memory.numTensors);
        this.tensorBytes.set(labels, memory.numBytes);
        this.childRss.set(labels, memory.childRssBytes);
        const previous = this.backends.get(slot);
        if (previous !== backend) {
          if (previous !== undefined) this.backendInfo.remove({ ...labels, backend: previous });
          this.backendInfo.set({ ...labels, backend }, 1);
          this.backends.set(slot, backend);
        }
        if (isGpuBackend(backend, reason)) this.gpuBytes.set(labels, memory.numBytes);
        else this.gpuBytes.remove(labels);
      },
    };
  }

  engineFault(engine: string, dropped: boolean): void {
    this.engineFaults.inc({ engine, dropped: String(dropped) });
  }

  chunkStarted(): void {
    this.activeChunks.inc();
  }

  chunkEnded(result: 'done' | 'failed' | 'released', seconds: number): void {
    this.activeChunks.dec();
    this.chunks.inc({ result });
    this.chunkSeconds.observe(seconds);
  }

  /** Counts the bytes of every object written through `writer`. */
  meter(writer: OutputWriter): OutputWriter {
    return new MeteredOutputWriter(writer, (kind, bytes) => this.bytes.inc({ kind }, bytes));
  }
}

/** An OutputWriter that reports the size of each object it writes. */
class MeteredOutputWriter implements OutputWriter {
  constructor(
    private readonly inner: OutputWriter,
    private readonly onWrite: (kind: OutputKind, bytes: number) => void,
  ) {}

  get uri(): string {
    return this.inner.uri;
  }

  async put(key: string, body: ObjectBody, options?: PutOptions): Promise<void> {
    await this.inner.put(key, body, options);
    this.onWrite(outputKind(key), bodyLength(body));
  }

  get(key: string): Promise<Buffer | undefined> {
    return this.inner.get(key);
  }

  read(key: string): Promise<Readable | undefined> {
    return this.inner.read(key);
  }

  head(key: string, length: number): Promise<Buffer | undefined> {
    return this.inner.head(key, length);
  }

  exists(key: string, expectedSize?: number): Promise<boolean> {
    return this.inner.exists(key, expectedSize);
  }

  list(prefix: string): Promise<string[]> {
    return this.inner.list(prefix);
  }

  delete(key: string): Promise<void> {
    return this.inner.delete(key);
  }

  urlFor(key: string): string {
    return this.inner.urlFor(key);
  }

  checkWritable(): Promise<void> {
    return this.inner.checkWritable();
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
