// Seeded random weights that any process, machine or language can reproduce bit for bit.
import type { WeightSpec } from './weight-specs';

/** Half-width of the uniform range of random BatchNorm shifts (`beta`, `mean`). */
export const RANDOM_SHIFT_LIMIT = 0.1;

/** Half-width of the uniform range of random biases (Keras would use zeros; small non-zero biases keep the
 * bias path exercised). */
export const RANDOM_BIAS_LIMIT = 0.01;

/** 32-bit FNV-1a of the UTF-8 bytes of `text`. */
export function fnv1a32(text: string): number {
  let hash = 0x811c9dc5;
  for (const byte of Buffer.from(text, 'utf8')) {
    hash = Math.imul(hash ^ byte, 0x01000193) >>> 0;
  }
  return hash;
}

/** The mulberry32 state a tensor's stream starts from: FNV-1a of `"<seed>:<tensor name>"`. */
export function tensorStreamSeed(seed: number, name: string): number {
  return fnv1a32(`${seed}:${name}`);
}

/**
 * Fills `out` with uniform values in [-limit, limit) from a mulberry32 stream starting at `state`.
 * Per value: state += 0x6D2B79F5 (mod 2^32); t = mulberry32(state) as uint32; u = t / 2^32;
 * value = float32((2u - 1) * limit), computed in float64 and rounded once.
 */
export function fillUniform(out: Float32Array, state: number, limit: number): void {
  // A local alias: a global lookup per value is 50x slower inside vm contexts (jest runs tests in one).
  const imul = Math.imul;
  let s = state | 0;
  for (let i = 0; i < out.length; i++) {
    // mulberry32, inlined: fc1 has 102M values and a call per value costs seconds.
    s = (s + 0x6d2b79f5) | 0;
    let t = imul(s ^ (s >>> 15), s | 1);
    t = (t + imul(t ^ (t >>> 7), t | 61)) ^ t;
    const u = ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    out[i] = (2 * u - 1) * limit;
  }
}

/** Keras' Glorot-uniform limit, sqrt(6 / (fan_in + fan_out)), with the receptive field in both fans. */
export function glorotLimit(kernelShape: readonly number[]): number {
  const receptive = kernelShape.slice(0, -2).reduce((a, b) => a * b, 1);
  const fanIn = receptive * (kernelShape.at(-2) ?? 1);
  const fanOut = receptive * (kernelShape.at(-1) ?? 1);
  return Math.sqrt(6 / (fanIn + fanOut));
}

/** Glorot-uniform limit of a torch-layout weight ([out, in, kh, kw] or [out, in]): the same fans as TF's. */
export function torchGlorotLimit(shape: readonly number[]): number {
  const receptive = shape.slice(2).reduce((a, b) => a * b, 1);
  return Math.sqrt(6 / (receptive * ((shape[1] ?? 1) + (shape[0] ?? 1))));
}

/**
 * The random value of one weight tensor, deterministic from (seed, tensor name), values in C order of the
 * spec's layout: kernels (TF layout) and weights (torch layout) are Glorot-uniform, biases uniform in +-0.01;
 * BatchNorm's gamma and running var are 1 + uniform(+-0.5), beta and running mean uniform in +-0.1 (so a
 * folded BatchNorm is far from the identity and parity tests see it). In Python:
 *
 * ```python
 * def fill(seed, name, n, limit):            # name e.g. "block1_conv1/kernel"
 *     h = 0x811C9DC5
 *     for b in f"{seed}:{name}".encode():      # FNV-1a 32
 *         h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
 *     s = (h + 0x6D2B79F5 * np.arange(1, n + 1, dtype=np.uint64)) & 0xFFFFFFFF
 *     t = ((s ^ (s >> 15)) * (s | 1)) & 0xFFFFFFFF
 *     t = ((t + (((t ^ (t >> 7)) * (t | 61)) & 0xFFFFFFFF)) & 0xFFFFFFFF) ^ t
 *     u = (t ^ (t >> 14)) / 2**32
 *     return ((2 * u - 1) * limit).astype(np.float32)
 * ```
 */
export function randomWeight(seed: number, spec: WeightSpec): Float32Array {
  const size = spec.shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(size);
  const state = tensorStreamSeed(seed, spec.name);
  switch (spec.param) {
    case 'kernel':
      fillUniform(out, state, glorotLimit(spec.shape));
      break;
    case 'weight':
      fillUniform(out, state, torchGlorotLimit(spec.shape));
      break;
    case 'bias':
      fillUniform(out, state, RANDOM_BIAS_LIMIT);
      break;
    case 'beta':
    case 'mean':
      fillUniform(out, state, RANDOM_SHIFT_LIMIT);
      break;
    case 'gamma':
    case 'var':
      // float32((2u - 1) * 0.5) + 1 in float32, as Python's `fill(...) + np.float32(1)`.
      fillUniform(out, state, 0.5);
      for (let i = 0; i < out.length; i++) out[i] = Math.fround((out[i] as number) + 1);
      break;
  }
  return out;
}
