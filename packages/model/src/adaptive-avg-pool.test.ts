import * as tf from '@tensorflow/tfjs-core';
import { adaptiveAvgPool2d, adaptivePoolBins, adaptivePoolMatrix } from './adaptive-avg-pool';
import { selectBackend } from './backend';
import { adaptiveAvgPool, pseudoRandom, relativeError } from './__tests__/reference';

describe('adaptive average pooling', () => {
  beforeAll(async () => {
    await selectBackend('wasm');
  });

  it('uses PyTorch bins, overlapping when the size does not divide', () => {
    expect(adaptivePoolBins(14, 7)).toEqual([[0, 2], [2, 4], [4, 6], [6, 8], [8, 10], [10, 12], [12, 14]]);
    expect(adaptivePoolBins(3, 7)).toEqual([[0, 1], [0, 1], [0, 2], [1, 2], [1, 3], [2, 3], [2, 3]]);
    expect(adaptivePoolBins(1, 7)).toEqual(Array(7).fill([0, 1]));
    expect(adaptivePoolBins(10, 7)[1]).toEqual([1, 3]);
    const m = adaptivePoolMatrix(3, 7);
    expect(Array.from(m.slice(2 * 3, 3 * 3))).toEqual([0.5, 0.5, 0]);
  });

  it('is the identity at 7x7 (image size 224)', async () => {
    const x = pseudoRandom(2 * 7 * 7 * 3, 3);
    const input = tf.tensor4d(x, [2, 7, 7, 3]);
    const pooled = adaptiveAvgPool2d(input, 7);
    expect(pooled.shape).toEqual([2, 7, 7, 3]);
    expect(await pooled.data()).toEqual(x);
    tf.dispose([input, pooled]);
  });

  it.each([
    [1, 1],
    [2, 3],
    [3, 5],
    [10, 13],
    [14, 14],
  ])('matches torch.nn.AdaptiveAvgPool2d((7,7)) from %ix%i', async (h, w) => {
    const shape = [2, h, w, 5];
    const x = pseudoRandom(2 * h * w * 5, h * 31 + w);
    const before = tf.memory().numTensors;
    const input = tf.tensor4d(x, shape as [number, number, number, number]);
    const pooled = adaptiveAvgPool2d(input, 7);
    expect(pooled.shape).toEqual([2, 7, 7, 5]);
    expect(relativeError(await pooled.data<'float32'>(), adaptiveAvgPool(x, shape, 7))).toBeLessThan(1e-6);
    tf.dispose([input, pooled]);
    expect(tf.memory().numTensors).toBe(before);
  });
});
