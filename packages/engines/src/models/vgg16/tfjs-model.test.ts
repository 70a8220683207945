import * as tf from '@tensorflow/tfjs-core';
import { ErrorCode } from '@layertap/contracts';
import { selectBackend } from '../../backend';
import { buildVgg16 } from './tfjs-model';
import { type WeightsMap, VGG16_WEIGHTS, requiredWeights } from '@layertap/model';
import { thrown } from '@layertap/model/testing';

function paramBytes(layers: string[]): number {
  return requiredWeights(layers).reduce((sum, spec) => sum + 4 * spec.shape.reduce((a, b) => a * b, 1), 0);
}

describe('buildVgg16', () => {
  beforeAll(async () => {
    await selectBackend('wasm');
  });

  it('stops after the deepest output: no later layer, no later weight', () => {
    const before = tf.memory();
    const model = buildVgg16({ imageSize: 32, outputs: ['block2_pool'] });
    expect(model.layers.map((layer) => layer.name)).toEqual([
      'input', 'block1_conv1', 'block1_conv2', 'block1_pool', 'block2_conv1', 'block2_conv2', 'block2_pool',
    ]);
    expect(model.weights.map((w) => w.originalName)).toEqual([
      'block1_conv1/kernel', 'block1_conv1/bias', 'block1_conv2/kernel', 'block1_conv2/bias',
      'block2_conv1/kernel', 'block2_conv1/bias', 'block2_conv2/kernel', 'block2_conv2/bias',
    ]);
    // Exactly the weights of blocks 1-2 were allocated: (1792 + 36928 + 73856 + 147584) float32 values.
    expect(tf.memory().numBytes - before.numBytes).toBe(4 * 260_160);
    expect(tf.memory().numBytes - before.numBytes).toBe(paramBytes(['block2_pool']));
    expect(tf.memory().numTensors - before.numTensors).toBe(8);
    model.dispose();
    expect(tf.memory()).toMatchObject({ numTensors: before.numTensors, numBytes: before.numBytes });
  });

  it('keeps Keras fused convs unless a pre-activation is an output', () => {
    const model = buildVgg16({ imageSize: 32, outputs: ['block1_conv2', 'features.0'] });
    expect(model.layers.map((layer) => layer.name)).toEqual(['input', 'block1_conv1_preact', 'block1_conv1', 'block1_conv2']);
    expect(model.outputs.map((output) => output.shape)).toEqual([
      [null, 32, 32, 64],
      [null, 32, 32, 64],
    ]);
    // The split conv still uses block1_conv1's weights (one kernel and bias per Keras layer).
    expect(model.weights).toHaveLength(4);
    model.dispose();
  });

  it('returns outputs in the order asked, including the head at a small image size', () => {
    const model = buildVgg16({ imageSize: 64, outputs: ['flatten', 'block5_pool', 'avgpool'] });
    expect(model.outputs.map((output) => output.shape)).toEqual([
      [null, 25088],
      [null, 2, 2, 512],
      [null, 7, 7, 512],
    ]);
    expect(model.layers.at(-1)?.name).toBe('flatten');
    model.dispose();
  });

  it('refuses the same tensor twice and an empty output list', () => {
    expect(thrown(() => buildVgg16({ imageSize: 32, outputs: ['features.9', 'block2_pool'] })).message).toContain(
      'block2_pool is given twice',
    );
    expect(thrown(() => buildVgg16({ imageSize: 32, outputs: [] })).code).toBe(ErrorCode.InvalidRequest);
  });

  it('checks given weights before building anything', () => {
    const weights: WeightsMap = new Map();
    for (const spec of VGG16_WEIGHTS.filter((s) => s.layer === 'block1_conv1')) {
      weights.set(spec.name, { shape: [...spec.shape], data: new Float32Array(spec.shape.reduce((a, b) => a * b, 1)) });
    }
    weights.set('block1_conv1/bias', { shape: [32], data: new Float32Array(32) });
    const before = tf.memory().numTensors;
    const err = thrown(() => buildVgg16({ imageSize: 32, outputs: ['block1_pool'], weights }));
    expect(err.code).toBe(ErrorCode.InvalidWeights);
    expect(err.message).toContain('block1_conv1/bias has shape [32], expected [64]');
    expect(err.message).toContain('block1_conv2/kernel is missing (expected shape [3, 3, 64, 64])');
    expect(tf.memory().numTensors).toBe(before);
  });
});
