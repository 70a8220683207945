// `.pth` checkpoints through loadWeights and convertWeights, and the preprocessing each kind of weights
// implies. Fixtures: test/fixtures/pth (torch.save by Debian's python3-torch) and test/fixtures/parity.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { ErrorCode } from '@layertap/contracts';
import { PARITY, PTH, parityIndex, rejection, seededWeights, withTempDir } from '../testing/helpers';
import { convertWeights } from './convert-weights';
import { loadWeights } from './load-weights';
import { choosePreprocess, trainedPreprocess } from './preprocess-for-weights';


interface PthWeights {
  file: string;
  size: number;
  sha256: string;
  serialization: 'zip' | 'legacy';
}
let weights: Record<'zip' | 'legacy' | 'float16-zip' | 'float16-legacy', PthWeights>;
let safetensorsFile: string;
beforeAll(async () => {
  weights = (JSON.parse(await readFile(path.join(PTH, 'index.json'), 'utf8')) as { weights: typeof weights }).weights;
  safetensorsFile = path.join(PARITY, (await parityIndex()).weights.safetensors.file);
});

function sameBits(a: Float32Array, b: Float32Array): boolean {
  return Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0;
}

describe('loadWeights on PyTorch checkpoints', () => {
  it.each(['zip', 'legacy'] as const)(
    '%s format: the same TF-layout tensors, bit for bit, as the safetensors written from the same state_dict',
    async (format) => {
      const fixture = weights[format];
      const started = performance.now();
      const loaded = await loadWeights(path.join(PTH, fixture.file));
      const ms = performance.now() - started;
      const reference = await loadWeights(safetensorsFile);
      expect(loaded).toMatchObject({ format: 'pytorch', naming: 'torchvision', sha256: fixture.sha256, size: fixture.size });
      expect(loaded.metadata).toEqual({ serialization: format, dtypes: 'float32' });
      expect(loaded.description).toContain(`(pytorch ${format}, torchvision keys, sha256 ${fixture.sha256})`);
      expect(loaded.origins.get('block1_conv1/kernel')).toBe('features.0.weight [64, 3, 3, 3]');
      expect([...loaded.tensors.keys()].sort()).toEqual([...reference.tensors.keys()].sort());
      for (const [name, tensor] of reference.tensors) {
        expect({ name, shape: loaded.tensors.get(name)?.shape, same: sameBits(loaded.tensors.get(name)!.data, tensor.data) }).toEqual({ name, shape: tensor.shape, same: true });
      }
      process.stdout.write(`loadWeights ${fixture.file} (${(fixture.size / 1e6).toFixed(2)} MB): ${ms.toFixed(1)} ms\n`);
    },
  );

  it('reads float16 checkpoints in both formats: the seed-11 values rounded to half precision', async () => {
    const zip = await loadWeights(path.join(PTH, weights['float16-zip'].file));
    const legacy = await loadWeights(path.join(PTH, weights['float16-legacy'].file));
    expect(zip.metadata.dtypes).toBe('float16');
    expect(zip.origins.get('block1_conv2/kernel')).toBe('features.2.weight [64, 64, 3, 3] float16');
    const seeded = seededWeights(11, ['block1_conv1', 'block1_conv2']);
    expect([...zip.tensors.keys()].sort()).toEqual([...seeded.keys()].sort());
    for (const [name, tensor] of seeded) {
      const half = zip.tensors.get(name)!.data;
      expect(sameBits(half, legacy.tensors.get(name)!.data)).toBe(true);
      let worst = 0;
      let differ = 0;
      for (let i = 0; i < half.length; i++) {
        const want = tensor.data[i]!;
        // Half precision: 11 significant bits, subnormal below 2^-14.
        worst = Math.max(worst, Math.abs(half[i]! - want) / Math.max(Math.abs(want), 2 ** -14));
        if (half[i] !== want) differ++;
      }
      expect({ name, within: worst <= 2 ** -11 }).toEqual({ name, within: true });
      expect(differ).toBeGreaterThan(half.length / 2); // they really are float16 values, not the float32 ones
    }
  });

  it.each(['zip', 'legacy'] as const)('refuses the malicious %s checkpoint, naming posix.system', async (format) => {
    const err = await rejection(loadWeights(path.join(PTH, `malicious.${format}.pth`), { layers: ['block1_conv1'] }));
    expect(err.code).toBe(ErrorCode.InvalidWeights);
    expect(err.message).toContain('refused: its pickle names the global posix.system');
  });

  it('converts a .pth to safetensors and keeps its training: Keras-style names, torchvision preprocessing', async () => {
    await withTempDir(async (dir) => {
      const input = await loadWeights(path.join(PTH, weights.legacy.file));
      const out = await convertWeights(input, path.join(dir, 'out.safetensors'), 'safetensors');
      const back = await loadWeights(out.path);
      expect(back.naming).toBe('keras');
      expect(back.metadata).toMatchObject({ preprocess: 'torchvision', source_format: 'pytorch', source_sha256: weights.legacy.sha256 });
      expect(trainedPreprocess(back).mode).toBe('torchvision');
      const h5 = await loadWeights((await convertWeights(input, path.join(dir, 'out.h5'), 'keras-h5')).path);
      expect(h5.metadata.preprocess).toBe('torchvision');
      expect(trainedPreprocess(h5).mode).toBe('torchvision');
    });
  });
});

describe('preprocessing follows the weights', () => {
  it('decides by content: Keras files caffe, torchvision keys torchvision, random torchvision', async () => {
    const h5 = await loadWeights(path.join(PARITY, (await parityIndex()).weights['keras-h5'].file));
    const pth = await loadWeights(path.join(PTH, weights.zip.file));
    const st = await loadWeights(safetensorsFile);
    expect(trainedPreprocess(h5)).toEqual({ mode: 'caffe', reason: expect.stringContaining("Keras weights (keras-h5, block1_conv1/kernel, ...): keras-applications' VGG16 is the original Caffe training") });
    expect(trainedPreprocess(pth)).toEqual({ mode: 'torchvision', reason: expect.stringContaining('torchvision state_dict keys (features.0.weight, ...) in a pytorch file') });
    expect(trainedPreprocess(st).mode).toBe('torchvision');
    expect(trainedPreprocess('random')).toEqual({ mode: 'torchvision', reason: expect.stringContaining('random weights have no training to follow') });
  });

  it('runs an explicit --preprocess, warning in one line when it contradicts the weights', () => {
    const keras = { format: 'keras-h5', naming: 'keras' as const, metadata: {} };
    expect(choosePreprocess(keras)).toMatchObject({ mode: 'caffe' });
    expect(choosePreprocess(keras, 'caffe')).toEqual({ mode: 'caffe', reason: expect.stringMatching(/^--preprocess caffe given, as the weights expect/) });
    const contradicted = choosePreprocess(keras, 'torchvision');
    expect(contradicted.mode).toBe('torchvision');
    expect(contradicted.warning).toMatch(/^--preprocess torchvision contradicts the weights, which were trained with caffe preprocessing \(Keras weights/);
    expect(contradicted.warning).not.toContain('\n');
    expect(choosePreprocess('random', 'caffe')).toEqual({ mode: 'caffe', reason: '--preprocess caffe given' });
    expect(choosePreprocess({ format: 'safetensors', naming: 'keras', metadata: { preprocess: 'torchvision' } }).mode).toBe('torchvision');
    expect(choosePreprocess({ format: 'tfjs-layers', naming: 'keras', metadata: { layertap: JSON.stringify({ preprocess: 'torchvision' }) } }).mode).toBe('torchvision');
  });
});
