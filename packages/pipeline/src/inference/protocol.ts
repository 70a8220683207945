import { LayertapError, type BackendName, type EngineInfo, type EngineName, type ErrorCode, type LayerRequest, type ModelName, type Normalization, type OnnxModelRef, type Preprocess } from '@layertap/contracts';
import type { StoreSettings, StoredBatch } from '../stored-batch';
import type { FrameHeader } from './frames';

/** What identifies a loaded model: the child keeps it while consecutive jobs ask for the same one. */
export interface ModelSpec {
  /** Default `vgg16`. */
  model?: ModelName;
  /** The ONNX file of `model: onnx` (loaded and checked against its sha256 by the inference process). */
  onnx?: OnnxModelRef;
  engine: EngineName;
  backend: BackendName;
  /** Engines dropped after faults (`onnx/webgpu` -> why): the next one in the chain is loaded instead. */
  exclude?: [string, string][];
  /** TF.js WebGPU: convolutions through the separate im2col shader. */
  im2col?: boolean;
  /** ONNX Runtime compute threads (default: the cores this process may use). */
  threads?: number;
  imageSize: number;
  layers: LayerRequest[];
  /** Weights URI; absent means seeded random weights. */
  weights?: string;
  seed: number;
  /** How the 8-bit pixels a batch carries become model input (torchvision or caffe normalisation). */
  preprocess: Preprocess;
  /** `--mean`/`--std` in place of the mode's normalisation. Not part of the model key. */
  normalize?: Normalization;
  /** How the outputs are stored: results come back in that layout, pooling and dtype. Not part of the model key. */
  store: StoreSettings;
}

export interface ModelInfo {
  /** `<engine>:<backend or provider>`, e.g. `onnx:cpu`, `tfjs:wasm`, `tfjs:tensorflow`. */
  backend: string;
  /** Which engine runs, on what device, and why (the proof run included). */
  engine: EngineInfo;
  /** true when this request loaded the model (false when the child already had it). */
  fresh: boolean;
  backendReason: string;
  weights: { description: string; sha256?: string };
  loadMs: number;
}

export interface InferResult {
  /** Each hooked layer's stored arrays for the batch, in the order of the spec's layers. */
  outputs: StoredBatch[];
  inferenceMs: number;
  readbackMs: number;
  memory: { numTensors: number; numBytes: number; childRssBytes: number };
  /**
   * Wall-clock times in the inference process (ms since the epoch, `performance.timeOrigin + now()`, which
   * processes on one machine share): when the request arrived (deserialised), when its run began (after
   * earlier requests) and when the reply was ready to be serialised.
   */
  times: { receivedAt: number; startedAt: number; finishedAt: number };
  /**
   * Set by the host: the request's time in transit, to the inference process and back (serialisation,
   * the pipe, deserialisation), not counting its wait behind earlier requests.
   */
  transferMs?: number;
}

/** CPU time and memory of the inference process, for benchmarks. */
export interface ChildUsage {
  cpuUserMs: number;
  cpuSystemMs: number;
  rssBytes: number;
}

/** What `auto` (or the engine asked for) would choose here, before any model is built: for the start log. */
export interface EngineProbe {
  engine: EngineName;
  backend: BackendName;
  threads?: number;
}

/** Requests over the IPC channel (small ones: batches travel on the data channel, see `InferRequestHeader`). */
export type HostRequest =
  | { id: number; type: 'probe'; probe: EngineProbe }
  | { id: number; type: 'load'; spec: ModelSpec }
  | { id: number; type: 'usage' };

/**
 * An infer request on the data channel (host -> inference process). Its one segment is the images' 8-bit RGB
 * pixels (NHWC, after resizing and cropping), normalised by the inference process. Ids are shared with the
 * IPC requests.
 */
export interface InferRequestHeader extends FrameHeader {
  id: number;
  batchSize: number;
}

/** One layer's stored arrays on the wire: where its values lie in the reply's segments. */
export interface WireStoredBatch extends Omit<StoredBatch, 'data'> {
  segment: number;
  byteOffset: number;
  length: number;
}

export type WireInferResult = Omit<InferResult, 'outputs'> & { outputs: WireStoredBatch[] };

/** An infer reply on the data channel (inference process -> host): the outputs' bytes are its segments. */
export type InferReplyHeader = FrameHeader & ({ id: number; ok: true; value: WireInferResult } | { id: number; ok: false; error: WireError });

/**
 * A result as a frame header and the bytes to send: each memory the outputs view is sent once (two specs of
 * one layer share an array), as it is (no copy).
 */
export function packInferResult(result: InferResult): { value: WireInferResult; segments: Uint8Array[] } {
  const byBuffer = new Map<ArrayBufferLike, { start: number; end: number; index: number }>();
  for (const o of result.outputs) {
    const range = byBuffer.get(o.data.buffer);
    const start = o.data.byteOffset;
    const end = start + o.data.byteLength;
    if (range) {
      range.start = Math.min(range.start, start);
      range.end = Math.max(range.end, end);
    } else byBuffer.set(o.data.buffer, { start, end, index: byBuffer.size });
  }
  const segments = [...byBuffer.entries()].map(([buffer, r]) => new Uint8Array(buffer, r.start, r.end - r.start));
  const outputs = result.outputs.map(({ data, ...rest }): WireStoredBatch => {
    const r = byBuffer.get(data.buffer) as { start: number; index: number };
    return { ...rest, segment: r.index, byteOffset: data.byteOffset - r.start, length: data.length };
  });
  return { value: { ...result, outputs }, segments };
}

/** The result a reply frame carries: each output a view of its segment (copied only if misaligned). */
export function unpackInferResult(value: WireInferResult, segments: readonly Uint8Array[]): InferResult {
  const outputs = value.outputs.map(({ segment, byteOffset, length, ...rest }): StoredBatch => {
    const bytes = segments[segment];
    const Type = rest.dtype === 'float16' ? Uint16Array : Float32Array;
    if (!bytes || byteOffset + length * Type.BYTES_PER_ELEMENT > bytes.byteLength) throw new RangeError(`${rest.spec}: the reply's segment ${segment} is too short`);
    const offset = bytes.byteOffset + byteOffset;
    const buffer = bytes.buffer as ArrayBuffer;
    const data = offset % Type.BYTES_PER_ELEMENT === 0 ? new Type(buffer, offset, length) : new Type(buffer.slice(offset, offset + length * Type.BYTES_PER_ELEMENT));
    return { ...rest, data };
  });
  return { ...value, outputs };
}

/** A wall-clock time in milliseconds that processes on one machine agree on. */
export function wallClockMs(): number {
  return performance.timeOrigin + performance.now();
}

export interface WireError {
  name: string;
  code?: string;
  message: string;
}

/**
 * An error as it crossed from the engine thread or the inference process, rebuilt with its code and name. It
 * is not rebuilt as a `ValidationError`: a worker retries what failed there (a weights mirror that is down
 * may come back), and records the reason on every sample once the retries are spent.
 */
export function errorFromWire(error: WireError): Error {
  const err = error.code ? new LayertapError(error.code as ErrorCode, error.message) : new Error(error.message);
  err.name = error.name;
  return err;
}

export type ChildResponse =
  | { id: number; ok: true; value: unknown }
  | { id: number; ok: false; error: WireError };

export function modelKey(spec: ModelSpec): string {
  return JSON.stringify([spec.model ?? 'vgg16', spec.engine, spec.backend, spec.exclude ?? [], spec.im2col ?? false, spec.threads ?? null, spec.imageSize, spec.layers.map((l) => l.spec), spec.weights ?? null, spec.seed, ...(spec.onnx ? [spec.onnx.sha256] : [])]);
}
