// The heart of a worker, shared with `layertap bench`: images prepared ahead of inference, batched, sent to
// the engine with the next batch already queued behind the one computing, and each batch's outputs written
// while later batches compute, with every stage bounded.
import { createLimiter, type Limiter } from './limiter';

/** One prepared image of a batch: its position in the run and its pixels (8-bit RGB, HWC, resized and cropped). */
export interface PreparedItem {
  index: number;
  pixels: Uint8Array;
}

/** What the engine gives back for a batch; the runner only passes it on to `store`. */
export type BatchOutput = object;

export interface BatchRunnerOptions<R extends BatchOutput> {
  /** Largest batch sent to the engine; items that prepare to nothing (failed, already stored) drop out. */
  batchSize: number;
  /** Bytes of one prepared image (`imageSize * imageSize * 3`). */
  imageValues: number;
  /** Items prepared (fetched, decoded, preprocessed) at once. */
  prepareConcurrency: number;
  /** Writes at once, across batches (`store` receives the limiter). */
  writeConcurrency: number;
  /**
   * Batches sent to the engine before the oldest one's result is back. 2 keeps the engine busy while a result
   * travels back and the next input travels there; 1 waits for each result before sending the next. Default 2.
   */
  inferenceDepth?: number;
  /** Batches whose writes may still be running while the next batches infer. Default 1. */
  writesBehind?: number;
  /** Prepares item `index`: its pixels, or undefined when it has nothing to run (failed, already stored). */
  prepare(index: number): Promise<Uint8Array | undefined>;
  /** Runs one batch (the images' pixels back to back); rejects when the engine fails (the run then stops with that error). */
  infer(input: Uint8Array, batchSize: number): Promise<R>;
  /** Stores a batch's outputs, every write through `write`. */
  store(batch: PreparedItem[], result: R, write: Limiter): Promise<void>;
  /** Asked before each batch is sent: true ends the run there (the rest is not run). */
  stop?(): boolean | Promise<boolean>;
  /** Aborts the run at once: the promise rejects with the signal's reason. */
  signal?: AbortSignal;
}

/** Where the runner's own loop spent the wall time, in milliseconds, and what it did. */
export interface BatchRunStats {
  batches: number;
  /** Items that reached the engine. */
  images: number;
  /** Waiting for prepared images (fetch/decode is the bottleneck when this is large). */
  waitPrepareMs: number;
  /** Waiting for the engine's results (the engine is the bottleneck when this is large). */
  waitInferenceMs: number;
  /** Waiting for earlier batches' writes (the output is the bottleneck when this is large). */
  waitWritesMs: number;
  /** True when `stop()` ended the run early. */
  stopped: boolean;
}

interface InFlight<R> {
  batch: PreparedItem[];
  result: Promise<R>;
}

/**
 * Runs items through prepare -> batch -> infer -> store. Items are prepared at most two batches ahead (and
 * at most `prepareConcurrency` at once), in order; a batch goes to the engine as soon as it is full (or the
 * items run out); up to `inferenceDepth` batches are with the engine at once; stores of finished batches run
 * behind, at most `writesBehind` batches of them, every write through one limiter. Everything started is
 * settled before `run` resolves or rejects: nothing keeps running behind the caller's back.
 */
export class BatchRunner<R extends BatchOutput> {
  constructor(private readonly options: BatchRunnerOptions<R>) {
    if (!(Number.isInteger(options.batchSize) && options.batchSize >= 1)) throw new RangeError(`batchSize must be a positive integer, got ${options.batchSize}`);
  }

  async run(count: number): Promise<BatchRunStats> {
    const o = this.options;
    const depth = Math.max(1, o.inferenceDepth ?? 2);
    const writesBehind = Math.max(0, o.writesBehind ?? 1);
    const prepareLimit = createLimiter(o.prepareConcurrency);
    const write = createLimiter(o.writeConcurrency);
    const stats: BatchRunStats = { batches: 0, images: 0, waitPrepareMs: 0, waitInferenceMs: 0, waitWritesMs: 0, stopped: false };

    // Items prepare ahead of the batch being filled: two batches' worth, or the concurrency if larger.
    const lookahead = Math.max(o.batchSize * 2, o.prepareConcurrency);
    const prepared: Array<Promise<Uint8Array | undefined> | undefined> = new Array(count);
    let nextToStart = 0;
    const startUpTo = (end: number): void => {
      for (; nextToStart < Math.min(end, count); nextToStart++) {
        const index = nextToStart;
        const task = prepareLimit(() => o.prepare(index));
        // Awaited in order below; a rejection while an earlier item is awaited must not go unhandled.
        task.catch(() => undefined);
        prepared[index] = task;
      }
    };

    const inFlight: Array<InFlight<R>> = [];
    const writes: Array<Promise<void>> = [];
    let failure: { error: unknown } | undefined;
    const fail = (error: unknown): void => void (failure ??= { error });
    const timed = async <T>(promise: Promise<T>, add: (ms: number) => void): Promise<T> => {
      const started = performance.now();
      try {
        return await promise;
      } finally {
        add(performance.now() - started);
      }
    };
    /** Takes the oldest batch's result and starts storing it; keeps at most `keep` batches with the engine. */
    const collect = async (keep: number): Promise<void> => {
      while (inFlight.length > keep && !failure) {
        const { batch, result } = inFlight.shift() as InFlight<R>;
        let output: R;
        try {
          output = await timed(abortable(result, o.signal), (ms) => (stats.waitInferenceMs += ms));
        } catch (err) {
          fail(err);
          return;
        }
        writes.push(o.store(batch, output, write).catch(fail));
        while (writes.length > writesBehind) await timed(writes.shift() as Promise<void>, (ms) => (stats.waitWritesMs += ms));
      }
    };

    startUpTo(lookahead);
    let batch: PreparedItem[] = [];
    try {
      for (let i = 0; i < count && !failure; i++) {
        const pixels = await timed(abortable(prepared[i] as Promise<Uint8Array | undefined>, o.signal), (ms) => (stats.waitPrepareMs += ms));
        prepared[i] = undefined;
        startUpTo(i + 1 + lookahead);
        if (pixels) batch.push({ index: i, pixels });
        if (batch.length === 0 || (batch.length < o.batchSize && i < count - 1)) continue;
        if (o.signal?.aborted) throw o.signal.reason ?? new Error('aborted');
        if (await o.stop?.()) {
          stats.stopped = true;
          break;
        }
        const input = new Uint8Array(batch.length * o.imageValues);
        batch.forEach((item, k) => input.set(item.pixels, k * o.imageValues));
        const result = o.infer(input, batch.length);
        result.catch(() => undefined);
        inFlight.push({ batch, result });
        stats.batches++;
        stats.images += batch.length;
        batch = [];
        await collect(depth - 1);
      }
      await collect(0);
    } catch (err) {
      fail(err);
    } finally {
      // Whatever happened, nothing started is left running: preparations, results, writes. An abort (shutdown)
      // abandons the batches with the engine: their results would only be thrown away.
      const results = o.signal?.aborted ? [] : inFlight.map((f) => f.result);
      await Promise.allSettled([...prepared.filter(Boolean), ...results]);
      await timed(Promise.allSettled(writes).then(() => undefined), (ms) => (stats.waitWritesMs += ms));
    }
    if (failure) throw failure.error;
    return stats;
  }
}

/** Resolves like `promise`, or rejects as soon as `signal` aborts (the work itself is abandoned). */
export function abortable<T>(promise: Promise<T>, signal?: AbortSignal): Promise<T> {
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
