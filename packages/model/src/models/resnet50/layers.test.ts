import { ErrorCode } from '@layertap/contracts';
import { getModel } from '../../models';
import { foldBatchNorm } from './onnx-graph';
import { thrown } from '../../testing';

const resnet = getModel('resnet50');

describe('the ResNet-50 table', () => {
  it('gives torchvision shapes at 224 and at other sizes', () => {
    expect(resnet.outputShape('bn1', 224)).toEqual([64, 112, 112]);
    expect(resnet.outputShape('maxpool', 224)).toEqual([64, 56, 56]);
    expect(resnet.outputShape('layer1', 224)).toEqual([256, 56, 56]);
    expect(resnet.outputShape('layer2.0.relu', 224)).toEqual([128, 56, 56]);
    expect(resnet.outputShape('layer2.0.relu_1', 224)).toEqual([128, 28, 28]);
    expect(resnet.outputShape('layer2', 224)).toEqual([512, 28, 28]);
    expect(resnet.outputShape('layer3', 224)).toEqual([1024, 14, 14]);
    expect(resnet.outputShape('layer4', 224)).toEqual([2048, 7, 7]);
    expect(resnet.outputShape('avgpool', 224)).toEqual([2048, 1, 1]);
    expect(resnet.outputShape('flatten', 224)).toEqual([2048]);
    expect(resnet.outputShape('fc', 224)).toEqual([1000]);
    // torchvision at 225: 113, 57, 29, 15, 8 (each stride-2 step is floor((h - 1) / 2) + 1).
    expect(resnet.outputShape('layer4', 225)).toEqual([2048, 8, 8]);
    expect(resnet.outputShape('layer1', 225)).toEqual([256, 57, 57]);
  });

  it('names blocks and stages by module and by node', () => {
    expect(resnet.layer('layer3.5').name).toBe('layer3');
    expect(resnet.layer('layer3.5.relu_2').name).toBe('layer3');
    expect(resnet.layer('layer3.4').name).toBe('layer3.4');
    expect(resnet.layer('layer1.0.downsample').name).toBe('layer1.0.downsample.1');
    expect(resnet.resolveLayers(['layer4.2.relu', 'avgpool']).map((l) => l.canonical)).toEqual(['layer4.2.relu', 'avgpool']);
    const layers = resnet.layers.map((l) => l.name);
    expect(layers.indexOf('layer4.2.relu')).toBeLessThan(layers.indexOf('layer4'));
  });

  it('refuses unknown names, and points a folded conv at its BatchNorm', () => {
    const err = thrown(() => resnet.layer('layer1.0.conv2'));
    expect(err.code).toBe(ErrorCode.UnknownLayer);
    expect(err.message).toContain('hook layer1.0.bn2');
    expect(thrown(() => resnet.layer('block2_pool')).message).toMatch(/^unknown ResNet-50 layer "block2_pool"\. Valid layers: bn1, relu, maxpool/);
    expect(thrown(() => resnet.checkImageSize(16)).code).toBe(ErrorCode.InvalidRequest);
  });

  it('has torchvision state_dict names and the 25,557,032 parameters of resnet50()', () => {
    const params = resnet.weights.reduce((sum, spec) => sum + spec.shape.reduce((a, b) => a * b, 1), 0);
    // 25,557,032 trainable parameters plus the running means and variances of 26,560 BatchNorm channels.
    expect(params).toBe(25_557_032 + 2 * 26_560);
    const names = new Map(resnet.weights.map((spec) => [spec.name, spec.shape]));
    expect(names.get('conv1.weight')).toEqual([64, 3, 7, 7]);
    expect(names.get('layer1.0.downsample.0.weight')).toEqual([256, 64, 1, 1]);
    expect(names.get('layer4.2.bn3.running_var')).toEqual([2048]);
    expect(names.get('fc.weight')).toEqual([1000, 2048]);
    // A model cut at layer1 needs no stage-2 tensor.
    expect(resnet.requiredWeights(['layer1']).some((spec) => spec.name.startsWith('layer2.'))).toBe(false);
    expect(resnet.requiredWeights(['layer1']).some((spec) => spec.name === 'layer1.2.bn3.running_mean')).toBe(true);
  });

  it('says why TF.js cannot build it', () => {
    expect(resnet.engines.tfjs).toMatch(/ONNX Runtime only/);
  });
});

describe('foldBatchNorm', () => {
  it('folds scale and shift per output channel', () => {
    const weight = new Float32Array([1, 2, 3, 4]); // 2 output channels of 2 values
    const bn = { gamma: new Float32Array([2, 0.5]), beta: new Float32Array([1, -1]), mean: new Float32Array([3, 0]), variance: new Float32Array([4 - 1e-5, 1 - 1e-5]) };
    const folded = foldBatchNorm(weight, bn);
    expect(Array.from(folded.weight)).toEqual([1, 2, 1.5, 2].map(Math.fround));
    // b' = beta - mean * gamma / sqrt(var + eps): 1 - 3 * 2 / 2 = -2; -1 - 0 = -1.
    expect(Array.from(folded.bias)).toEqual([-2, -1]);
  });
});
