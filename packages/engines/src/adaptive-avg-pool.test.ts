import * as tf from '@tensorflow/tfjs-core';
import { adaptiveAvgPool, pseudoRandom, relativeError } from '@layertap/model/testing';
import { adaptiveAvgPool2d } from './adaptive-avg-pool';
import { selectBackend } from './backend';

describe('adaptive average pooling', () => {
  beforeAll(async () => {
    await selectBackend('wasm');
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
