// ResNet-50 on ONNX Runtime against torchvision (test/fixtures/parity/resnet50, made by
// test/parity/make_resnet50_fixtures.py): the same seeded weights (folded here, unfolded there), the same
// photo cropped by both published preprocessings (V1: Resize(256), V2: Resize(232), then CenterCrop(224)),
// normalised here as ToTensor + Normalize do, compared node by node at the stored positions.
import '../../__tests__/main-realm-typed-arrays';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Extractor, type LayerOutput } from '../../extractor';
import { PARITY, readNpy } from '@layertap/model/testing';

const DIR = path.join(PARITY, 'resnet50');

interface Layer {
  node: string;
  file: string;
  shape: number[];
  channelStride: number;
  spatialStride: number;
}
interface Index {
  seed: number;
  imageSize: number;
  mean: number[];
  std: number[];
  tolerance: { maxAbsRelative: number };
  cases: { preprocess: string; input: string; layers: Layer[] }[];
}

/** uint8 HWC crop -> NHWC float32 as torchvision computes it: float32(v / 255), then (x - mean) / std in float32. */
function normalise(pixels: Uint8Array, mean: number[], std: number[]): Float32Array {
  const out = new Float32Array(pixels.length);
  for (let i = 0; i < pixels.length; i++) {
    const c = i % 3;
    const x = Math.fround((pixels[i] as number) / 255);
    out[i] = Math.fround(Math.fround(x - (mean[c] as number)) / (std[c] as number));
  }
  return out;
}

/** max |ours - reference| / max |reference| over the stored positions of an NCHW (or NC) output. */
function relativeMaxDiff(ours: LayerOutput, layer: Layer, stored: Float32Array): number {
  const [C = 0, H = 1, W = 1] = layer.shape;
  const cs = layer.channelStride;
  const ss = layer.spatialStride;
  const [h, w] = layer.shape.length === 3 ? [Math.ceil(H / ss), Math.ceil(W / ss)] : [1, 1];
  let diff = 0;
  let scale = 0;
  let i = 0;
  for (let c = 0; c < C; c += cs)
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++) {
        const expected = stored[i++] as number;
        const got = layer.shape.length === 1 ? (ours.data[c] as number) : (ours.data[(c * H + y * ss) * W + x * ss] as number);
        diff = Math.max(diff, Math.abs(got - expected));
        scale = Math.max(scale, Math.abs(expected));
      }
  expect(i).toBe(stored.length);
  return diff / scale;
}

describe('ResNet-50 against torchvision', () => {
  let index: Index;
  let extractor: Extractor;

  beforeAll(async () => {
    index = JSON.parse(await readFile(path.join(DIR, 'index.json'), 'utf8')) as Index;
    extractor = await Extractor.create({ model: 'resnet50', engine: 'onnx', backend: 'cpu', imageSize: index.imageSize, seed: index.seed, threads: 2 });
  });

  afterAll(() => extractor?.dispose());

  it.each(['v1', 'v2'])('agrees on every hooked node within 1e-4 of the largest value (%s preprocessing)', async (preprocess) => {
    const testCase = index.cases.find((c) => c.preprocess === preprocess);
    if (!testCase) throw new Error(`no ${preprocess} case in index.json`);
    const outputs = new Map<string, LayerOutput>();
    const handles = testCase.layers.map((layer) => extractor.registerForwardHook(layer.node, (output) => void outputs.set(output.spec, output)));
    const pixels = new Uint8Array(await readFile(path.join(DIR, testCase.input)));
    await extractor.run({ data: normalise(pixels, index.mean, index.std), batchSize: 1 });
    for (const handle of handles) handle.remove();

    const errors: Record<string, number> = {};
    for (const layer of testCase.layers) {
      const ours = outputs.get(layer.node);
      if (!ours) throw new Error(`no output for ${layer.node}`);
      expect(ours.shape).toEqual([1, ...layer.shape]);
      const stored = await readNpy(path.join(DIR, layer.file));
      errors[layer.node] = relativeMaxDiff(ours, layer, stored.data);
    }
    // The figures, for the record (README "Models").
    console.log(`resnet50 ${preprocess} parity (max |diff| / max |ref|): ${JSON.stringify(errors)}`);
    for (const [node, error] of Object.entries(errors)) {
      expect({ node, ok: error <= index.tolerance.maxAbsRelative }).toEqual({ node, ok: true });
    }
  }, 120_000);
});
