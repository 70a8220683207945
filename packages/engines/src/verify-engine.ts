// The proof run: before an engine computes a dataset, it runs the dataset's own graph on a small seeded input
// beside the CPU engine, and must agree with it. A GPU driver that returns zeros, a provider that fails a
// kernel, a binding over a limit: each shows here, before any sample is written.
import { describeError } from '@layertap/contracts';
import type { EngineOutput, InferenceEngine } from './engine';

/** Agreement required: max |candidate - reference| <= TOLERANCE * max |reference|, per layer. */
export const VERIFY_TOLERANCE = 1e-4;

/** Images in the proof run: two, so a mix-up between samples of a batch shows too. */
export const VERIFY_BATCH = 2;

export type VerifyResult =
  | { ok: true; /** Worst relative error over the layers. */ maxError: number; ms: number }
  | { ok: false; reason: string };

/**
 * Runs `layers` (canonical, forward order) on both engines with the same seeded input of `imageSize` and
 * compares them. Never throws: a failing candidate is a result. The reference must work (it is the CPU
 * engine every worker falls back to); if it throws, that error propagates.
 */
export async function verifyEngine(candidate: InferenceEngine, reference: InferenceEngine, layers: readonly string[], imageSize: number): Promise<VerifyResult> {
  const started = performance.now();
  const input = seededInput(VERIFY_BATCH * imageSize * imageSize * 3);
  const expected = await reference.run(layers, input, VERIFY_BATCH);
  let actual: EngineOutput[];
  try {
    actual = (await candidate.run(layers, input, VERIFY_BATCH)).outputs;
  } catch (err) {
    return { ok: false, reason: `its proof run failed: ${describeError(err).split('\n')[0]}` };
  }
  let maxError = 0;
  for (const [i, layer] of layers.entries()) {
    const a = actual[i];
    const b = expected.outputs[i];
    if (!a || !b) return { ok: false, reason: `its proof run returned no output for ${layer}` };
    const got = toNchw(a);
    const want = toNchw(b);
    if (got.length !== want.length) return { ok: false, reason: `${layer} has ${got.length} values, the CPU engine ${want.length}` };
    const error = relativeError(got, want);
    if (!(error <= VERIFY_TOLERANCE)) {
      return { ok: false, reason: `its proof run disagrees with the CPU engine at ${layer}: max |diff| is ${error.toExponential(2)} of max |value| (allowed ${VERIFY_TOLERANCE})` };
    }
    maxError = Math.max(maxError, error);
  }
  return { ok: true, maxError, ms: performance.now() - started };
}

/** max |a - b| / max |b|; when the reference is all zeros, the absolute difference. */
export function relativeError(a: Float32Array, b: Float32Array): number {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < b.length; i++) {
    diff = Math.max(diff, Math.abs((a[i] ?? NaN) - (b[i] as number)));
    scale = Math.max(scale, Math.abs(b[i] as number));
  }
  if (Number.isNaN(diff)) return Infinity;
  return scale > 0 ? diff / scale : diff;
}

/** Feature maps in NCHW order (vectors as they are). */
function toNchw(output: EngineOutput): Float32Array {
  if (output.layout === 'nchw' || output.shape.length !== 4) return output.data;
  const [n, h, w, c] = output.shape as [number, number, number, number];
  const out = new Float32Array(output.data.length);
  for (let b = 0; b < n; b++)
    for (let p = 0; p < h * w; p++)
      for (let k = 0; k < c; k++) out[(b * c + k) * h * w + p] = output.data[(b * h * w + p) * c + k] as number;
  return out;
}

/** Values spread like normalised images (about -2 to 2.6), the same every time. */
function seededInput(length: number): Float32Array {
  const out = new Float32Array(length);
  let state = 0x9e3779b9;
  for (let i = 0; i < length; i++) {
    state = (Math.imul(state ^ (state >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0;
    out[i] = (state / 2 ** 32) * 4.6 - 2;
  }
  return out;
}
