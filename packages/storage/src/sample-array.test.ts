import { sampleArray } from './sample-array';

/** A batch [N, H, W, C] whose value encodes its own index: n*1000 + h*100 + w*10 + c. */
function codedBatch(n: number, h: number, w: number, c: number): Float32Array {
  const out = new Float32Array(n * h * w * c);
  let i = 0;
  for (let a = 0; a < n; a++) for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let k = 0; k < c; k++) out[i++] = a * 1000 + y * 100 + x * 10 + k;
  return out;
}

/** The same values as `codedBatch`, stored [N, C, H, W]: value at [n, c, h, w] is n*1000 + h*100 + w*10 + c. */
function codedBatchNchw(n: number, h: number, w: number, c: number): Float32Array {
  const out = new Float32Array(n * c * h * w);
  let i = 0;
  for (let a = 0; a < n; a++) for (let k = 0; k < c; k++) for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) out[i++] = a * 1000 + y * 100 + x * 10 + k;
  return out;
}

describe('sampleArray', () => {
  const batch = codedBatch(3, 2, 4, 5);

  it('returns (H, W, C) for hwc: the sample as it is', () => {
    const { data, shape } = sampleArray(batch, [3, 2, 4, 5], 1, 'hwc');
    expect(shape).toEqual([2, 4, 5]);
    expect(data).toEqual(batch.slice(40, 80));
    expect(data[0]).toBe(1000);
    expect(data[2 * 4 * 5 - 1]).toBe(1000 + 100 + 30 + 4);
  });

  it('returns (C, H, W) for chw: transposed so data[c][h][w] is the NHWC value at [n, h, w, c]', () => {
    const { data, shape } = sampleArray(batch, [3, 2, 4, 5], 2, 'chw');
    expect(shape).toEqual([5, 2, 4]);
    for (let c = 0; c < 5; c++) {
      for (let y = 0; y < 2; y++) for (let x = 0; x < 4; x++) expect(data[c * 8 + y * 4 + x]).toBe(2000 + y * 100 + x * 10 + c);
    }
  });

  it('returns (C,) for a 2-D output in either layout', () => {
    const flat = Float32Array.from({ length: 4 * 6 }, (_, i) => i);
    for (const layout of ['chw', 'hwc'] as const) {
      const { data, shape } = sampleArray(flat, [4, 6], 3, layout);
      expect(shape).toEqual([6]);
      expect(Array.from(data)).toEqual([18, 19, 20, 21, 22, 23]);
    }
  });

  it('copies: the result does not alias the batch', () => {
    const copy = batch.slice();
    const { data } = sampleArray(copy, [3, 2, 4, 5], 0, 'hwc');
    copy[0] = -1;
    expect(data[0]).toBe(0);
  });

  it('handles 1x1 spatial maps and single channels', () => {
    const b = codedBatch(2, 1, 1, 3);
    expect(Array.from(sampleArray(b, [2, 1, 1, 3], 1, 'chw').data)).toEqual([1000, 1001, 1002]);
    const single = codedBatch(1, 2, 2, 1);
    expect(sampleArray(single, [1, 2, 2, 1], 0, 'chw')).toEqual({ data: Float32Array.from([0, 10, 100, 110]), shape: [1, 2, 2] });
  });

  it('transposes maps larger than one tile (70 pixels x 70 channels) both ways, back to the same values', () => {
    const [n, h, w, c] = [2, 7, 10, 70];
    const nhwc = codedBatch(n, h, w, c).map((v, i) => v + i * 1e-3);
    const chw = sampleArray(nhwc, [n, h, w, c], 1, 'chw');
    expect(chw.shape).toEqual([c, h, w]);
    const hwc = sampleArray(chw.data, [1, c, h, w], 0, 'hwc', 'nchw');
    expect(hwc).toEqual({ data: nhwc.slice(h * w * c), shape: [h, w, c] });
  });

  it('refuses bad shapes and indexes', () => {
    expect(() => sampleArray(batch, [3, 2, 4], 0, 'chw')).toThrow('batch shape must be [N, H, W, C] or [N, C], got [3,2,4]');
    expect(() => sampleArray(batch, [3, 2, 4, 4], 0, 'chw')).toThrow('needs 96 values, got 120');
    expect(() => sampleArray(batch, [3, 2, 4, 5], 3, 'chw')).toThrow('sample index 3 is outside the batch of 3');
    expect(() => sampleArray(batch, [3, 2, 4, 5], -1, 'hwc')).toThrow(RangeError);
    expect(() => sampleArray(batch, [3, 2, 4, 5], 0.5, 'hwc')).toThrow(RangeError);
  });
});

describe('sampleArray of an NCHW batch (ONNX Runtime outputs)', () => {
  const nhwc = codedBatch(3, 2, 4, 5);
  const nchw = codedBatchNchw(3, 2, 4, 5);

  it('returns (C, H, W) for chw as one contiguous copy of the sample', () => {
    const { data, shape } = sampleArray(nchw, [3, 5, 2, 4], 2, 'chw', 'nchw');
    expect(shape).toEqual([5, 2, 4]);
    expect(data).toEqual(nchw.slice(80, 120));
    expect(data).toEqual(sampleArray(nhwc, [3, 2, 4, 5], 2, 'chw').data);
    for (let c = 0; c < 5; c++) {
      for (let y = 0; y < 2; y++) for (let x = 0; x < 4; x++) expect(data[c * 8 + y * 4 + x]).toBe(2000 + y * 100 + x * 10 + c);
    }
  });

  it('returns (H, W, C) for hwc: the same values the NHWC batch gives', () => {
    const { data, shape } = sampleArray(nchw, [3, 5, 2, 4], 1, 'hwc', 'nchw');
    expect(shape).toEqual([2, 4, 5]);
    expect(data).toEqual(nhwc.slice(40, 80));
    expect(data[2 * 4 * 5 - 1]).toBe(1000 + 100 + 30 + 4);
  });

  it('treats a 2-D output as [N, C] and copies', () => {
    const flat = Float32Array.from({ length: 4 * 6 }, (_, i) => i);
    const { data, shape } = sampleArray(flat, [4, 6], 1, 'hwc', 'nchw');
    expect(shape).toEqual([6]);
    expect(Array.from(data)).toEqual([6, 7, 8, 9, 10, 11]);
    flat[6] = -1;
    expect(data[0]).toBe(6);
  });

  it('refuses bad shapes and layouts, naming the expected order', () => {
    expect(() => sampleArray(nchw, [3, 5, 8], 0, 'chw', 'nchw')).toThrow('batch shape must be [N, C, H, W] or [N, C], got [3,5,8]');
    expect(() => sampleArray(nchw, [3, 5, 2, 5], 0, 'chw', 'nchw')).toThrow('needs 150 values, got 120');
    expect(() => sampleArray(nchw, [3, 5, 2, 4], 0, 'chw', 'ncwh' as 'nchw')).toThrow('unknown batch layout "ncwh"');
  });
});
