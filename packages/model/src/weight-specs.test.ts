import { ErrorCode } from '@layertap/contracts';
import { validateWeights, type WeightsMap } from './weight-specs';
import { VGG16_WEIGHTS, requiredWeights } from './models/vgg16/weight-specs';
import { thrown } from './testing';

function weightsFor(names: string[]): WeightsMap {
  const map: WeightsMap = new Map();
  for (const spec of VGG16_WEIGHTS.filter((s) => names.includes(s.layer))) {
    map.set(spec.name, { shape: [...spec.shape], data: new Float32Array(spec.shape.reduce((a, b) => a * b, 1)) });
  }
  return map;
}

describe('VGG16_WEIGHTS', () => {
  it('has the Keras tensors with TF layouts and the known parameter count', () => {
    const shapes = Object.fromEntries(VGG16_WEIGHTS.map((s) => [s.name, s.shape]));
    expect(shapes['block1_conv1/kernel']).toEqual([3, 3, 3, 64]);
    expect(shapes['block1_conv1/bias']).toEqual([64]);
    expect(shapes['block2_conv1/kernel']).toEqual([3, 3, 64, 128]);
    expect(shapes['block5_conv3/kernel']).toEqual([3, 3, 512, 512]);
    expect(shapes['fc1/kernel']).toEqual([25088, 4096]);
    expect(shapes['fc2/kernel']).toEqual([4096, 4096]);
    expect(shapes['predictions/kernel']).toEqual([4096, 1000]);
    expect(shapes['predictions/bias']).toEqual([1000]);
    expect(VGG16_WEIGHTS).toHaveLength(32);
    // keras.applications.VGG16(include_top=True).count_params()
    const params = VGG16_WEIGHTS.reduce((sum, s) => sum + s.shape.reduce((a, b) => a * b, 1), 0);
    expect(params).toBe(138_357_544);
  });
});

describe('requiredWeights', () => {
  it('needs the weights up to and including the deepest layer', () => {
    expect(requiredWeights(['block1_conv1_preact']).map((s) => s.name)).toEqual(['block1_conv1/kernel', 'block1_conv1/bias']);
    expect(requiredWeights(['features.9', 'block1_pool']).map((s) => s.layer)).toEqual([
      'block1_conv1', 'block1_conv1', 'block1_conv2', 'block1_conv2', 'block2_conv1', 'block2_conv1', 'block2_conv2', 'block2_conv2',
    ]);
    expect(requiredWeights(['flatten'])).toHaveLength(26);
    expect(requiredWeights(['classifier.0']).at(-1)?.name).toBe('fc1/bias');
    expect(requiredWeights(['predictions'])).toHaveLength(32);
  });
});

describe('validateWeights', () => {
  it('accepts complete weights', () => {
    expect(() => validateWeights(weightsFor(['block1_conv1', 'block1_conv2']), requiredWeights(['block1_pool']))).not.toThrow();
  });

  it('names a missing tensor and its expected shape', () => {
    const err = thrown(() => validateWeights(weightsFor(['block1_conv1']), requiredWeights(['block1_pool'])));
    expect(err.code).toBe(ErrorCode.InvalidWeights);
    expect(err.message).toContain('block1_conv2/kernel is missing (expected shape [3, 3, 64, 64])');
    expect(err.message).toContain('block1_conv2/bias is missing (expected shape [64])');
  });

  it('names a misshapen tensor with both shapes', () => {
    const weights = weightsFor(['block1_conv1']);
    weights.set('block1_conv1/kernel', { shape: [64, 3, 3, 3], data: new Float32Array(1728) });
    const err = thrown(() => validateWeights(weights, requiredWeights(['block1_conv1'])));
    expect(err.code).toBe(ErrorCode.InvalidWeights);
    expect(err.message).toContain('block1_conv1/kernel has shape [64, 3, 3, 3], expected [3, 3, 3, 64]');
  });

  it('refuses data that does not fill the shape', () => {
    const weights = weightsFor(['block1_conv1']);
    weights.set('block1_conv1/bias', { shape: [64], data: new Float32Array(63) });
    expect(thrown(() => validateWeights(weights, requiredWeights(['block1_conv1']))).message).toContain(
      'block1_conv1/bias has 63 values, its shape [64] needs 64',
    );
  });
});
