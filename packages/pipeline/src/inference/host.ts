import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { ErrorCode, TransientError } from '@layertap/contracts';
import type { EngineInfo } from '@layertap/contracts';
import type { Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { createLogger, type Logger } from '@layertap/config';
import { BufferPool, FrameReader, writeFrame } from './frames';
import { logNativeLine } from './native-output';
import {
  unpackInferResult,
  wallClockMs,
  type ChildResponse,
  errorFromWire,
  type ChildUsage,
  type EngineProbe,
  type HostRequest,
  type InferReplyHeader,
  type InferRequestHeader,
  type InferResult,
  type ModelInfo,
  type ModelSpec,
  type WireInferResult,
} from './protocol';

export interface InferenceHostOptions {
  /** The child's entry file. Default: the compiled `child.js` beside this file. */
  childPath?: string;
  /** Environment for the child. Default: this process's (inherited). */
  env?: NodeJS.ProcessEnv;
  /**
   * Where the child's stdout and stderr lines go (native libraries' writes, its JSON warnings), one log line
   * each. Default: a JSON logger on this process's stdout.
   */
  log?: Logger;
}

type Pending = { resolve: (value: unknown) => void; reject: (err: Error) => void; child: ChildProcess };

type RequestBody = HostRequest extends infer R ? (R extends { id: number } ? Omit<R, 'id'> : never) : never;

/**
 * Parent side of one inference child process: forks it on first use, sends small requests over IPC and
 * batches over the data channel (raw bytes on a socket pair, see frames.ts: activations are copied once, from
 * the socket into the buffer they are written from), and turns a crash into rejected requests and a fresh
 * child next time.
 */
export class InferenceHost {
  private child: ChildProcess | undefined;
  private data: Socket | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private model: ModelInfo | undefined;
  /** Where batches' activations are received, reused from batch to batch (see `release`). */
  private readonly pool = new BufferPool();

  private readonly log: Logger;

  constructor(private readonly options: InferenceHostOptions = {}) {
    this.log = options.log ?? createLogger({ name: 'layertap-inference' });
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  private ensureChild(): ChildProcess {
    if (this.child && this.child.connected) return this.child;
    const childPath = this.options.childPath ?? path.join(__dirname, 'child.js');
    const child = fork(childPath, [], {
      // stdout and stderr piped: native libraries write to them directly, and the worker's log is JSON lines.
      // fd 4: the data channel (a socket pair, both ways).
      stdio: ['ignore', 'pipe', 'pipe', 'ipc', 'pipe'],
      // Without `env`, fork passes this process's environment on.
      ...(this.options.env ? { env: this.options.env } : {}),
      execArgv: [],
    });
    for (const stream of ['stdout', 'stderr'] as const) {
      const input = child[stream];
      if (input) createInterface({ input, crlfDelay: Infinity }).on('line', (line) => logNativeLine(this.log, line, stream, child.pid));
    }
    child.on('message', (msg: ChildResponse) => {
      const waiter = this.pending.get(msg.id);
      if (!waiter) return;
      this.pending.delete(msg.id);
      if (msg.ok) waiter.resolve(msg.value);
      else waiter.reject(errorFromWire(msg.error));
    });
    const data = child.stdio[4] as Socket;
    new FrameReader<InferReplyHeader>(
      ({ header, segments }) => {
        const waiter = this.pending.get(header.id);
        if (!waiter) return;
        this.pending.delete(header.id);
        if (!header.ok) return waiter.reject(errorFromWire(header.error));
        try {
          waiter.resolve(unpackInferResult(header.value as WireInferResult, segments));
        } catch (err) {
          waiter.reject(err as Error);
        }
      },
      // A broken stream: the child cannot be trusted to answer; its exit rejects what is pending.
      () => child.kill('SIGKILL'),
      (size) => this.pool.take(size),
    ).attach(data);
    // Errors on the channel come with the child's exit, which is what reports them.
    data.on('error', () => undefined);
    child.on('exit', (code, signal) => {
      if (this.child === child) {
        this.child = undefined;
        this.data = undefined;
        this.model = undefined;
      }
      const err = new TransientError(ErrorCode.InferenceFailed, `inference process exited (code ${code}, signal ${signal})`);
      for (const [id, waiter] of this.pending) {
        // Requests already sent to a newer child are that child's to answer.
        if (waiter.child !== child) continue;
        this.pending.delete(id);
        waiter.reject(err);
      }
    });
    this.child = child;
    this.data = data;
    return child;
  }

  private request<T>(body: RequestBody): Promise<T> {
    const child = this.ensureChild();
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, child });
      child.send({ ...body, id } as HostRequest, (err) => {
        if (err) {
          this.pending.delete(id);
          reject(new TransientError(ErrorCode.InferenceFailed, `cannot reach the inference process: ${err.message}`));
        }
      });
    });
  }

  /** The engine a request gets in the child, and why (no model is built). */
  probe(probe: EngineProbe): Promise<EngineInfo> {
    return this.request<EngineInfo>({ type: 'probe', probe });
  }

  /** Loads (or keeps) the model for `spec` in the child. */
  async load(spec: ModelSpec): Promise<ModelInfo> {
    this.model = await this.request<ModelInfo>({ type: 'load', spec });
    return this.model;
  }

  /**
   * Runs a batch in the child. Several may be in flight: the child runs them one after the other, so the
   * next batch is already there when one finishes. The result says how long the batch was in transit.
   */
  async infer(batch: Uint8Array, batchSize: number): Promise<InferResult> {
    const child = this.ensureChild();
    const data = this.data as Socket;
    const id = this.nextId++;
    const sentAt = wallClockMs();
    const result = await new Promise<InferResult>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, child });
      // `batch` is written from its own memory: the caller hands it over (BatchRunner builds one per batch).
      const header: InferRequestHeader = { id, batchSize, sizes: [batch.byteLength] };
      writeFrame(data, header, [batch]);
    });
    const { receivedAt, finishedAt } = result.times;
    return { ...result, transferMs: Math.max(0, receivedAt - sentAt) + Math.max(0, wallClockMs() - finishedAt) };
  }

  /**
   * Hands a result's memory back for the next batches to be received into. Call it once nothing reads the
   * result's arrays any more (every write of them finished); never for a result whose writes may still run.
   */
  release(result: InferResult): void {
    const seen = new Set<ArrayBufferLike>();
    for (const output of result.outputs) {
      const buffer = output.data.buffer;
      if (seen.has(buffer)) continue;
      seen.add(buffer);
      this.pool.give(new Uint8Array(buffer));
    }
  }

  /** CPU time and memory of the child so far (zero when none is running). */
  async usage(): Promise<ChildUsage> {
    if (!this.child?.connected) return { cpuUserMs: 0, cpuSystemMs: 0, rssBytes: 0 };
    return this.request<ChildUsage>({ type: 'usage' });
  }

  /** Stops the child: it finishes nothing, so call this only when no request is in flight. */
  async close(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (!child || child.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      child.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      child.disconnect();
    });
  }
}
