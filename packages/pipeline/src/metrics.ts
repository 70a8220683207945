// What a running chunk reports; the worker implements it with Prometheus metrics, the bench with counters.

/**
 * Stages of a chunk's pipeline, timed separately: `fetch` (the source's bytes), `decode` (to 8-bit RGB),
 * `preprocess` (resize, crop, normalise), `transfer` (the batch to the inference process and its outputs
 * back), `inference` and `readback` (in the inference process), `encode` (layout, pooling, float16, .npy or
 * the copy into a shard), `write` (each object stored).
 */
export type Stage = 'fetch' | 'decode' | 'preprocess' | 'transfer' | 'inference' | 'readback' | 'encode' | 'write';

export const STAGES: readonly Stage[] = ['fetch', 'decode', 'preprocess', 'transfer', 'inference', 'readback', 'encode', 'write'];

/** Memory the inference process reports after each batch. */
export interface InferenceMemory {
  numTensors: number;
  numBytes: number;
  childRssBytes: number;
}

/** What one chunk tells the metrics; one per concurrency slot (each slot has its own inference process). */
export interface ChunkMetrics {
  /** A sample got its manifest line. */
  sample(status: 'ok' | 'failed', code?: string): void;
  /** Samples an earlier attempt had already stored. */
  skipped(count: number): void;
  /**
   * Time of one stage: `fetch`, `decode`, `preprocess` per image; `transfer`, `inference` and `readback` per
   * batch; `encode` per array; `write` per object written (.npy, shard, part).
   */
  stage(stage: Stage, seconds: number): void;
  /** One batch, from the inference request until its arrays are stored (npy) or copied into the shard. */
  batch(seconds: number, samples: number): void;
  /** The inference process's report after a batch, and the backend that produced it. */
  inferenceMemory(memory: InferenceMemory, backend: string, backendReason?: string): void;
}

