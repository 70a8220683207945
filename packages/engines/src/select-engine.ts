// Which engine and backend run: the one asked for, or with `auto` the fastest that works on this machine, in
// the order `AUTO_ORDER` gives. Each candidate is probed (package present, device there, a test model runs);
// the ones passed over are listed with the reason, so the log says why the engine that runs was chosen.
import { availableParallelism } from 'node:os';
import { readdirSync, readFileSync } from 'node:fs';
import {
  ErrorCode,
  LayertapError,
  describeError,
  engineTargets,
  targetLabel,
  type BackendName,
  type EngineDevice,
  type EngineName,
  type EngineTarget,
} from '@layertap/contracts';
import { selectBackend, type BackendSelection } from './backend';
import { silentLog, type LogFn } from '@layertap/model';
import { checkProvider } from './onnx-runtime';
import { cpuDevice, gpuDevice, webgpuAdapter, type WebgpuAdapterReport } from './webgpu-adapter';

export interface EngineRequest {
  /** Default `auto`. */
  engine?: EngineName;
  /** The engine's backend (ONNX Runtime provider or TF.js backend). Default `auto`. */
  backend?: BackendName;
  /** ONNX Runtime CPU threads (for the device description). Default: one per core. */
  threads?: number;
  /** Engines not to try again (`onnx/webgpu`), with why they were dropped (a fault, a wrong result). */
  exclude?: ReadonlyMap<string, string>;
  log?: LogFn;
}

/** An engine that passed its probe: what it runs on and why it was chosen. */
export interface EngineChoice {
  target: EngineTarget;
  /** `onnx/cpu`. */
  label: string;
  device: EngineDevice;
  /** What was passed over before it and why, then its own note. */
  reason: string;
  /** Things an operator should know (a software adapter used because it was named). */
  warnings: string[];
  /** TF.js: the backend, already active. */
  selection?: BackendSelection;
  /** WebGPU: the largest buffer one shader may bind (batches are sliced to fit). */
  maxBindingBytes?: number;
  /** ONNX Runtime CPU: compute threads. */
  threads?: number;
}

/** No engine the request allows can run here; `reasons` lists each and why. */
export class NoEngineError extends LayertapError {
  override name = 'NoEngineError';
  constructor(readonly reasons: string[]) {
    super(ErrorCode.BackendUnavailable, `no engine can run here: ${reasons.join('; ')}`);
  }
}

/** The number of threads the CPU provider uses unless told: one per core this process may use. */
export function defaultThreads(): number {
  return availableParallelism();
}

/**
 * The engines a request allows, tried in order. `next()` probes candidates until one works; `drop()` records
 * that a chosen one failed later (a wrong result, a fault), so the next `next()` goes on past it.
 */
export class EngineChain {
  private readonly passedOver: string[] = [];
  private index = 0;

  private constructor(
    private readonly targets: EngineTarget[],
    /** A backend named explicitly may run on a software adapter; `auto` never does. */
    private readonly backendNamed: boolean,
    private readonly request: EngineRequest,
  ) {}

  /** Checks the request against the vocabulary (throws `invalid_request` listing the valid pairs). */
  static plan(request: EngineRequest): EngineChain {
    const backend = request.backend ?? 'auto';
    return new EngineChain(engineTargets(request.engine ?? 'auto', backend), backend !== 'auto', request);
  }

  /** The next engine that works here, or undefined when every candidate was passed over. */
  async next(): Promise<EngineChoice | undefined> {
    const log = this.request.log ?? silentLog;
    while (this.index < this.targets.length) {
      const target = this.targets[this.index++] as EngineTarget;
      const label = targetLabel(target);
      const dropped = this.request.exclude?.get(label);
      if (dropped !== undefined) {
        this.passedOver.push(`${label}: dropped earlier (${dropped})`);
        continue;
      }
      const onnxCpuLater = this.targets.slice(this.index).some((t) => t.engine === 'onnx' && t.backend === 'cpu' && !this.request.exclude?.has('onnx/cpu'));
      const probe = await probeTarget(target, { backendNamed: this.backendNamed, onnxCpuLater, threads: this.request.threads ?? defaultThreads(), log });
      if (!probe.ok) {
        this.passedOver.push(`${label}: ${probe.reason}`);
        continue;
      }
      const { ok: _ok, note, ...found } = probe;
      const choice: EngineChoice = { target, label, ...found, reason: [...this.passedOver, `${label}: ${note}`].join('; ') };
      log(`engine ${label}: ${choice.reason}`, { engine: target.engine, backend: target.backend, device: choice.device.description, ...(choice.warnings.length ? { warnings: choice.warnings } : {}) });
      for (const warning of choice.warnings) log(`warning: ${warning}`, { engine: label });
      return choice;
    }
    return undefined;
  }

  /** Records that `choice` failed after it was chosen; it is listed with `why` in later reasons. */
  drop(choice: EngineChoice, why: string): void {
    this.passedOver.push(`${choice.label}: ${why}`);
  }

  /** Every candidate tried so far and why it is not running. */
  get reasons(): string[] {
    return [...this.passedOver];
  }
}

/** Resolves a request to the first engine that works (without building a model). */
export async function resolveEngine(request: EngineRequest): Promise<EngineChoice> {
  const chain = EngineChain.plan(request);
  const choice = await chain.next();
  if (!choice) throw new NoEngineError(chain.reasons);
  return choice;
}

type Probe =
  | ({ ok: true; note: string } & Omit<EngineChoice, 'target' | 'label' | 'reason'>)
  | { ok: false; reason: string };

interface ProbeOptions {
  backendNamed: boolean;
  /** ONNX Runtime's CPU provider comes later in the chain: a CPU build of tfjs-node is passed over for it. */
  onnxCpuLater: boolean;
  threads: number;
  log: LogFn;
}

async function probeTarget(target: EngineTarget, options: ProbeOptions): Promise<Probe> {
  switch (`${target.engine}/${target.backend}`) {
    case 'onnx/cpu': {
      const check = await checkProvider('cpu');
      return check.available ? { ok: true, note: check.reason, device: cpuDevice(options.threads), warnings: [], threads: options.threads } : { ok: false, reason: check.reason };
    }
    case 'onnx/cuda': {
      const check = await checkProvider('cuda');
      return check.available ? { ok: true, note: check.reason, device: nvidiaDevice(), warnings: [] } : { ok: false, reason: check.reason };
    }
    case 'onnx/webgpu': {
      const adapter = await adapterFor(options);
      if (!adapter.ok) return adapter;
      const check = await checkProvider('webgpu');
      if (!check.available) return { ok: false, reason: check.reason };
      return { ok: true, note: check.reason, ...adapter.found };
    }
    case 'tfjs/webgpu': {
      const adapter = await adapterFor(options);
      if (!adapter.ok) return adapter;
      return withBackend('webgpu', options, (selection) => ({ ok: true, note: selection.reason, selection, ...adapter.found }));
    }
    case 'tfjs/tensorflow':
      return withBackend('tensorflow', options, (selection) => {
        const gpu = selection.build === 'tfjs-node-gpu';
        if (!gpu && options.onnxCpuLater && !options.backendNamed) {
          return { ok: false, reason: `${selection.reason}: a CPU build, slower than ONNX Runtime on the CPU` };
        }
        return { ok: true, note: selection.reason, selection, device: gpu ? nvidiaDevice() : cpuDevice(), warnings: [] };
      });
    case 'tfjs/wasm':
      return withBackend('wasm', options, (selection) => ({ ok: true, note: selection.reason, selection, device: cpuDevice(1), warnings: [] }));
    case 'tfjs/cpu':
      return withBackend('cpu', options, (selection) => ({ ok: true, note: selection.reason, selection, device: cpuDevice(1), warnings: [] }));
    case 'null/cpu':
      return { ok: true, note: 'requested: returns zeros of the right shapes, computes nothing', device: cpuDevice(), warnings: [] };
    default:
      return { ok: false, reason: 'not an engine layertap has' };
  }
}

async function withBackend(name: 'tensorflow' | 'webgpu' | 'wasm' | 'cpu', options: ProbeOptions, then: (selection: BackendSelection) => Probe): Promise<Probe> {
  try {
    return then(await selectBackend(name, { log: options.log }));
  } catch (err) {
    return { ok: false, reason: describeError(err).replace(/^backend \w+ is not available: /, '') };
  }
}

type AdapterProbe = { ok: true; found: { device: EngineDevice; warnings: string[]; maxBindingBytes: number } } | { ok: false; reason: string };

/**
 * The WebGPU adapter both WebGPU engines would run on. A software one (llvmpipe, SwiftShader, WARP) runs the
 * model 30-40x slower than ONNX Runtime on the CPU: passed over unless the backend was named, and then used
 * with a warning.
 */
async function adapterFor(options: ProbeOptions): Promise<AdapterProbe> {
  let adapter: WebgpuAdapterReport;
  try {
    adapter = await webgpuAdapter();
  } catch (err) {
    return { ok: false, reason: describeError(err) };
  }
  const device = gpuDevice(adapter);
  if (!adapter.software) return { ok: true, found: { device, warnings: [], maxBindingBytes: adapter.maxStorageBufferBindingSize } };
  if (!options.backendNamed) {
    return {
      ok: false,
      reason: `the adapter is ${device.description}: a software rasteriser, far slower than the CPU engines (name --backend webgpu to use it anyway)`,
    };
  }
  const warning = `running on a software WebGPU adapter (${device.description}), because --backend webgpu was named: expect it to be 30-40x slower than --engine onnx --backend cpu`;
  return { ok: true, found: { device, warnings: [warning], maxBindingBytes: adapter.maxStorageBufferBindingSize } };
}

/** The NVIDIA GPU(s) the driver lists, for CUDA engines (the driver's /proc files; no process started). */
function nvidiaDevice(): EngineDevice {
  const names: string[] = [];
  try {
    for (const gpu of readdirSync('/proc/driver/nvidia/gpus')) {
      const info = readFileSync(`/proc/driver/nvidia/gpus/${gpu}/information`, 'utf8');
      const model = /^Model:\s*(.+)$/m.exec(info)?.[1]?.trim();
      if (model) names.push(model);
    }
  } catch {
    // No NVIDIA driver files: the CUDA library loaded anyway (another vendor's layer, a container).
  }
  const description = names.length ? [...new Set(names)].map((n) => `${n}${names.filter((m) => m === n).length > 1 ? ` x${names.filter((m) => m === n).length}` : ''}`).join(', ') : 'CUDA device';
  return { kind: 'gpu', description, vendor: 'nvidia' };
}
