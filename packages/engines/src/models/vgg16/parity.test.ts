// The Extractor against torchvision's VGG16 (test/fixtures/parity, made by test/parity/make_fixtures.py):
// the same inputs (torchvision's own preprocessed tensors), the same weights (seed 7 from the shared formula,
// or the seed-11 weight files), compared layer by layer at the positions the references were stored at.
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { Extractor, type LayerOutput } from '../../extractor';
import { PARITY, parityIndex, readNpy, type ParityCase, type ParityIndex, type ParityReference } from '@layertap/model/testing';
import { loadWeights } from '@layertap/model';

/** (C,H,W) float32 -> (H,W,C), the extractor's input layout. */
function chwToHwc(chw: Float32Array, [c, h, w]: number[]): Float32Array {
  const [C = 0, H = 0, W = 0] = [c, h, w];
  const hwc = new Float32Array(chw.length);
  for (let k = 0; k < C; k++) for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) hwc[(y * W + x) * C + k] = chw[(k * H + y) * W + x]!;
  return hwc;
}

/**
 * max |ours - reference| / max |reference| over the stored positions: the reference holds ref[:, ::s, ::s]
 * of a (C,H,W) map (or a (C,) vector); ours is sample `n` of an NHWC (or NC) batch output.
 */
function relativeMaxDiff(ours: LayerOutput, n: number, ref: ParityReference, stored: Float32Array): number {
  const [C = 0, H = 1, W = 1] = ref.shape;
  const [, h = 1, w = 1] = ref.storedShape;
  let diff = 0;
  let scale = 0;
  for (let c = 0; c < C; c++)
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++) {
        const expected = stored[(c * h + y) * w + x]!;
        const got = ref.shape.length === 1 ? ours.data[n * C + c]! : ours.data[((n * H + y * ref.stride) * W + x * ref.stride) * C + c]!;
        diff = Math.max(diff, Math.abs(got - expected));
        scale = Math.max(scale, Math.abs(expected));
      }
  return diff / scale;
}

/** Runs `cases` as one batch and returns each (case, layer)'s relative max difference. */
async function compare(extractor: Extractor, cases: ParityCase[]): Promise<{ id: string; layer: string; error: number }[]> {
  const specs = [...new Set(cases.flatMap((c) => c.references.map((r) => r.spec)))];
  const outputs = new Map<string, LayerOutput>();
  for (const spec of specs) extractor.registerForwardHook(spec, (output) => void outputs.set(output.spec, output));
  const inputs = await Promise.all(cases.map(async (c) => readNpy(path.join(PARITY, c.input.file))));
  const size = extractor.imageSize;
  const batch = new Float32Array(cases.length * size * size * 3);
  inputs.forEach((input, n) => batch.set(chwToHwc(input.data, input.shape), n * size * size * 3));
  await extractor.run({ data: batch, batchSize: cases.length });
  const results: { id: string; layer: string; error: number }[] = [];
  for (const [n, c] of cases.entries()) {
    for (const ref of c.references) {
      const stored = await readNpy(path.join(PARITY, ref.file));
      expect(stored.shape).toEqual(ref.storedShape);
      results.push({ id: c.id, layer: ref.spec, error: relativeMaxDiff(outputs.get(ref.spec)!, n, ref, stored.data) });
    }
  }
  return results;
}

describe('parity with torchvision VGG16 (Extractor, fixture inputs)', () => {
  let index: ParityIndex;
  const open: Extractor[] = [];
  beforeAll(async () => {
    index = await parityIndex();
  });
  afterEach(() => {
    for (const extractor of open.splice(0)) extractor.dispose();
    expect(tf.memory().numTensors).toBe(0);
  });

  it('matches every reference layer with the seed-7 weights (torchvision and caffe inputs, resized photos)', async () => {
    const cases = index.cases.filter((c) => c.weights.seed === index.seed);
    expect(cases.map((c) => c.id)).toEqual([
      'chelsea-256.torchvision.seed7',
      'coffee-224.caffe.seed7',
      'astronaut-320x213.torchvision.seed7',
      'rocket-240x360.torchvision.seed7',
      'motorcycle-500x375.torchvision.seed7',
    ]);
    const extractor = await Extractor.create({ backend: 'wasm', imageSize: 224, seed: index.seed });
    open.push(extractor);
    const results = await compare(extractor, cases);
    expect(results).toHaveLength(7 + 7 + 2 * 3);
    const tolerance = index.tolerances.maxAbsRelative;
    expect(results.filter((r) => !(r.error <= tolerance))).toEqual([]);
    // Guard against comparing zeros with zeros: every reference has a real scale.
    for (const c of cases) for (const ref of c.references) expect(ref.maxAbs).toBeGreaterThan(0.01);
  });

  it('matches features.9 with the seed-11 weight files (.h5 and torchvision safetensors), not the seed', async () => {
    const fileCase = index.cases.find((c) => c.weights.files)!;
    expect(fileCase.references.map((r) => r.spec)).toEqual(['features.9']);
    const seedCase = index.cases.find((c) => c.id === 'chelsea-256.torchvision.seed7')!;
    const seeded = seedCase.references.find((r) => r.spec === 'features.9')!;
    for (const key of ['keras-h5', 'safetensors'] as const) {
      const weights = await loadWeights(path.join(PARITY, index.weights[key].file), { layers: ['features.9'] });
      expect(weights.sha256).toBe(index.weights[key].sha256);
      const extractor = await Extractor.create({ backend: 'wasm', imageSize: 224, weights: weights.tensors, weightsDescription: weights.description });
      open.push(extractor);
      const [result] = await compare(extractor, [fileCase]);
      expect({ key, ...result, ok: result!.error <= index.tolerances.maxAbsRelative }).toMatchObject({ key, ok: true });
      // The same output is far from the seed-7 reference: the file's values were used.
      const [other] = await compare(extractor, [{ ...fileCase, references: [seeded] }]);
      expect(other!.error).toBeGreaterThan(0.1);
      extractor.dispose();
    }
  });
});
