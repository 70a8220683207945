// Import this first in test files that run onnxruntime-node. Jest runs each test file in its own vm context,
// but the native binding creates output typed arrays in Node's main context, and onnxruntime-common (loaded
// in the test's context) then refuses them: `instanceof Float32Array` fails across realms
// (microsoft/onnxruntime#16622). Giving the test context the main context's typed-array constructors makes
// both sides agree. Outside Jest there is one realm and nothing of this is needed.
import { runInThisContext } from 'node:vm';

const TYPED_ARRAYS = [
  'ArrayBuffer', 'Float32Array', 'Float64Array', 'Int8Array', 'Uint8Array', 'Uint8ClampedArray', 'Int16Array',
  'Uint16Array', 'Int32Array', 'Uint32Array', 'BigInt64Array', 'BigUint64Array',
] as const;

const sandbox = globalThis as unknown as Record<string, unknown>;
for (const name of TYPED_ARRAYS) sandbox[name] = runInThisContext(name) as unknown;
