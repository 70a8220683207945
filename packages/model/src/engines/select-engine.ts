// Which engine and backend run: the one asked for, or with `auto` the fastest that works on this machine.
import { availableParallelism } from 'node:os';
import { ErrorCode, ValidationError, describeError, type BackendName } from '@layertap/contracts';
import { selectBackend, type BackendSelection } from '../backend';
import { silentLog, type LogFn } from '../log';
import type { EngineName, OnnxProvider } from './engine';
import { checkProvider } from './onnx-runtime';

export interface EngineRequest {
  /** Default: `onnx` when `onnxProvider` is given, else `tfjs` (the engine layertap had before engines). */
  engine?: EngineName;
  /** TF.js backend (tfjs engine only). */
  backend?: BackendName;
  /** ONNX Runtime provider (onnx engine only). Default: the fastest that works (cuda, webgpu, cpu). */
  onnxProvider?: OnnxProvider;
  log?: LogFn;
}

/** The engine to start: a tfjs backend already selected, or an ONNX Runtime provider that passed its check. */
export type EngineChoice =
  | { engine: 'tfjs'; selection: BackendSelection; reason: string }
  | { engine: 'onnx'; provider: OnnxProvider; reason: string };

const TFJS_NODE_GPU = '@tensorflow/tfjs-node-gpu';
const TFJS_WEBGPU = '@tensorflow/tfjs-backend-webgpu';

/**
 * Resolves an engine request. `auto` tries, in order: ONNX Runtime CUDA, TF.js tensorflow through
 * tfjs-node-gpu, TF.js WebGPU, ONNX Runtime WebGPU, ONNX Runtime CPU, then TF.js `auto` (tfjs-node or wasm),
 * and says in `reason` why each earlier one was passed over. Measured on an H100, TF.js WebGPU ran VGG16 about
 * twice as fast as ONNX Runtime's WebGPU provider; on a 2-core CPU ONNX Runtime ran it 20x faster than wasm.
 * Throws `ValidationError` (`invalid_request`) when an explicitly requested engine or backend cannot run.
 */
export async function resolveEngine(request: EngineRequest): Promise<EngineChoice> {
  const log = request.log ?? silentLog;
  const engine = request.engine ?? (request.onnxProvider ? 'onnx' : 'tfjs');
  const backend = request.backend ?? 'auto';
  let choice: EngineChoice;
  if (engine === 'tfjs' || (engine === 'auto' && backend !== 'auto')) {
    if (request.onnxProvider) throw conflict(`onnxProvider ${request.onnxProvider} is an ONNX Runtime option; the tfjs engine takes a backend`);
    const selection = await selectBackend(backend, { log });
    const why = engine === 'auto' ? `tfjs backend ${backend} requested; ` : '';
    choice = { engine: 'tfjs', selection, reason: `${why}${selection.reason}` };
  } else if (engine === 'onnx' || request.onnxProvider) {
    if (backend !== 'auto') throw conflict(`backend ${backend} is a TF.js option; the onnx engine takes an onnxProvider`);
    choice = await resolveOnnx(request.onnxProvider);
  } else {
    choice = await resolveAuto(log);
  }
  log(`engine ${describeChoice(choice)}: ${choice.reason}`, { engine: choice.engine, backend: choiceBackend(choice), requested: engine });
  return choice;
}

/** `onnx/cpu`, `tfjs/wasm`. */
export function describeChoice(choice: EngineChoice): string {
  return `${choice.engine}/${choiceBackend(choice)}`;
}

function choiceBackend(choice: EngineChoice): string {
  return choice.engine === 'tfjs' ? choice.selection.name : choice.provider;
}

/** The number of threads the CPU provider uses unless told: one per core this process may use. */
export function defaultThreads(): number {
  return availableParallelism();
}

async function resolveOnnx(provider: OnnxProvider | undefined): Promise<EngineChoice> {
  if (provider) {
    const check = await checkProvider(provider);
    if (!check.available) throw new ValidationError(ErrorCode.InvalidRequest, `ONNX Runtime provider ${provider} is not available: ${check.reason}`);
    return { engine: 'onnx', provider, reason: `${provider} requested` };
  }
  const passedOver: string[] = [];
  for (const candidate of ['cuda', 'webgpu', 'cpu'] as const) {
    const check = await checkProvider(candidate);
    if (check.available) return { engine: 'onnx', provider: candidate, reason: [...passedOver, `${candidate}: ${check.reason}`].join('; ') };
    passedOver.push(`${candidate}: ${check.reason}`);
  }
  throw new ValidationError(ErrorCode.InvalidRequest, `no ONNX Runtime provider works here: ${passedOver.join('; ')}`);
}

async function resolveAuto(log: LogFn): Promise<EngineChoice> {
  const passedOver: string[] = [];
  const onnx = async (provider: OnnxProvider): Promise<EngineChoice | undefined> => {
    const check = await checkProvider(provider);
    if (check.available) return { engine: 'onnx', provider, reason: [...passedOver, `onnx/${provider}: ${check.reason}`].join('; ') };
    passedOver.push(`onnx/${provider}: ${check.reason}`);
    return undefined;
  };
  const tfjs = async (backend: 'tensorflow' | 'webgpu', id: string): Promise<EngineChoice | undefined> => {
    if (!isInstalled(id)) {
      passedOver.push(`tfjs/${backend}: ${id} not installed`);
      return undefined;
    }
    try {
      const selection = await selectBackend(backend, { log });
      // selectBackend('tensorflow') falls back to tfjs-node, a CPU build: not what this step is for.
      if (backend === 'tensorflow' && !selection.reason.includes(`${id} loaded`)) {
        passedOver.push(`tfjs/${backend}: ${id} did not load (${selection.reason})`);
        return undefined;
      }
      return { engine: 'tfjs', selection, reason: [...passedOver, `tfjs/${backend}: ${selection.reason}`].join('; ') };
    } catch (err) {
      passedOver.push(`tfjs/${backend}: ${describeError(err)}`);
      return undefined;
    }
  };
  const found =
    (await onnx('cuda')) ??
    (await tfjs('tensorflow', TFJS_NODE_GPU)) ??
    (await tfjs('webgpu', TFJS_WEBGPU)) ??
    (await onnx('webgpu')) ??
    (await onnx('cpu'));
  if (found) return found;
  const selection = await selectBackend('auto', { log });
  return { engine: 'tfjs', selection, reason: [...passedOver, `tfjs/${selection.name}: ${selection.reason}`].join('; ') };
}

function conflict(message: string): ValidationError {
  return new ValidationError(ErrorCode.InvalidRequest, message);
}

function isInstalled(id: string): boolean {
  try {
    require.resolve(id);
    return true;
  } catch {
    return false;
  }
}
