// The engine vocabulary: what `--engine` and `--backend` mean, for the worker, `bench` and `demo` alike.
// One definition here; the CLIs, the config readers and the model package take their names from it.
import { z } from 'zod';
import { ErrorCode, ValidationError } from './errors';

/**
 * What runs the model. `auto` picks the fastest engine that works here; `null` runs nothing and returns zeros
 * of the right shapes at once (it measures the pipeline around the model, never chosen by `auto`).
 */
export const EngineName = z.enum(['auto', 'onnx', 'tfjs', 'null']);
export type EngineName = z.infer<typeof EngineName>;

/** An engine that really runs: `auto` resolved. */
export type ConcreteEngine = Exclude<EngineName, 'auto'>;

/**
 * Where an engine runs it: ONNX Runtime's execution providers (`cpu`, `webgpu`, `cuda`) and TF.js backends
 * (`tensorflow` = tfjs-node(-gpu), `webgpu`, `wasm`, `cpu` = pure JavaScript). `auto`: the fastest that works.
 */
export const BackendName = z.enum(['auto', 'cpu', 'webgpu', 'cuda', 'tensorflow', 'wasm']);
export type BackendName = z.infer<typeof BackendName>;

/** The backends each engine has, fastest first. */
export const ENGINE_BACKENDS = {
  onnx: ['cuda', 'webgpu', 'cpu'],
  tfjs: ['tensorflow', 'webgpu', 'wasm', 'cpu'],
  null: ['cpu'],
} as const satisfies Record<ConcreteEngine, readonly Exclude<BackendName, 'auto'>[]>;

/** One engine on one backend: `onnx/cpu`, `tfjs/webgpu`. */
export interface EngineTarget {
  engine: ConcreteEngine;
  backend: Exclude<BackendName, 'auto'>;
}

/**
 * What `auto` tries, in order. Measured (ANCHORS): on an H100 TF.js WebGPU ran VGG16 about twice as fast as
 * ONNX Runtime's WebGPU provider; on a 2-core CPU ONNX Runtime ran it 20x faster than TF.js wasm. TF.js
 * `tensorflow` counts here only as the CUDA build (tfjs-node-gpu): the CPU build is slower than ONNX Runtime.
 */
export const AUTO_ORDER: readonly EngineTarget[] = [
  { engine: 'onnx', backend: 'cuda' },
  { engine: 'tfjs', backend: 'tensorflow' },
  { engine: 'tfjs', backend: 'webgpu' },
  { engine: 'onnx', backend: 'webgpu' },
  { engine: 'onnx', backend: 'cpu' },
  { engine: 'tfjs', backend: 'wasm' },
  { engine: 'tfjs', backend: 'cpu' },
];

/** `onnx/cpu`. */
export function targetLabel(target: EngineTarget): string {
  return `${target.engine}/${target.backend}`;
}

/** Every valid `--engine`/`--backend` pair besides `auto`, for error messages and help. */
export function validCombinations(): string[] {
  return Object.entries(ENGINE_BACKENDS).map(([engine, backends]) => `--engine ${engine} --backend ${['auto', ...backends].join('|')}`);
}

/**
 * The engines an `--engine`/`--backend` request allows, in the order they are tried. `auto` filters
 * `AUTO_ORDER` (so `--engine auto --backend webgpu` tries TF.js then ONNX Runtime on WebGPU); a named engine
 * with `--backend auto` tries its backends fastest first. Throws `ValidationError` (`invalid_request`) for an
 * impossible pair, listing the valid ones.
 */
export function engineTargets(engine: EngineName, backend: BackendName): EngineTarget[] {
  if (engine === 'auto') {
    const targets = AUTO_ORDER.filter((t) => backend === 'auto' || t.backend === backend);
    if (targets.length === 0) throw impossible(engine, backend);
    return targets;
  }
  const backends: readonly string[] = ENGINE_BACKENDS[engine];
  if (backend === 'auto') {
    // auto's order within the engine, then any backend auto leaves out (null/cpu).
    const ordered = AUTO_ORDER.filter((t) => t.engine === engine);
    return ordered.length > 0 ? [...ordered] : backends.map((b) => ({ engine, backend: b as EngineTarget['backend'] }));
  }
  if (!backends.includes(backend)) throw impossible(engine, backend);
  return [{ engine, backend }];
}

function impossible(engine: EngineName, backend: BackendName): ValidationError {
  return new ValidationError(
    ErrorCode.InvalidRequest,
    `--engine ${engine} --backend ${backend} is not a combination layertap has; valid: ${validCombinations().join('; ')}; ` +
      `or --engine auto --backend ${BackendName.options.join('|')}`,
  );
}

/** The device an engine computes on, as far as it can be known (for logs, status and `dataset.json`). */
export const EngineDevice = z.object({
  kind: z.enum(['gpu', 'cpu']),
  /** `NVIDIA H100 80GB HBM3 (nvidia, discrete)`, `llvmpipe: Mesa 25.0.7 (mesa, software)`, `AMD EPYC (2 threads)`. */
  description: z.string(),
  /** WebGPU adapter vendor and architecture, where reported. */
  vendor: z.string().optional(),
  architecture: z.string().optional(),
  /** A software rasteriser (llvmpipe, lavapipe, SwiftShader, WARP) or a fallback adapter. */
  software: z.boolean().optional(),
  /** CPU model and compute threads, for CPU engines. */
  cpuModel: z.string().optional(),
  threads: z.number().int().positive().optional(),
});
export type EngineDevice = z.infer<typeof EngineDevice>;

/** Which engine ran, on what, and why: recorded per chunk and in `dataset.json`, shown by `status` and the dashboard. */
export const EngineInfo = z.object({
  engine: z.string(),
  backend: z.string(),
  device: EngineDevice,
  /** Why this engine: what was passed over before it and why. */
  reason: z.string(),
  /** Things an operator should know (a software adapter used because it was named). */
  warnings: z.array(z.string()).default([]),
});
export type EngineInfo = z.infer<typeof EngineInfo>;
