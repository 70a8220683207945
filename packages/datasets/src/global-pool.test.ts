import { globalPool, pooledShape } from './global-pool';

describe('globalPool', () => {
  // 2 channels, 2x3 positions. Channel 0: 1..6, channel 1: -1..-6.
  const chw = Float32Array.from([1, 2, 3, 4, 5, 6, -1, -2, -3, -4, -5, -6]);
  const hwc = Float32Array.from([1, -1, 2, -2, 3, -3, 4, -4, 5, -5, 6, -6]);

  it('averages and maxes over H and W in both layouts', () => {
    expect(globalPool(chw, [2, 2, 3], 'chw', 'avg')).toEqual({ data: Float32Array.from([3.5, -3.5]), shape: [2] });
    expect(globalPool(hwc, [2, 3, 2], 'hwc', 'avg')).toEqual({ data: Float32Array.from([3.5, -3.5]), shape: [2] });
    expect(globalPool(chw, [2, 2, 3], 'chw', 'max')).toEqual({ data: Float32Array.from([6, -1]), shape: [2] });
    expect(globalPool(hwc, [2, 3, 2], 'hwc', 'max')).toEqual({ data: Float32Array.from([6, -1]), shape: [2] });
  });

  it('leaves dense outputs and pool=none alone', () => {
    const dense = Float32Array.from([1, 2, 3]);
    expect(globalPool(dense, [3], 'chw', 'avg').data).toBe(dense);
    expect(globalPool(chw, [2, 2, 3], 'chw', 'none')).toEqual({ data: chw, shape: [2, 2, 3] });
  });

  it('says the shape it gives without pooling anything', () => {
    expect(pooledShape([2, 2, 3], 'chw', 'avg')).toEqual(globalPool(chw, [2, 2, 3], 'chw', 'avg').shape);
    expect(pooledShape([2, 3, 2], 'hwc', 'max')).toEqual([2]);
    expect(pooledShape([2, 2, 3], 'chw', 'none')).toEqual([2, 2, 3]);
    expect(pooledShape([4096], 'hwc', 'avg')).toEqual([4096]);
  });
});
