import path from 'node:path';
import { writeFile } from 'node:fs/promises';
import { ErrorCode } from '@layertap/contracts';
import { loadWeights } from '../../weights/load-weights';
import { namingHint } from './tensor-names';
import { rejection, safetensorsFile, withTempDir } from '../../testing/helpers';

const conv = (name: string) => [
  { name: `${name}.weight`, shape: [64, 3, 3, 3], data: new Float32Array(64 * 27) },
  { name: `${name}.bias`, shape: [64], data: new Float32Array(64) },
];

describe('namingHint', () => {
  it('recognises a DataParallel state_dict and BatchNorm VGG, and nothing else', () => {
    expect(namingHint(['module.features.0.weight', 'module.features.0.bias'])).toMatch(/^every key starts with 'module\.' \(a state_dict saved from nn\.DataParallel/);
    expect(namingHint(['features.0.weight', 'features.1.weight', 'features.1.running_mean', 'features.1.running_var'])).toMatch(/^BatchNorm VGG \(vgg16_bn\) is not supported/);
    expect(namingHint(['features.0.weight', 'features.0.bias'])).toBeUndefined();
    expect(namingHint(['module.encoder.weight'])).toBeUndefined();
    expect(namingHint(['block1_conv1/kernel'])).toBeUndefined();
  });

  it('is what loading such a file says, instead of "no VGG16 tensor" or "block1_conv2/kernel is missing"', async () => {
    await withTempDir(async (dir) => {
      const wrapped = path.join(dir, 'dp.safetensors');
      await writeFile(wrapped, safetensorsFile(conv('module.features.0')));
      const dp = await rejection(loadWeights(wrapped));
      expect(dp.code).toBe(ErrorCode.InvalidWeights);
      expect(dp.message).toContain(`${wrapped}: every key starts with 'module.'`);
      expect(dp.message).toContain("strip the prefix: {k.removeprefix('module.'): v for k, v in sd.items()}");

      const bn = path.join(dir, 'bn.safetensors');
      await writeFile(bn, safetensorsFile([...conv('features.0'), { name: 'features.1.running_mean', shape: [64], data: new Float32Array(64) }, { name: 'features.1.running_var', shape: [64], data: new Float32Array(64) }]));
      const err = await rejection(loadWeights(bn));
      expect(err.message).toBe(`${bn}: BatchNorm VGG (vgg16_bn) is not supported: its features indices and BatchNorm layers are not VGG16's; use plain vgg16 weights (torchvision IMAGENET1K_V1)`);
    });
  });
});
