import './__tests__/main-realm-typed-arrays';
import { NullEngine } from './null-engine';
import { OnnxEngine } from './onnx-engine';
import { VERIFY_TOLERANCE, relativeError, verifyEngine } from './verify-engine';
import type { EngineRun, InferenceEngine } from './engine';

const common = { imageSize: 32, weightsDescription: 'random, seed 3', seed: 3, log: () => undefined };
const cpu = (): OnnxEngine => new OnnxEngine({ ...common, provider: 'cpu', threads: 1, reason: 'reference' });

/** The CPU engine's own results, with one value changed by `bump` of the layer's largest value. */
function skewed(bump: number): InferenceEngine {
  const inner = cpu();
  return Object.assign(Object.create(inner) as InferenceEngine, {
    async run(layers: readonly string[], data: Float32Array, n: number): Promise<EngineRun> {
      const result = await inner.run(layers, data, n);
      for (const out of result.outputs) {
        const max = out.data.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
        out.data[out.data.length - 1] = (out.data[out.data.length - 1] as number) + bump * max;
      }
      return result;
    },
    dispose: () => inner.dispose(),
  });
}

describe('verifyEngine (the proof run)', () => {
  const layers = ['block1_pool', 'block2_conv1_preact'];

  it('accepts an engine that agrees within the tolerance, and says by how much', async () => {
    const reference = cpu();
    const candidate = skewed(VERIFY_TOLERANCE / 2);
    try {
      const result = await verifyEngine(candidate, reference, layers, 32);
      expect(result).toMatchObject({ ok: true });
      if (result.ok) expect(result.maxError).toBeGreaterThan(0);
    } finally {
      reference.dispose();
      candidate.dispose();
    }
  });

  it('refuses an engine that disagrees beyond it, or returns zeros, naming the layer and the error', async () => {
    const reference = cpu();
    const off = skewed(VERIFY_TOLERANCE * 20);
    const zeros = new NullEngine(32);
    try {
      const result = await verifyEngine(off, reference, layers, 32);
      expect(result).toEqual({ ok: false, reason: expect.stringMatching(/^its proof run disagrees with the CPU engine at block1_pool: max \|diff\| is 2\.0\de-3 of max \|value\| \(allowed 0\.0001\)$/) });
      expect(await verifyEngine(zeros, reference, layers, 32)).toEqual({ ok: false, reason: expect.stringContaining('disagrees with the CPU engine at block1_pool: max |diff| is 1.00e+0') });
    } finally {
      reference.dispose();
      off.dispose();
    }
  });

  it('reports an engine whose run throws as a failed proof run, not an exception', async () => {
    const reference = cpu();
    const broken = Object.assign(new NullEngine(32), { run: () => Promise.reject(new Error('Conv node failed: raw_hash_map<>::at')) });
    try {
      expect(await verifyEngine(broken, reference, layers, 32)).toEqual({ ok: false, reason: 'its proof run failed: Conv node failed: raw_hash_map<>::at' });
    } finally {
      reference.dispose();
    }
  });

  it('measures error against the reference scale, and NaN as infinitely wrong', () => {
    expect(relativeError(Float32Array.from([1, 2]), Float32Array.from([1, 4]))).toBe(0.5);
    expect(relativeError(Float32Array.from([NaN, 0]), Float32Array.from([1, 1]))).toBe(Infinity);
    expect(relativeError(Float32Array.from([0.5]), Float32Array.from([0]))).toBe(0.5);
  });
});
