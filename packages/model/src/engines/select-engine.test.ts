import './__tests__/main-realm-typed-arrays';
import { ErrorCode, LayertapError } from '@layertap/contracts';
import { resolveEngine, describeChoice } from './select-engine';

// On this project's CI machine there is no GPU, no CUDA provider library and no tfjs-node / tfjs WebGPU
// package: the fallbacks are what runs here.
async function rejection(promise: Promise<unknown>): Promise<LayertapError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof LayertapError) return err;
    throw err;
  }
  throw new Error('expected a LayertapError');
}

describe('resolveEngine', () => {
  it('auto picks ONNX Runtime on the CPU here, logs it, and says why each faster path was passed over', async () => {
    const lines: string[] = [];
    const choice = await resolveEngine({ engine: 'auto', log: (msg) => lines.push(msg) });
    expect(describeChoice(choice)).toBe('onnx/cpu');
    expect(choice.reason).toMatch(/^onnx\/cuda: onnxruntime-node's CUDA provider library is not installed/);
    expect(choice.reason).toContain('tfjs/tensorflow: @tensorflow/tfjs-node-gpu not installed');
    expect(choice.reason).toContain('tfjs/webgpu: @tensorflow/tfjs-backend-webgpu not installed');
    expect(choice.reason).toContain('onnx/webgpu: webgpu failed to start');
    expect(choice.reason).toMatch(/onnx\/cpu: cpu ran a test model$/);
    expect(lines).toEqual([expect.stringMatching(/^engine onnx\/cpu: /)]);
  });

  it('keeps tfjs when no engine is named, and onnx when only a provider is', async () => {
    expect(describeChoice(await resolveEngine({ backend: 'wasm' }))).toBe('tfjs/wasm');
    expect(describeChoice(await resolveEngine({}))).toBe('tfjs/wasm');
    expect(describeChoice(await resolveEngine({ onnxProvider: 'cpu' }))).toBe('onnx/cpu');
    // auto with a tfjs backend named: that backend.
    const choice = await resolveEngine({ engine: 'auto', backend: 'wasm' });
    expect(describeChoice(choice)).toBe('tfjs/wasm');
    expect(choice.reason).toMatch(/^tfjs backend wasm requested; /);
  });

  it('onnx without a provider takes the first that works: cpu here', async () => {
    const choice = await resolveEngine({ engine: 'onnx' });
    expect(describeChoice(choice)).toBe('onnx/cpu');
    expect(choice.reason).toContain('cuda: ');
    expect(choice.reason).toContain('webgpu: ');
  });

  it('refuses a provider that cannot run here, saying why', async () => {
    const err = await rejection(resolveEngine({ engine: 'onnx', onnxProvider: 'cuda' }));
    expect(err.code).toBe(ErrorCode.InvalidRequest);
    expect(err.message).toBe(
      "ONNX Runtime provider cuda is not available: onnxruntime-node's CUDA provider library is not installed " +
        '(its install script downloads it where CUDA is present)',
    );
  });

  it('refuses options of the other engine', async () => {
    expect((await rejection(resolveEngine({ engine: 'tfjs', onnxProvider: 'cpu' }))).message).toContain(
      'onnxProvider cpu is an ONNX Runtime option; the tfjs engine takes a backend',
    );
    expect((await rejection(resolveEngine({ engine: 'onnx', backend: 'wasm' }))).message).toContain(
      'backend wasm is a TF.js option; the onnx engine takes an onnxProvider',
    );
  });
});
