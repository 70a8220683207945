import './__tests__/main-realm-typed-arrays';
// A user's ONNX model cut by @layertap/model/onnx runs in ONNX Runtime and computes what the full model does
// (test/fixtures/onnx: squeezenet1_1 from PyTorch, with PyTorch's own activations for two photos).
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { cutOnnxModel } from '@layertap/model/onnx';
import { PARITY, readNpy } from '@layertap/model/testing';

const FIXTURES = path.resolve(PARITY, '..', 'onnx');
const OPTIONS: ort.InferenceSession.SessionOptions = { executionProviders: ['cpu'], intraOpNumThreads: 1 };

interface OnnxIndex {
  cases: { image: string; input?: { file: string; shape: number[] }; layers: { name: string; shape: number[]; maxAbs: number; file: string }[] }[];
}

/** NCHW [n, c, h, w] -> NHWC. */
function toNhwc(x: Float32Array, n: number, c: number, h: number, w: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let b = 0; b < n; b++)
    for (let ch = 0; ch < c; ch++)
      for (let y = 0; y < h; y++)
        for (let xx = 0; xx < w; xx++) out[((b * h + y) * w + xx) * c + ch] = x[((b * c + ch) * h + y) * w + xx] as number;
  return out;
}

async function run(bytes: Uint8Array, feeds: Record<string, ort.Tensor>): Promise<Record<string, ort.Tensor>> {
  const session = await ort.InferenceSession.create(bytes, OPTIONS);
  try {
    return await session.run(feeds);
  } finally {
    await session.release();
  }
}

let squeezenet: Uint8Array;
beforeAll(async () => {
  squeezenet = new Uint8Array(await readFile(path.join(FIXTURES, 'squeezenet1_1.onnx')));
});

describe('a cut ONNX graph in ONNX Runtime', () => {
  it('nhwc cut to features.7 gives exactly the full graph features.7, on zeros and on a batch of 2 images', async () => {
    const cut = cutOnnxModel(squeezenet, ['features.7'], { inputLayout: 'nhwc' });
    const zeros = await run(cut.bytes, { input: new ort.Tensor('float32', new Float32Array(224 * 224 * 3), [1, 224, 224, 3]) });
    const fullZeros = await run(squeezenet, { image: new ort.Tensor('float32', new Float32Array(3 * 224 * 224), [1, 3, 224, 224]) });
    expect(Object.keys(zeros)).toEqual(['features.7']);
    expect(zeros['features.7']?.dims).toEqual([1, 256, 27, 27]);
    expect(zeros['features.7']?.data).toEqual(fullZeros['features.7']?.data);

    const nchw = Float32Array.from({ length: 2 * 3 * 224 * 224 }, (_, i) => Math.sin(i * 0.37) * 2);
    const image = await run(cut.bytes, { input: new ort.Tensor('float32', toNhwc(nchw, 2, 3, 224, 224), [2, 224, 224, 3]) });
    const full = await run(squeezenet, { image: new ort.Tensor('float32', nchw, [2, 3, 224, 224]) });
    expect(image['features.7']?.dims).toEqual([2, 256, 27, 27]);
    expect(image['features.7']?.data).toEqual(full['features.7']?.data);
  });

  it("matches PyTorch's activations of the photos (nhwc cut to features.3, features.12, logits)", async () => {
    const index = JSON.parse(await readFile(path.join(FIXTURES, 'index.json'), 'utf8')) as OnnxIndex;
    const cases = index.cases.filter((c) => c.input);
    expect(cases.length).toBe(2);
    const names = ['features.3', 'features.12', 'logits'];
    const cut = cutOnnxModel(squeezenet, names, { inputLayout: 'nhwc', imageSize: 224 });
    expect(cut.deepest).toBe('logits');
    for (const c of cases) {
      const input = await readNpy(path.join(FIXTURES, c.input?.file as string));
      const out = await run(cut.bytes, { input: new ort.Tensor('float32', toNhwc(input.data, 1, 3, 224, 224), [1, 224, 224, 3]) });
      for (const layer of c.layers) {
        const ref = await readNpy(path.join(FIXTURES, layer.file));
        const got = out[layer.name];
        expect(got?.dims).toEqual([1, ...layer.shape]);
        const data = got?.data as Float32Array;
        let maxDiff = 0;
        for (let i = 0; i < ref.data.length; i++) maxDiff = Math.max(maxDiff, Math.abs((data[i] as number) - (ref.data[i] as number)));
        expect(maxDiff).toBeLessThanOrEqual(1e-4 * layer.maxAbs);
      }
    }
  });
});
