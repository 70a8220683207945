import { fnv1a32, glorotLimit, randomWeight, tensorStreamSeed, RANDOM_BIAS_LIMIT } from './random-weights';
import { type WeightSpec } from './weight-specs';
import { VGG16_WEIGHTS } from './models/vgg16/weight-specs';

function spec(name: string): WeightSpec {
  const found = VGG16_WEIGHTS.find((s) => s.name === name);
  if (!found) throw new Error(`no spec ${name}`);
  return found;
}

describe('random weights', () => {
  it('hashes with 32-bit FNV-1a', () => {
    // Published FNV-1a test vectors.
    expect(fnv1a32('')).toBe(0x811c9dc5);
    expect(fnv1a32('a')).toBe(0xe40c292c);
    expect(fnv1a32('foobar')).toBe(0xbf9cf968);
    expect(tensorStreamSeed(7, 'fc1/bias')).toBe(fnv1a32('7:fc1/bias'));
  });

  it('reproduces the values the documented Python recipe gives', () => {
    // From the numpy snippet in randomWeight's TSDoc, run independently: fill(7, "block2_conv1/kernel", ...).
    const kernel = randomWeight(7, spec('block2_conv1/kernel'));
    expect(kernel).toHaveLength(3 * 3 * 64 * 128);
    expect(Array.from(kernel.slice(0, 3))).toEqual([-0.03507035970687866, -0.026400646194815636, -0.036155857145786285]);
  });

  it('is deterministic per (seed, tensor) and differs across seeds and tensors', () => {
    const a = randomWeight(1, spec('block1_conv2/kernel'));
    expect(randomWeight(1, spec('block1_conv2/kernel'))).toEqual(a);
    expect(randomWeight(2, spec('block1_conv2/kernel'))).not.toEqual(a);
    const b = randomWeight(1, spec('block2_conv2/kernel'));
    expect(b.slice(0, 100)).not.toEqual(a.slice(0, 100));
  });

  it('draws kernels in the Glorot-uniform range and biases in ±0.01', () => {
    const kernelSpec = spec('block1_conv1/kernel');
    const limit = glorotLimit(kernelSpec.shape);
    expect(limit).toBeCloseTo(Math.sqrt(6 / (27 + 576)), 12);
    const kernel = randomWeight(0, kernelSpec);
    const max = kernel.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    expect(max).toBeLessThanOrEqual(limit);
    expect(max).toBeGreaterThan(limit * 0.99);
    const mean = kernel.reduce((s, v) => s + v, 0) / kernel.length;
    expect(Math.abs(mean)).toBeLessThan(limit * 0.05);
    const bias = randomWeight(0, spec('fc2/bias'));
    expect(bias.reduce((m, v) => Math.max(m, Math.abs(v)), 0)).toBeLessThanOrEqual(RANDOM_BIAS_LIMIT);
    expect(glorotLimit([25088, 4096])).toBeCloseTo(Math.sqrt(6 / (25088 + 4096)), 12);
  });
});
