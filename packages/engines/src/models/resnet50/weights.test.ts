// ResNet-50 weights from torchvision state_dict files (safetensors here; .pth goes through the same reader as
// VGG16's), by their own keys, checked against the model's specs.
import '../../__tests__/main-realm-typed-arrays';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ErrorCode } from '@layertap/contracts';
import { Extractor } from '../../extractor';
import { getModel, randomWeight, loadWeights } from '@layertap/model';
import { safetensorsFile, rejection } from '@layertap/model/testing';

const resnet = getModel('resnet50');

describe('ResNet-50 weights', () => {
  let dir: string;
  const stem = resnet.requiredWeights(['maxpool']).map((spec) => ({ name: spec.name, shape: spec.shape, data: randomWeight(9, spec) }));

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'layertap-resnet-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('reads torchvision keys unconverted, and a run with them equals the seed they were drawn from', async () => {
    const file = path.join(dir, 'stem.safetensors');
    await writeFile(file, safetensorsFile([...stem, { name: 'num_batches_tracked_is_ignored', shape: [1], data: new Float32Array(1) }]));
    const loaded = await loadWeights(file, { model: resnet, layers: ['maxpool'] });
    expect([...loaded.tensors.keys()].sort()).toEqual(['bn1.bias', 'bn1.running_mean', 'bn1.running_var', 'bn1.weight', 'conv1.weight']);
    expect(loaded.tensors.get('conv1.weight')?.shape).toEqual([64, 3, 7, 7]);
    expect(loaded.naming).toBe('torchvision');
    expect(loaded.description).toContain('torchvision keys, sha256 ');

    const input = new Float32Array(64 * 64 * 3).map((_, i) => Math.sin(i));
    const outputs: Float32Array[] = [];
    for (const options of [{ weights: loaded.tensors }, { seed: 9 }, { seed: 0 }]) {
      const extractor = await Extractor.create({ model: 'resnet50', engine: 'onnx', backend: 'cpu', imageSize: 64, threads: 1, ...options });
      extractor.registerForwardHook('maxpool', (out) => void outputs.push(out.data.slice()));
      await extractor.run({ data: input, batchSize: 1 });
      extractor.dispose();
    }
    expect(outputs[0]).toEqual(outputs[1]);
    expect(outputs[0]).not.toEqual(outputs[2]);
  }, 60_000);

  it('refuses a file that cannot serve the layers, a misshapen tensor, and VGG16 published names', async () => {
    const file = path.join(dir, 'stem-only.safetensors');
    await writeFile(file, safetensorsFile(stem));
    const missing = await rejection(loadWeights(file, { model: resnet, layers: ['layer1'] }));
    expect(missing.code).toBe(ErrorCode.InvalidWeights);
    expect(missing.message).toContain('invalid ResNet-50 weights: layer1.0.conv1.weight is missing (expected shape [64, 64, 1, 1])');

    const bad = path.join(dir, 'bad.safetensors');
    await writeFile(bad, safetensorsFile([{ name: 'conv1.weight', shape: [64, 3, 3, 3], data: new Float32Array(64 * 27) }]));
    expect((await rejection(loadWeights(bad, { model: resnet }))).message).toContain('conv1.weight has shape [64, 3, 3, 3], expected [64, 3, 7, 7]');

    expect((await rejection(loadWeights('torchvision-imagenet', { model: resnet }))).message).toMatch(/names VGG16 weights; for ResNet-50 pass a torchvision state_dict/);
  });
});
