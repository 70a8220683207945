// The side of the engine thread that other threads hold: requests by id, batches and results moved between
// threads (transferred, not copied). Used by the inference process (behind the worker's pipe) and by
// `layertap bench` in its own process.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { ErrorCode, TransientError } from '@layertap/contracts';
import type { EngineInfo } from '@layertap/contracts';
import { errorFromWire, wallClockMs, type ChildUsage, type EngineProbe, type InferResult, type ModelInfo, type ModelSpec, type WireError } from './protocol';

export type EngineThreadRequest =
  | { id: number; type: 'load'; spec: ModelSpec }
  | { id: number; type: 'infer'; batch: Uint8Array | Float32Array; batchSize: number; receivedAt: number }
  | { id: number; type: 'probe'; probe: EngineProbe }
  | { id: number; type: 'dispose' }
  /** Memory given back for reuse (no reply): buffers of stored arrays the thread converted, once sent on. */
  | { id: number; type: 'recycle'; buffers: ArrayBuffer[] };

/** `recycled`: buffers the thread is done with (a batch's pixels, once normalised), given back for reuse. */
export type EngineThreadReply = ({ id: number; ok: true; value: unknown } | { id: number; ok: false; error: WireError }) & { recycled?: ArrayBuffer[] };

type Body = EngineThreadRequest extends infer R ? (R extends { id: number } ? Omit<R, 'id'> : never) : never;

/** The compiled thread entry beside this file (or, when this file runs from its TypeScript source, in dist/). */
function threadEntry(): string {
  const beside = path.join(__dirname, 'engine-thread.js');
  if (existsSync(beside)) return beside;
  return path.resolve(__dirname, '..', '..', 'dist', 'inference', 'engine-thread.js');
}

export class EngineThread {
  private readonly worker: Worker;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private exited: Error | undefined;
  private closing = false;

  /**
   * `onExit`: called when the thread ends unasked (a crash): its process usually cannot go on without it.
   * `onRecycled`: receives memory the thread is done with (batches sent to `infer`), for reuse.
   */
  constructor(options: { onExit?: (err: Error) => void; onRecycled?: (buffers: ArrayBuffer[]) => void } = {}) {
    this.worker = new Worker(threadEntry());
    this.worker.on('message', (reply: EngineThreadReply) => {
      if (reply.recycled?.length) options.onRecycled?.(reply.recycled);
      const waiter = this.pending.get(reply.id);
      if (!waiter) return;
      this.pending.delete(reply.id);
      if (reply.ok) waiter.resolve(reply.value);
      else waiter.reject(errorFromWire(reply.error));
    });
    const fail = (err: Error) => {
      if (this.exited) return;
      this.exited = err;
      if (!this.closing) options.onExit?.(err);
      for (const waiter of this.pending.values()) waiter.reject(err);
      this.pending.clear();
    };
    this.worker.on('error', (err) => fail(new TransientError(ErrorCode.InferenceFailed, `the engine thread failed: ${err.message}`)));
    this.worker.on('exit', (code) => fail(new TransientError(ErrorCode.InferenceFailed, `the engine thread exited (code ${code})`)));
  }

  private request<T>(body: Body, transfer: ArrayBuffer[] = []): Promise<T> {
    if (this.exited) return Promise.reject(this.exited);
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.worker.postMessage({ ...body, id }, transfer);
    });
  }

  probe(probe: EngineProbe): Promise<EngineInfo> {
    return this.request<EngineInfo>({ type: 'probe', probe });
  }

  load(spec: ModelSpec): Promise<ModelInfo> {
    return this.request<ModelInfo>({ type: 'load', spec });
  }

  /**
   * Runs a batch on the engine thread. The batch's memory moves to the thread (the caller's array is empty
   * afterwards); the result's arrays move back.
   */
  infer(batch: Uint8Array | Float32Array, batchSize: number, receivedAt = wallClockMs()): Promise<InferResult> {
    const whole = batch.byteOffset === 0 && batch.byteLength === batch.buffer.byteLength && batch.buffer instanceof ArrayBuffer;
    return this.request<InferResult>({ type: 'infer', batch, batchSize, receivedAt }, whole ? [batch.buffer as ArrayBuffer] : []);
  }

  /** Gives the thread memory back for reuse (moved, not copied): buffers of arrays it converted, once sent on. */
  recycle(buffers: ArrayBuffer[]): void {
    if (this.exited || buffers.length === 0) return;
    this.worker.postMessage({ id: 0, type: 'recycle', buffers }, buffers);
  }

  /** CPU time and memory of the whole process (every thread). */
  usage(): ChildUsage {
    const cpu = process.cpuUsage();
    return { cpuUserMs: cpu.user / 1000, cpuSystemMs: cpu.system / 1000, rssBytes: process.memoryUsage().rss };
  }

  /** Frees the model and stops the thread. */
  async close(): Promise<void> {
    this.closing = true;
    if (!this.exited) await this.request({ type: 'dispose' }).catch(() => undefined);
    await this.worker.terminate();
  }
}
