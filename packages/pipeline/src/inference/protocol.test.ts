import { LayertapError } from '@layertap/contracts';
import { errorFromWire, modelKey, type ModelSpec } from './protocol';

const spec = (overrides: Partial<ModelSpec> = {}): ModelSpec => ({
  engine: 'tfjs',
  backend: 'cpu',
  imageSize: 224,
  layers: [
    { spec: 'features.29', canonical: 'block5_conv3', shape: [512, 14, 14] },
    { spec: 'fc2', canonical: 'fc2', shape: [4096] },
  ],
  seed: 0,
  preprocess: 'torchvision',
  store: { layout: 'chw', pool: 'none', dtype: 'float32' },
  ...overrides,
});

describe('modelKey', () => {
  it('is the same for equal specs', () => {
    expect(modelKey(spec())).toBe(modelKey(spec()));
    expect(modelKey(spec())).toBe('["vgg16","tfjs","cpu",[],false,null,224,["features.29","fc2"],null,0]');
  });

  it.each<[string, Partial<ModelSpec>]>([
    ['engine', { engine: 'onnx' }],
    ['backend', { backend: 'wasm' }],
    ['thread count', { threads: 4 }],
    ['image size', { imageSize: 256 }],
    ['layer list', { layers: [{ spec: 'fc2', canonical: 'fc2', shape: [4096] }] }],
    ['layer order', { layers: [{ spec: 'fc2', canonical: 'fc2', shape: [4096] }, { spec: 'features.29', canonical: 'block5_conv3', shape: [512, 14, 14] }] }],
    ['layer spec for the same tensor', { layers: [{ spec: 'block5_conv3', canonical: 'block5_conv3', shape: [512, 14, 14] }, { spec: 'fc2', canonical: 'fc2', shape: [4096] }] }],
    ['weights', { weights: 's3://w/vgg16.h5' }],
    ['seed', { seed: 1 }],
    ['engines dropped after faults', { exclude: [['onnx/webgpu', 'faulted twice']] }],
    ['the im2col shader', { im2col: true }],
    ['ONNX file', { model: 'onnx', onnx: { uri: 'file:///m.onnx', sha256: 'a'.repeat(64), bytes: 10, input: 'image', imageSize: 224, tensors: [{ name: 'fc2', order: 3, op: 'Gemm', shape: [4096] }] } }],
  ])('changes with the %s', (_what, change) => {
    expect(modelKey(spec(change))).not.toBe(modelKey(spec()));
  });

  it('tells "no weights" from a weights URI that reads "null"', () => {
    expect(modelKey(spec({ weights: 'null' }))).not.toBe(modelKey(spec()));
  });
});

describe('errorFromWire', () => {
  it('rebuilds coded errors as LayertapErrors with their code and name, others as plain errors', () => {
    const refusal = errorFromWire({ name: 'ValidationError', code: 'invalid_model', message: 'm.onnx changed since the dataset was submitted' });
    expect(refusal).toBeInstanceOf(LayertapError);
    expect(refusal).toMatchObject({ code: 'invalid_model', name: 'ValidationError', message: 'm.onnx changed since the dataset was submitted' });
    const plain = errorFromWire({ name: 'RangeError', message: 'bad' });
    expect(plain).not.toBeInstanceOf(LayertapError);
    expect(plain.name).toBe('RangeError');
  });
});
