// WebGPU in Node through Dawn (the `webgpu` package): the `navigator.gpu` TF.js needs, and what the adapter is.
// ONNX Runtime's WebGPU provider carries its own Dawn, which asks the same Vulkan driver for a high-performance
// adapter: the adapter seen here is the one it gets, so its report stands for both WebGPU engines.
import { cpus } from 'node:os';
import path from 'node:path';
import { describeError, type EngineDevice } from '@layertap/contracts';

const DAWN = 'webgpu';

/** The parts of WebGPU's GPU/GPUAdapter interfaces layertap reads. */
interface GpuAdapterLike {
  readonly info?: { vendor?: string; architecture?: string; device?: string; description?: string; isFallbackAdapter?: boolean };
  readonly isFallbackAdapter?: boolean;
  readonly features: Iterable<string>;
  readonly limits: { maxStorageBufferBindingSize: number; maxBufferSize: number };
}
interface GpuLike {
  requestAdapter(options?: { powerPreference?: 'high-performance' | 'low-power' }): Promise<GpuAdapterLike | null>;
}

/** What the WebGPU adapter is: enough to choose an engine, size batches and tell an operator. */
export interface WebgpuAdapterReport {
  vendor: string;
  architecture: string;
  /** Driver description, e.g. `llvmpipe: Mesa 25.0.7 (LLVM 15.0.6)`. */
  description: string;
  /** A software rasteriser or fallback adapter: correct, but slower than the CPU engines. */
  software: boolean;
  features: string[];
  /** The largest buffer one shader may bind: a batch's activations (and fc1's 411 MB kernel) must fit it. */
  maxStorageBufferBindingSize: number;
  maxBufferSize: number;
}

/** Adapters that are software rasterisers: Mesa's llvmpipe/lavapipe, Google's SwiftShader, Microsoft's WARP. */
const SOFTWARE_NAMES = /llvmpipe|lavapipe|swiftshader|\bwarp\b|basic render driver|softpipe/i;

/** Whether an adapter is a software one: it says so (architecture, fallback flag) or its name gives it away. */
export function isSoftwareAdapter(info: { architecture?: string; description?: string; device?: string; vendor?: string; fallback?: boolean }): boolean {
  if (info.fallback) return true;
  if ((info.architecture ?? '').toLowerCase() === 'software') return true;
  return [info.description, info.device, info.vendor].some((text) => SOFTWARE_NAMES.test(text ?? ''));
}

let gpu: Promise<GpuLike> | undefined;

/**
 * Dawn's `GPU` object, loaded once per process, with the WebGPU globals (GPUBufferUsage, ...) installed and
 * `navigator.gpu` set where Node has none (Node 21+ has a `navigator` without `gpu`: it is added to it).
 * Rejects with the reason when the package is missing or fails to load.
 */
export function dawnGpu(): Promise<GpuLike> {
  gpu ??= Promise.resolve().then(loadDawn);
  gpu.catch(() => (gpu = undefined));
  return gpu;
}

function loadDawn(): GpuLike {
  const global = globalThis as { navigator?: { gpu?: GpuLike } };
  if (global.navigator?.gpu) return global.navigator.gpu;
  let dawn: { create: (flags: string[]) => GpuLike; globals: Record<string, unknown> };
  try {
    dawn = loadDawnAddon();
  } catch (err) {
    throw new Error(`the ${DAWN} package (Dawn's Node bindings) failed to load: ${describeError(err).split('\n')[0]}`);
  }
  for (const [key, value] of Object.entries(dawn.globals)) {
    if (!(key in globalThis)) Object.defineProperty(globalThis, key, { value, configurable: true, writable: true });
  }
  const created = dawn.create([]);
  if (global.navigator) Object.defineProperty(global.navigator, 'gpu', { value: created, configurable: true });
  else Object.defineProperty(globalThis, 'navigator', { value: { gpu: created }, configurable: true, writable: true });
  return created;
}

/**
 * Dawn's native addon, loaded the way the package's own (ESM-only) entry loads it: `dist/<platform>-<arch>/dawn.node`.
 * Requiring it directly works from CommonJS and under test runners that cannot import ESM.
 */
function loadDawnAddon(): { create: (flags: string[]) => GpuLike; globals: Record<string, unknown> } {
  const root = path.dirname(require.resolve(`${DAWN}/package.json`));
  const arch = process.platform === 'darwin' ? 'universal' : process.arch;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require(path.join(root, 'dist', `${process.platform}-${arch}`, 'dawn.node')) as ReturnType<typeof loadDawnAddon>;
}

let report: Promise<WebgpuAdapterReport> | undefined;

/**
 * The high-performance WebGPU adapter of this machine, asked once per process. Rejects, saying why, when
 * there is none (no Vulkan/Metal/D3D12 driver, or Dawn refused it: Mesa 22's lavapipe is refused).
 */
export function webgpuAdapter(): Promise<WebgpuAdapterReport> {
  report ??= (async () => {
    const found = await (await dawnGpu()).requestAdapter({ powerPreference: 'high-performance' });
    if (!found) throw new Error('no WebGPU adapter (no GPU with a Vulkan driver that Dawn accepts)');
    const info = found.info ?? {};
    const description = info.description || info.device || 'unknown adapter';
    return {
      vendor: info.vendor || 'unknown',
      architecture: info.architecture || 'unknown',
      description,
      software: isSoftwareAdapter({ ...info, fallback: info.isFallbackAdapter ?? found.isFallbackAdapter ?? false }),
      features: [...found.features].sort(),
      maxStorageBufferBindingSize: found.limits.maxStorageBufferBindingSize,
      maxBufferSize: found.limits.maxBufferSize,
    };
  })();
  report.catch(() => (report = undefined));
  return report;
}

/** The adapter as an `EngineDevice`. */
export function gpuDevice(adapter: WebgpuAdapterReport): EngineDevice {
  const notes = [adapter.vendor, adapter.architecture !== 'unknown' ? adapter.architecture : undefined, adapter.software ? 'software' : undefined];
  const kind = [...new Set(notes.filter(Boolean))].join(', ');
  return {
    kind: 'gpu',
    description: `${adapter.description} (${kind})`,
    vendor: adapter.vendor,
    architecture: adapter.architecture,
    software: adapter.software,
  };
}

/** This machine's CPU as an `EngineDevice`, with the compute threads an engine uses (when it sets them). */
export function cpuDevice(threads?: number): EngineDevice {
  const cpuModel = cpus()[0]?.model.trim() || 'unknown CPU';
  return {
    kind: 'cpu',
    description: threads ? `${cpuModel} (${threads} thread${threads === 1 ? '' : 's'})` : cpuModel,
    cpuModel,
    ...(threads ? { threads } : {}),
  };
}
