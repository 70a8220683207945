import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fillUniform } from '../random-weights';
import { pseudoRandom } from '../testing/reference';
import { withTempDir } from '../testing/helpers';
import { tfConvToTorch, tfDenseToTorch, torchConvToTf, torchDenseToTf } from './layout';
import { loadWeights } from './load-weights';
import { safetensorsFile } from '../testing/helpers';

const [C, H, W] = [512, 7, 7];
const FLAT = C * H * W;

/** A block5_pool feature map in both flatten orders: torchvision's (C,H,W) and Keras' (H,W,C). */
function featureMap(): { chw: Float32Array; hwc: Float32Array } {
  const chw = pseudoRandom(FLAT, 3);
  const hwc = new Float32Array(FLAT);
  for (let c = 0; c < C; c++) for (let h = 0; h < H; h++) for (let w = 0; w < W; w++) hwc[(h * W + w) * C + c] = chw[(c * H + h) * W + w]!;
  return { chw, hwc };
}

/** torch Linear: y[o] = sum_i weight[o, i] * x[i] + bias[o] (weight [out, in]). */
function linear(weight: Float32Array, bias: Float32Array, x: Float32Array): Float64Array {
  const out = bias.length;
  const y = new Float64Array(out);
  for (let o = 0; o < out; o++) {
    let sum = bias[o]!;
    for (let i = 0; i < x.length; i++) sum += weight[o * x.length + i]! * x[i]!;
    y[o] = sum;
  }
  return y;
}

/** Keras Dense: y[o] = sum_i x[i] * kernel[i, o] + bias[o] (kernel [in, out]). */
function dense(kernel: Float32Array, bias: Float32Array, x: Float32Array): Float64Array {
  const out = bias.length;
  const y = new Float64Array(out);
  y.set(bias);
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    for (let o = 0; o < out; o++) y[o]! += v * kernel[i * out + o]!;
  }
  return y;
}

function maxRelative(a: Float64Array, b: Float64Array): number {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  return diff / scale;
}

describe('torchvision <-> TF layout', () => {
  it('turns a torchvision fc1 into a Keras kernel that gives the same output on the (H,W,C)-flattened map', () => {
    const units = 5;
    const weight = pseudoRandom(units * FLAT, 7);
    const bias = pseudoRandom(units, 8);
    const { chw, hwc } = featureMap();
    const kernel = torchDenseToTf(weight, [units, FLAT], true);
    expect(kernel.shape).toEqual([FLAT, units]);
    const torch = linear(weight, bias, chw);
    expect(maxRelative(dense(kernel.data, bias, hwc), torch)).toBeLessThan(1e-12);
    // Without the permutation the outputs differ: the test can fail.
    const plain = torchDenseToTf(weight, [units, FLAT], false);
    expect(maxRelative(dense(plain.data, bias, hwc), torch)).toBeGreaterThan(0.1);
  });

  it('transposes other dense layers without permuting, and inverts exactly', () => {
    const weight = pseudoRandom(70 * 130, 2); // [out=70, in=130]: not a multiple of the tile size
    const kernel = torchDenseToTf(weight, [70, 130], true);
    expect(kernel.shape).toEqual([130, 70]);
    expect(kernel.data[5 * 70 + 3]).toBe(weight[3 * 130 + 5]);
    expect(tfDenseToTorch(kernel.data, kernel.shape, true).data).toEqual(weight);
    const fc1 = torchDenseToTf(pseudoRandom(3 * FLAT, 4), [3, FLAT], true);
    expect(Buffer.from(tfDenseToTorch(fc1.data, fc1.shape, true).data.buffer).equals(Buffer.from(pseudoRandom(3 * FLAT, 4).buffer))).toBe(true);
  });

  it('moves conv weights [out,in,kh,kw] <-> [kh,kw,in,out]', () => {
    const torch = pseudoRandom(8 * 3 * 3 * 3, 5);
    const tf = torchConvToTf(torch, [8, 3, 3, 3]);
    expect(tf.shape).toEqual([3, 3, 3, 8]);
    // tf[y][x][i][o] = torch[o][i][y][x]
    const [o, i, y, x] = [6, 2, 1, 0];
    expect(tf.data[((y * 3 + x) * 3 + i) * 8 + o]).toBe(torch[((o * 3 + i) * 3 + y) * 3 + x]);
    const back = tfConvToTorch(tf.data, tf.shape);
    expect(back.shape).toEqual([8, 3, 3, 3]);
    expect(back.data).toEqual(torch);
  });

  it('loads a full-size torchvision fc1 from safetensors that computes what the Keras-layout kernel computes', async () => {
    await withTempDir(async (dir) => {
      const units = 4096;
      const weight = new Float32Array(units * FLAT);
      fillUniform(weight, 12345, 0.01);
      const bias = pseudoRandom(units, 9);
      const file = path.join(dir, 'fc1.safetensors');
      await writeFile(file, safetensorsFile([
        { name: 'classifier.0.weight', shape: [units, FLAT], data: weight },
        { name: 'classifier.0.bias', shape: [units], data: bias },
      ], {}));
      const loaded = await loadWeights(file);
      const kernel = loaded.tensors.get('fc1/kernel')!;
      expect(kernel.shape).toEqual([FLAT, units]);
      expect(loaded.origins.get('fc1/kernel')).toBe(`classifier.0.weight [${units}, ${FLAT}]`);
      const { chw, hwc } = featureMap();
      expect(maxRelative(dense(kernel.data, loaded.tensors.get('fc1/bias')!.data, hwc), linear(weight, bias, chw))).toBeLessThan(1e-12);
    });
  });
});
