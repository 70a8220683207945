import type { BackendName, EngineInfo, EngineName, LayerRequest, ModelName, Preprocess } from '@layertap/contracts';
import type { StoreSettings, StoredBatch } from '../stored-batch';

/** What identifies a loaded model: the child keeps it while consecutive jobs ask for the same one. */
export interface ModelSpec {
  /** Default `vgg16`. */
  model?: ModelName;
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

export type HostRequest =
  | { id: number; type: 'probe'; probe: EngineProbe }
  | { id: number; type: 'load'; spec: ModelSpec }
  /** `batch`: the images' 8-bit RGB pixels (NHWC, after resizing and cropping), normalised by the inference process. */
  | { id: number; type: 'infer'; batch: Uint8Array; batchSize: number }
  | { id: number; type: 'usage' };

/** A wall-clock time in milliseconds that processes on one machine agree on. */
export function wallClockMs(): number {
  return performance.timeOrigin + performance.now();
}

export interface WireError {
  name: string;
  code?: string;
  message: string;
}

export type ChildResponse =
  | { id: number; ok: true; value: unknown }
  | { id: number; ok: false; error: WireError };

export function modelKey(spec: ModelSpec): string {
  return JSON.stringify([spec.model ?? 'vgg16', spec.engine, spec.backend, spec.exclude ?? [], spec.im2col ?? false, spec.threads ?? null, spec.imageSize, spec.layers.map((l) => l.spec), spec.weights ?? null, spec.seed]);
}
