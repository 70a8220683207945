// Choosing and starting the TensorFlow.js backend. tfjs-node(-gpu) and the WebGPU backend are optional peers
// (they cannot install everywhere), so they are looked up and loaded at run time, only when present.
import * as tf from '@tensorflow/tfjs-core';
// Side-effect imports: they register the always-available backends with tfjs-core.
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { ErrorCode, ValidationError, describeError } from '@layertap/contracts';
import { dawnGpu } from './webgpu-adapter';
import { allowTensorflowGpuGrowth } from './env';
import { silentLog, type LogFn } from '@layertap/model';

/** TF.js backends, and `auto`: tfjs-node-gpu, else tfjs-node, else wasm. */
export type TfjsBackendName = 'auto' | 'tensorflow' | 'webgpu' | 'wasm' | 'cpu';

/** The backend that runs and why it was chosen (for logs and provenance). */
export interface BackendSelection {
  /** tfjs backend name: `tensorflow`, `webgpu`, `wasm` or `cpu`. */
  name: string;
  reason: string;
  /** `tensorflow` only: which build loaded (the CUDA build computes on the GPU, the other on the CPU). */
  build?: 'tfjs-node-gpu' | 'tfjs-node';
}

export interface SelectBackendOptions {
  /** Told which backend runs and why the others were passed over. Default: silent. */
  log?: LogFn;
}

const TFJS_NODE_GPU = '@tensorflow/tfjs-node-gpu';
const TFJS_NODE = '@tensorflow/tfjs-node';
const TFJS_WEBGPU = '@tensorflow/tfjs-backend-webgpu';

/** One selection per requested name and process: native modules load once, and callers may ask again. */
const selections = new Map<TfjsBackendName, Promise<BackendSelection>>();

/**
 * Makes `name` the active tfjs backend. `auto`: tfjs-node-gpu, else tfjs-node, else wasm. `tensorflow`:
 * tfjs-node-gpu or tfjs-node. `webgpu`: tfjs-backend-webgpu over Dawn (the `webgpu` package) in Node.
 * `wasm`: SIMD, one thread. `cpu`: pure JavaScript (slow; for tests). Throws `ValidationError`
 * (`invalid_request`) when the requested backend cannot run here, saying why.
 */
export async function selectBackend(name: TfjsBackendName, options: SelectBackendOptions = {}): Promise<BackendSelection> {
  const log = options.log ?? silentLog;
  let selection = selections.get(name);
  if (!selection) {
    selection = startBackend(name, log);
    selections.set(name, selection);
    // A failed attempt is not cached: the caller may fix the cause (install a package) and retry.
    selection.catch(() => selections.delete(name));
  }
  const chosen = await selection;
  // Another name may have been selected since; switching back to an initialised backend is cheap.
  if (tf.getBackend() !== chosen.name) await activate(chosen.name);
  return chosen;
}

async function startBackend(name: TfjsBackendName, log: LogFn): Promise<BackendSelection> {
  let selection: BackendSelection;
  switch (name) {
    case 'auto':
      selection = await startAuto();
      break;
    case 'tensorflow':
      selection = await startTensorflow();
      break;
    case 'webgpu':
      selection = await startWebgpu();
      break;
    case 'wasm':
      selection = await startWasm('requested');
      break;
    case 'cpu':
      await activate('cpu');
      selection = { name: 'cpu', reason: 'requested (pure JavaScript, slow)' };
      break;
  }
  log(`tfjs backend ${selection.name}: ${selection.reason}`, { backend: selection.name, requested: name });
  return selection;
}

async function startAuto(): Promise<BackendSelection> {
  const passedOver: string[] = [];
  return (await loadTensorflow(passedOver)) ?? startWasm(passedOver.join('; '));
}

async function startTensorflow(): Promise<BackendSelection> {
  const passedOver: string[] = [];
  const selection = await loadTensorflow(passedOver);
  if (selection) return selection;
  throw unavailable(
    'tensorflow',
    `${passedOver.join('; ')}. Install ${TFJS_NODE_GPU} (CUDA 11.2, cuDNN 8.1) or ${TFJS_NODE}; both download ` +
      'libtensorflow at install time',
  );
}

/** tfjs-node-gpu, else tfjs-node; undefined when neither loads, with the reasons added to `passedOver`. */
async function loadTensorflow(passedOver: string[]): Promise<BackendSelection | undefined> {
  for (const id of [TFJS_NODE_GPU, TFJS_NODE]) {
    if (!isInstalled(id)) {
      passedOver.push(`${id} not installed`);
      continue;
    }
    // libtensorflow reads this when it creates its first session: it must be set before the module loads.
    const growth = id === TFJS_NODE_GPU && allowTensorflowGpuGrowth();
    try {
      loadModule(id);
      await activate('tensorflow');
    } catch (err) {
      passedOver.push(`${id} failed to load: ${describeError(err)}`);
      continue;
    }
    const notes = [...passedOver, `${id} loaded`, ...(growth ? ['TF_FORCE_GPU_ALLOW_GROWTH=true'] : [])];
    return { name: 'tensorflow', reason: notes.join('; '), build: id === TFJS_NODE_GPU ? 'tfjs-node-gpu' : 'tfjs-node' };
  }
  return undefined;
}

async function startWasm(reason: string): Promise<BackendSelection> {
  await activate('wasm');
  const simd = tf.env().getBool('WASM_HAS_SIMD_SUPPORT');
  const threads = tf.env().getBool('WASM_HAS_MULTITHREAD_SUPPORT');
  const how = `${simd ? 'with' : 'without'} SIMD, ${threads ? 'multi' : 'one'}-threaded`;
  return { name: 'wasm', reason: `${reason}; wasm ${how}` };
}

async function startWebgpu(): Promise<BackendSelection> {
  if (!isInstalled(TFJS_WEBGPU)) throw unavailable('webgpu', `${TFJS_WEBGPU} not installed`);
  try {
    await dawnGpu();
  } catch (err) {
    throw unavailable('webgpu', `Node has no navigator.gpu: ${describeError(err)}`);
  }
  // The backend registers itself at load time only if navigator.gpu exists then.
  loadModule(TFJS_WEBGPU);
  await activate('webgpu');
  return { name: 'webgpu', reason: `${TFJS_WEBGPU} over Dawn (the webgpu package)` };
}

/** Sets the active backend; tfjs reports a failed initialisation as `false` plus a console warning. */
async function activate(name: string): Promise<void> {
  if (!tf.findBackendFactory(name)) {
    throw unavailable(
      name,
      `no '${name}' backend is registered with this copy of @tensorflow/tfjs-core (a second copy in ` +
        'node_modules, or a backend package of another version?)',
    );
  }
  if (!(await tf.setBackend(name))) {
    throw unavailable(name, `the '${name}' backend failed to initialise (see the warning tfjs printed above)`);
  }
}

function unavailable(name: string, why: string): ValidationError {
  return new ValidationError(ErrorCode.InvalidRequest, `backend ${name} is not available: ${why}`);
}

function isInstalled(id: string): boolean {
  try {
    require.resolve(id);
    return true;
  } catch {
    return false;
  }
}

/** Loads an optional CommonJS package for its side effect (registering a backend). */
function loadModule(id: string): void {
  // A static import would make the package mandatory; `require` inside the call keeps it optional.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  require(id);
}
