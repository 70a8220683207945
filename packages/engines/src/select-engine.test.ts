import './__tests__/main-realm-typed-arrays';
import { ErrorCode } from '@layertap/contracts';
import { EngineChain, NoEngineError, resolveEngine } from './select-engine';
import { isSoftwareAdapter, webgpuAdapter, type WebgpuAdapterReport } from './webgpu-adapter';
import { rejection } from './__tests__/hooks';

/** This machine's WebGPU adapter, or why there is none: the expectations below follow from it. */
async function adapter(): Promise<WebgpuAdapterReport | string> {
  try {
    return await webgpuAdapter();
  } catch (err) {
    return (err as Error).message;
  }
}

describe('isSoftwareAdapter', () => {
  it.each([
    [{ architecture: 'software', vendor: 'mesa' }, true],
    [{ description: 'llvmpipe (LLVM 15.0.6, 256 bits)' }, true],
    [{ device: 'lavapipe' }, true],
    [{ description: 'SwiftShader Device (Subzero)', vendor: 'google' }, true],
    [{ description: 'Microsoft Basic Render Driver' }, true],
    [{ vendor: 'nvidia', architecture: 'hopper', description: 'NVIDIA H100 80GB HBM3' }, false],
    [{ vendor: 'amd', architecture: 'rdna-3', description: 'AMD Radeon RX 7900' }, false],
    [{ vendor: 'nvidia', fallback: true }, true],
  ])('%j -> %s', (info, software) => {
    expect(isSoftwareAdapter(info)).toBe(software);
  });
});

describe('EngineChain', () => {
  it('auto never picks a software adapter: WebGPU is passed over with the reason, and a CPU engine runs', async () => {
    const found = await adapter();
    if (typeof found !== 'string' && !found.software) {
      // A real GPU: auto may use it; the software rule has nothing to say here.
      return;
    }
    const lines: string[] = [];
    const choice = await resolveEngine({ engine: 'auto', log: (msg) => lines.push(msg) });
    expect(choice.label).toBe('onnx/cpu');
    expect(choice.device).toMatchObject({ kind: 'cpu' });
    expect(choice.device.description).toMatch(/\(\d+ threads?\)$/);
    expect(choice.warnings).toEqual([]);
    const passed = choice.reason.split('; ');
    expect(passed[0]).toMatch(/^onnx\/cuda: onnxruntime-node's CUDA provider library is not installed/);
    const webgpu = passed.filter((line) => /^(tfjs|onnx)\/webgpu: /.test(line));
    expect(webgpu).toHaveLength(2);
    for (const line of webgpu) {
      if (typeof found === 'string') expect(line).toContain(found);
      else expect(line).toMatch(/a software rasteriser, far slower than the CPU engines \(name --backend webgpu to use it anyway\)$/);
    }
    expect(passed.at(-1)).toBe('onnx/cpu: cpu ran a test model');
    expect(lines[0]).toMatch(/^engine onnx\/cpu: /);
  });

  it('a named webgpu backend may use a software adapter, with a warning', async () => {
    const found = await adapter();
    if (typeof found === 'string' || !found.software) {
      // No adapter: the request is refused, saying why (a real GPU: nothing to warn about).
      if (typeof found === 'string') {
        const err = await rejection(resolveEngine({ engine: 'tfjs', backend: 'webgpu' }));
        expect(err).toBeInstanceOf(NoEngineError);
        expect(err.message).toContain(found);
      }
      return;
    }
    const lines: string[] = [];
    const choice = await resolveEngine({ engine: 'onnx', backend: 'webgpu', log: (msg) => lines.push(msg) });
    expect(choice.label).toBe('onnx/webgpu');
    expect(choice.device).toMatchObject({ kind: 'gpu', software: true });
    expect(choice.maxBindingBytes).toBe(found.maxStorageBufferBindingSize);
    expect(choice.warnings).toEqual([expect.stringMatching(/^running on a software WebGPU adapter \(.+\), because --backend webgpu was named/)]);
    expect(lines).toContainEqual(expect.stringMatching(/^warning: running on a software WebGPU adapter/));
    // The same through auto with the backend named: TF.js WebGPU first, as auto orders them.
    expect((await resolveEngine({ engine: 'auto', backend: 'webgpu' })).label).toBe('tfjs/webgpu');
  });

  it('takes the engine asked for, and its backends fastest first', async () => {
    expect((await resolveEngine({ engine: 'onnx', backend: 'cpu' })).label).toBe('onnx/cpu');
    expect((await resolveEngine({ engine: 'tfjs', backend: 'wasm' })).label).toBe('tfjs/wasm');
    expect((await resolveEngine({ engine: 'auto', backend: 'wasm' })).label).toBe('tfjs/wasm');
    expect((await resolveEngine({ engine: 'null' })).label).toBe('null/cpu');
    const cpu = await resolveEngine({ engine: 'onnx', threads: 3 });
    expect(cpu.label).toBe('onnx/cpu');
    expect(cpu.threads).toBe(3);
    expect(cpu.device.description).toMatch(/\(3 threads\)$/);
    expect(cpu.reason).toMatch(/^onnx\/cuda: .*; onnx\/webgpu: .*; onnx\/cpu: cpu ran a test model$/);
  });

  it('goes on past an engine dropped earlier, and one dropped now, naming why', async () => {
    const chain = EngineChain.plan({ engine: 'auto', backend: 'cpu', exclude: new Map([['onnx/cpu', 'faulted twice: device lost']]) });
    const first = await chain.next();
    expect(first?.label).toBe('tfjs/cpu');
    expect(first?.reason).toBe('onnx/cpu: dropped earlier (faulted twice: device lost); tfjs/cpu: requested (pure JavaScript, slow)');
    chain.drop(first!, 'its proof run disagreed');
    expect(await chain.next()).toBeUndefined();
    expect(chain.reasons).toEqual(['onnx/cpu: dropped earlier (faulted twice: device lost)', 'tfjs/cpu: its proof run disagreed']);
  });

  it('refuses a backend that cannot run here, saying why', async () => {
    const err = await rejection(resolveEngine({ engine: 'onnx', backend: 'cuda' }));
    expect(err).toBeInstanceOf(NoEngineError);
    expect(err.code).toBe(ErrorCode.BackendUnavailable);
    expect(err.message).toBe(
      "no engine can run here: onnx/cuda: onnxruntime-node's CUDA provider library is not installed (its install script downloads it where CUDA is present)",
    );
    const tensorflow = await rejection(resolveEngine({ engine: 'tfjs', backend: 'tensorflow' }));
    expect(tensorflow.message).toContain('@tensorflow/tfjs-node-gpu not installed');
    expect(tensorflow.message).toContain('Install @tensorflow/tfjs-node-gpu');
  });

  it('refuses an impossible combination before probing anything, listing the valid ones', async () => {
    const err = await rejection(resolveEngine({ engine: 'onnx', backend: 'wasm' }));
    expect(err.code).toBe(ErrorCode.InvalidRequest);
    expect(err.message).toContain('--engine onnx --backend wasm is not a combination layertap has');
    expect(err.message).toContain('--engine onnx --backend auto|cuda|webgpu|cpu');
    expect(err.message).toContain('--engine tfjs --backend auto|tensorflow|webgpu|wasm|cpu');
  });
});
