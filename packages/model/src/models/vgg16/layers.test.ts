import { ErrorCode } from '@layertap/contracts';
import {
  VGG16_LAYERS,
  deepestLayer,
  describeValidSpecs,
  layerOutputShape,
  listLayerSpecs,
  resolveLayerSpec,
  resolveLayerSpecs,
} from './layers';
import { thrown } from '../../testing';

// torchvision vgg16().features / .classifier index -> the Keras-named tensor it gives (ANCHORS.md).
const FEATURES = [
  'block1_conv1_preact', 'block1_conv1', 'block1_conv2_preact', 'block1_conv2', 'block1_pool',
  'block2_conv1_preact', 'block2_conv1', 'block2_conv2_preact', 'block2_conv2', 'block2_pool',
  'block3_conv1_preact', 'block3_conv1', 'block3_conv2_preact', 'block3_conv2', 'block3_conv3_preact', 'block3_conv3', 'block3_pool',
  'block4_conv1_preact', 'block4_conv1', 'block4_conv2_preact', 'block4_conv2', 'block4_conv3_preact', 'block4_conv3', 'block4_pool',
  'block5_conv1_preact', 'block5_conv1', 'block5_conv2_preact', 'block5_conv2', 'block5_conv3_preact', 'block5_conv3', 'block5_pool',
];
const CLASSIFIER = ['fc1_preact', 'fc1', 'fc1', 'fc2_preact', 'fc2', 'fc2', 'predictions'];
const KERAS_NAMES = [
  'block1_conv1', 'block1_conv2', 'block1_pool', 'block2_conv1', 'block2_conv2', 'block2_pool',
  'block3_conv1', 'block3_conv2', 'block3_conv3', 'block3_pool', 'block4_conv1', 'block4_conv2', 'block4_conv3',
  'block4_pool', 'block5_conv1', 'block5_conv2', 'block5_conv3', 'block5_pool', 'flatten', 'fc1', 'fc2', 'predictions',
];

describe('resolveLayerSpec', () => {
  it.each(FEATURES.map((name, i) => [`features.${i}`, name]))('%s -> %s', (spec, canonical) => {
    expect(resolveLayerSpec(spec)).toEqual({ spec, canonical, order: FEATURES.indexOf(canonical) });
  });

  it.each(CLASSIFIER.map((name, i) => [`classifier.${i}`, name]))('%s -> %s', (spec, canonical) => {
    expect(resolveLayerSpec(spec).canonical).toBe(canonical);
  });

  it.each(KERAS_NAMES)('Keras name %s resolves to itself', (name) => {
    expect(resolveLayerSpec(name).canonical).toBe(name);
  });

  it('puts avgpool between block5_pool and flatten, and orders the whole table', () => {
    expect(resolveLayerSpec('avgpool')).toEqual({ spec: 'avgpool', canonical: 'avgpool', order: 31 });
    expect(resolveLayerSpec('flatten').order).toBe(32);
    expect(VGG16_LAYERS.map((layer) => layer.order)).toEqual(VGG16_LAYERS.map((_, i) => i));
    expect(VGG16_LAYERS).toHaveLength(31 + 1 + 1 + 5);
  });

  it('trims whitespace and keeps the trimmed spec', () => {
    expect(resolveLayerSpec('  features.9 ')).toEqual({ spec: 'features.9', canonical: 'block2_pool', order: 9 });
  });

  it('refuses an unknown layer with unknown_layer and lists what is valid', () => {
    const err = thrown(() => resolveLayerSpec('block6_pool'));
    expect(err.code).toBe(ErrorCode.UnknownLayer);
    expect(err.message).toContain('"block6_pool"');
    expect(err.message).toContain('block1_conv1, block1_conv2, block1_pool');
    expect(err.message).toContain('features.0-30');
    expect(err.message).toContain('classifier.0-6');
    expect(err.message).toContain('avgpool');
    expect(err.message).toContain('_preact');
  });

  it.each(['features.31', 'classifier.7', 'features', 'features.-1', '', 'fc3'])('refuses %j', (spec) => {
    expect(thrown(() => resolveLayerSpec(spec)).code).toBe(ErrorCode.UnknownLayer);
  });

  it('is case-sensitive but suggests the lowercase name', () => {
    const err = thrown(() => resolveLayerSpec('Block2_Pool'));
    expect(err.code).toBe(ErrorCode.UnknownLayer);
    expect(err.message).toContain('did you mean "block2_pool"?');
  });

  it.each([
    ['block2_pol', 'block2_pool'],
    ['feature.9', 'features.9'],
    ['blok3_conv3', 'block3_conv3'],
    ['classifer.4', 'classifier.4'],
  ])('suggests the closest name for the typo %j', (typo, guess) => {
    expect(thrown(() => resolveLayerSpec(typo)).message).toContain(`unknown VGG16 layer "${typo}" (did you mean "${guess}"?)`);
  });

  it('suggests nothing when two names are as close, or none is close', () => {
    expect(thrown(() => resolveLayerSpec('fc3')).message).not.toContain('did you mean');
    expect(thrown(() => resolveLayerSpec('resnet_layer4')).message).not.toContain('did you mean');
  });

  it('describes the valid specs compactly', () => {
    expect(describeValidSpecs()).toMatch(/torchvision: features\.0-30, avgpool, classifier\.0-6$/);
  });
});

describe('resolveLayerSpecs', () => {
  it('keeps request order and allows two specs of one tensor', () => {
    const resolved = resolveLayerSpecs(['block3_pool', 'features.9', 'block2_pool']);
    expect(resolved.map((r) => [r.spec, r.canonical])).toEqual([
      ['block3_pool', 'block3_pool'],
      ['features.9', 'block2_pool'],
      ['block2_pool', 'block2_pool'],
    ]);
  });

  it('refuses the same spec twice', () => {
    const err = thrown(() => resolveLayerSpecs(['features.9', ' features.9']));
    expect(err.code).toBe(ErrorCode.InvalidRequest);
    expect(err.message).toContain('"features.9" is requested twice');
  });

  it('reports the first unknown spec', () => {
    expect(thrown(() => resolveLayerSpecs(['features.9', 'nope'])).message).toContain('"nope"');
  });
});

describe('layerOutputShape', () => {
  // (C,H,W) at 224 from ANCHORS.md.
  it.each([
    ['block1_conv1_preact', [64, 224, 224]],
    ['block1_conv2', [64, 224, 224]],
    ['block1_pool', [64, 112, 112]],
    ['block2_conv1', [128, 112, 112]],
    ['block2_pool', [128, 56, 56]],
    ['block3_conv3', [256, 56, 56]],
    ['block3_pool', [256, 28, 28]],
    ['block4_conv1', [512, 28, 28]],
    ['block4_pool', [512, 14, 14]],
    ['block5_conv3_preact', [512, 14, 14]],
    ['block5_pool', [512, 7, 7]],
    ['avgpool', [512, 7, 7]],
    ['flatten', [25088]],
    ['fc1_preact', [4096]],
    ['classifier.2', [4096]],
    ['fc2', [4096]],
    ['predictions', [1000]],
  ])('%s at 224 is %j', (layer, shape) => {
    expect(layerOutputShape(layer, 224)).toEqual(shape);
  });

  it('floor-divides at sizes that are not multiples of 32, and keeps the head fixed', () => {
    expect(layerOutputShape('block1_conv1', 100)).toEqual([64, 100, 100]);
    expect(layerOutputShape('block2_pool', 100)).toEqual([128, 25, 25]);
    expect(layerOutputShape('block3_pool', 100)).toEqual([256, 12, 12]);
    expect(layerOutputShape('block5_pool', 100)).toEqual([512, 3, 3]);
    expect(layerOutputShape('avgpool', 100)).toEqual([512, 7, 7]);
    expect(layerOutputShape('fc1', 100)).toEqual([4096]);
    expect(layerOutputShape('features.30', 32)).toEqual([512, 1, 1]);
    expect(layerOutputShape('block4_pool', 256)).toEqual([512, 16, 16]);
  });

  it.each([31, 0, -224, 64.5, Number.NaN])('refuses image size %p', (size) => {
    const err = thrown(() => layerOutputShape('block1_pool', size));
    expect(err.code).toBe(ErrorCode.InvalidRequest);
    expect(err.message).toContain('>= 32');
  });
});

describe('listLayerSpecs and deepestLayer', () => {
  it('lists every canonical name and every torchvision index once', () => {
    const specs = listLayerSpecs();
    expect(new Set(specs).size).toBe(specs.length);
    for (let i = 0; i <= 30; i++) expect(specs).toContain(`features.${i}`);
    for (let i = 0; i <= 6; i++) expect(specs).toContain(`classifier.${i}`);
    for (const name of [...KERAS_NAMES, 'avgpool', 'fc1_preact']) expect(specs).toContain(name);
    // avgpool is both a canonical name and torchvision's module name.
    expect(specs).toHaveLength(VGG16_LAYERS.length + 31 + 7);
    expect(specs.slice(0, 4)).toEqual(['block1_conv1_preact', 'features.0', 'block1_conv1', 'features.1']);
  });

  it('finds the deepest layer whatever the spec style', () => {
    expect(deepestLayer(['block2_pool', 'features.16', 'block1_conv1'])).toBe('block3_pool');
    expect(deepestLayer(['classifier.0', 'avgpool'])).toBe('fc1_preact');
    expect(thrown(() => deepestLayer([])).code).toBe(ErrorCode.InvalidRequest);
  });
});

const ENGINE_MODULES = ['@tensorflow/tfjs-core', '@tensorflow/tfjs-layers', '@tensorflow/tfjs-backend-wasm', 'onnxruntime-node', 'webgpu'];

describe('the ./layers entry', () => {
  it('loads, as does the whole package, without an engine', () => {
    jest.isolateModules(() => {
      for (const id of ENGINE_MODULES) {
        jest.doMock(id, () => {
          throw new Error(`${id} was loaded`);
        }, { virtual: true });
      }
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const layers = require('./layers') as typeof import('./layers');
      expect(layers.resolveLayerSpec('features.9').canonical).toBe('block2_pool');
      // The index too (the CLI resolves specs, shapes and weights through it; engines are @layertap/engines').
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const index = require('../../index') as typeof import('../../index');
      expect(index.getModel('resnet50').layer('layer1').channels).toBe(256);
      expect(index.getModel('vgg16').layer('features.9').name).toBe('block2_pool');
    });
  });

  it('declares no engine among its dependencies', () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const manifest = require('../../../package.json') as { dependencies: Record<string, string>; peerDependencies?: object };
    expect(Object.keys(manifest.dependencies).filter((name) => name.startsWith('@tensorflow/') || ENGINE_MODULES.includes(name))).toEqual([]);
    expect(manifest.peerDependencies).toBeUndefined();
  });

  it('is the subpath export of the package', () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const pkg = require('../../../package.json') as { exports: Record<string, { default: string }> };
    expect(pkg.exports['./layers']?.default).toBe('./dist/models/vgg16/layers.js');
  });
});
