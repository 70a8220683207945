// What a running chunk reports; the worker implements it with Prometheus metrics, the bench with counters.

/** Stages of a chunk's pipeline, timed separately. */
export type Stage = 'fetch_decode' | 'inference' | 'readback' | 'encode' | 'upload';

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
   * Time of one stage: `fetch_decode` per image, `inference` and `readback` per batch, `encode` per array
   * (layout, pooling, float16 and .npy encoding or the copy into the shard), `upload` per object written
   * (.npy, shard, part).
   */
  stage(stage: Stage, seconds: number): void;
  /** One batch, from the inference request until its arrays are stored (npy) or copied into the shard. */
  batch(seconds: number, samples: number): void;
  /** The inference process's report after a batch, and the backend that produced it. */
  inferenceMemory(memory: InferenceMemory, backend: string, backendReason?: string): void;
}

