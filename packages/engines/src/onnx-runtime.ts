// Loading onnxruntime-node and finding out which of its execution providers work on this machine. The
// native module is loaded on first use only, so importing @layertap/engines stays cheap for TF.js users.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describeError } from '@layertap/contracts';
import type { OnnxProvider } from './engine';
import { encodeOnnxModel } from '@layertap/model';

export type OrtModule = typeof import('onnxruntime-node');

const ORT_PACKAGE = 'onnxruntime-node';

let ortModule: OrtModule | undefined;

/** onnxruntime-node, loaded once. Throws what the loader threw (a missing or broken native binding). */
export function loadOrt(): OrtModule {
  // A static import would load the native library with @layertap/engines; `require` defers it to first use.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  ortModule ??= require(ORT_PACKAGE) as OrtModule;
  return ortModule;
}

/** Whether a provider works here, and if not, why. */
export interface ProviderCheck {
  provider: OnnxProvider;
  available: boolean;
  reason: string;
}

const checks = new Map<OnnxProvider, Promise<ProviderCheck>>();

/**
 * Checks once per process that ONNX Runtime can run a one-node model on `provider`. The CUDA provider's
 * libraries are downloaded by onnxruntime-node's install script (skipped on machines without CUDA), so
 * their absence is reported without trying; WebGPU needs an adapter (a GPU with a Vulkan/Metal/D3D12 driver).
 */
export function checkProvider(provider: OnnxProvider): Promise<ProviderCheck> {
  let check = checks.get(provider);
  if (!check) {
    check = probe(provider);
    checks.set(provider, check);
  }
  return check;
}

async function probe(provider: OnnxProvider): Promise<ProviderCheck> {
  let ort: OrtModule;
  try {
    ort = loadOrt();
  } catch (err) {
    return { provider, available: false, reason: `${ORT_PACKAGE} failed to load: ${describeError(err)}` };
  }
  if (provider === 'cuda') {
    const library = cudaProviderLibrary();
    if (!library) {
      return {
        provider,
        available: false,
        reason: `${ORT_PACKAGE}'s CUDA provider library is not installed (its install script downloads it where CUDA is present)`,
      };
    }
  }
  const supported = ort.listSupportedBackends().map((backend) => backend.name);
  if (!supported.includes(provider)) {
    return { provider, available: false, reason: `${ORT_PACKAGE} has no ${provider} provider on this platform` };
  }
  try {
    const session = await ort.InferenceSession.create(probeModel(), {
      executionProviders: [provider],
      logSeverityLevel: 3,
    });
    const x = new ort.Tensor('float32', Float32Array.from([-1, 2]), [2]);
    const result = await session.run({ x });
    const y = result.y?.data;
    x.dispose();
    result.y?.dispose();
    await session.release();
    if (!(y instanceof Float32Array) || y[0] !== 0 || y[1] !== 2) {
      return { provider, available: false, reason: `${provider} ran a test model and returned a wrong result` };
    }
  } catch (err) {
    return { provider, available: false, reason: `${provider} failed to start: ${firstLine(describeError(err))}` };
  }
  return { provider, available: true, reason: `${provider} ran a test model` };
}

/** A model with one Relu: enough to make a provider initialise its device. */
function probeModel(): Uint8Array {
  return encodeOnnxModel(
    {
      name: 'probe',
      nodes: [{ opType: 'Relu', name: 'relu', inputs: ['x'], outputs: ['y'] }],
      initializers: [],
      inputs: [{ name: 'x', dims: [2] }],
      outputs: [{ name: 'y', dims: [2] }],
    },
    { producerName: 'layertap', producerVersion: '0.1.0' },
  );
}

function cudaProviderLibrary(): string | undefined {
  try {
    const root = dirname(require.resolve(`${ORT_PACKAGE}/package.json`));
    const library = join(root, 'bin', 'napi-v6', process.platform, process.arch, 'libonnxruntime_providers_cuda.so');
    return existsSync(library) ? library : undefined;
  } catch {
    return undefined;
  }
}

function firstLine(text: string): string {
  const line = text.split('\n').find((l) => l.trim() !== '') ?? text;
  // ORT messages read `<source file>:<line> <function> <condition> was false. <reason>`: keep the reason.
  const reason = /was false\.\s*(.+)$/.exec(line)?.[1] ?? line.replace(/^(Error: )?\S+\.cc:\d+\s+/, '');
  return reason.slice(0, 300);
}
