import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { ErrorCode } from '@layertap/contracts';
import { randomWeight } from '../random-weights';
import { type WeightsMap } from '../weight-specs';
import { VGG16_WEIGHTS } from '../models/vgg16/weight-specs';
import { CONV_LAYERS, PARITY, parityIndex, rejection, seededWeights, withTempDir } from '../testing/helpers';
import { loadH5wasm } from './h5wasm';
import { writeKerasH5 } from './keras-h5';
import { loadWeights } from './load-weights';
import type { NamedTensor } from './safetensors';
import { safetensorsFile } from '../testing/helpers';
import { encodeTfjsLayers } from './tfjs-layers';

const BLOCKS_1_2 = ['block1_conv1', 'block1_conv2', 'block2_conv1', 'block2_conv2'];

function named(weights: WeightsMap): NamedTensor[] {
  return [...weights].map(([name, tensor]) => ({ name, ...tensor }));
}

/** torch layout of a TF conv kernel, written from the definition: w[o][i][y][x] = k[y][x][i][o]. */
function torchConv(kernel: Float32Array, shape: readonly number[]): Float32Array {
  const [kh = 0, kw = 0, cin = 0, cout = 0] = shape;
  const out = new Float32Array(kernel.length);
  for (let o = 0; o < cout; o++)
    for (let i = 0; i < cin; i++)
      for (let y = 0; y < kh; y++)
        for (let x = 0; x < kw; x++) out[((o * cin + i) * kh + y) * kw + x] = kernel[((y * kw + x) * cin + i) * cout + o] as number;
  return out;
}

/** Bit-for-bit equality (jest's toEqual walks typed arrays value by value: seconds for millions). */
function sameBits(a: Float32Array, b: Float32Array): boolean {
  return Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0;
}

function expectSameTensors(actual: WeightsMap, expected: WeightsMap): void {
  expect([...actual.keys()].sort()).toEqual([...expected.keys()].sort());
  for (const [name, tensor] of expected) {
    const got = actual.get(name);
    expect({ name, shape: got?.shape }).toEqual({ name, shape: tensor.shape });
    // Bit-exact: every conversion here is a permutation.
    expect({ name, same: sameBits(got!.data, tensor.data) }).toEqual({ name, same: true });
  }
}

describe('loadWeights', () => {
  const seed11 = seededWeights(11, BLOCKS_1_2);

  it('reads the Keras .h5 fixture: the seed-11 formula values, in TF layout, with the file sha256', async () => {
    const index = await parityIndex();
    const loaded = await loadWeights(path.join(PARITY, index.weights['keras-h5'].file));
    expect(loaded.format).toBe('keras-h5');
    expect(loaded.naming).toBe('keras');
    expect(loaded.sha256).toBe(index.weights['keras-h5'].sha256);
    expect(loaded.size).toBe(index.weights['keras-h5'].size);
    expect(loaded.metadata.layout).toBe('keras2');
    expect(loaded.metadata.layers).toBe('input_1,block1_conv1,block1_conv2,block1_pool,block2_conv1,block2_conv2,block2_pool');
    expect(loaded.description).toContain(index.weights['keras-h5'].sha256);
    expectSameTensors(loaded.tensors, seed11);
  });

  it('reads the torchvision safetensors fixture and converts it to the same TF-layout tensors', async () => {
    const index = await parityIndex();
    const loaded = await loadWeights(path.join(PARITY, index.weights.safetensors.file));
    expect(loaded.format).toBe('safetensors');
    expect(loaded.naming).toBe('torchvision');
    expect(loaded.sha256).toBe(index.weights.safetensors.sha256);
    expect(loaded.origins.get('block2_conv1/kernel')).toBe('features.5.weight [128, 64, 3, 3]');
    expect(loaded.description).toContain('torchvision keys');
    expectSameTensors(loaded.tensors, seed11);
  });

  it('tells formats by content, not by name, and accepts file:// URIs and TF.js directories', async () => {
    await withTempDir(async (dir) => {
      const index = await parityIndex();
      const h5 = path.join(dir, 'looks-like.safetensors');
      const st = path.join(dir, 'looks-like.h5');
      await copyFile(path.join(PARITY, index.weights['keras-h5'].file), h5);
      await copyFile(path.join(PARITY, index.weights.safetensors.file), st);
      const tfjs = encodeTfjsLayers(named(seed11), {});
      const modelDir = path.join(dir, 'tfjs');
      await mkdir(modelDir);
      await writeFile(path.join(modelDir, 'weights.bin'), tfjs.modelJson); // a model.json by another name
      await writeFile(path.join(modelDir, 'model.json'), tfjs.modelJson);
      for (const shard of tfjs.shards) await writeFile(path.join(modelDir, shard.name), shard.bytes);

      expect((await loadWeights(h5)).format).toBe('keras-h5');
      expect((await loadWeights(pathToFileURL(st).toString())).format).toBe('safetensors');
      const byName = await loadWeights(path.join(modelDir, 'weights.bin'));
      const byDir = await loadWeights(modelDir);
      expect(byName.format).toBe('tfjs-layers');
      expect(byDir.format).toBe('tfjs-layers');
      expect(byDir.path).toBe(path.join(modelDir, 'model.json'));
      expect(byDir.sha256).toBe(byName.sha256);
      expectSameTensors(byDir.tensors, seed11);
      expectSameTensors((await loadWeights(st)).tensors, seed11);
    });
  });

  it('reads only the tensors the requested layers need', async () => {
    const index = await parityIndex();
    for (const file of [index.weights['keras-h5'].file, index.weights.safetensors.file]) {
      const loaded = await loadWeights(path.join(PARITY, file), { layers: ['block1_pool'] });
      expect([...loaded.tensors.keys()]).toEqual(['block1_conv1/kernel', 'block1_conv1/bias', 'block1_conv2/kernel', 'block1_conv2/bias']);
    }
  });

  it('refuses a truncated file asked for a deeper layer, naming the first missing tensor and what it serves', async () => {
    const index = await parityIndex();
    const err = await rejection(loadWeights(path.join(PARITY, index.weights['keras-h5'].file), { layers: ['features.9', 'block3_conv1'] }));
    expect(err.code).toBe(ErrorCode.InvalidWeights);
    expect(err.message).toContain('block3_conv1/kernel is missing (expected shape [3, 3, 128, 256])');
    expect(err.message).toContain('it serves block1_conv1_preact .. block2_pool (features.0-9)');
  });

  it('refuses fc1 from a notop .h5 (every conv, no head) saying it has no classifier head, and serves block5_pool', async () => {
    await withTempDir(async (dir) => {
      const notop = path.join(dir, 'notop.h5');
      await writeKerasH5(notop, named(seededWeights(3, CONV_LAYERS)), {});
      const err = await rejection(loadWeights(notop, { layers: ['block2_pool', 'fc1'] }));
      expect(err.code).toBe(ErrorCode.InvalidWeights);
      expect(err.message).toContain('has no classifier head');
      expect(err.message).toContain('cannot compute fc1');
      expect(err.message).toContain('features.0-30');
      const predictions = await rejection(loadWeights(notop, { layers: ['classifier.6'] }));
      expect(predictions.message).toContain('has no classifier head (a "notop" file: convolutional layers only), so it cannot compute classifier.6');
      const unknown = await rejection(loadWeights(notop, { layers: ['block6_pool'] }));
      expect(unknown.code).toBe(ErrorCode.UnknownLayer);

      const served = await loadWeights(notop, { layers: ['block5_pool', 'features.9'] });
      expect(served.tensors.size).toBe(26);
      const all = await loadWeights(notop);
      expect(all.tensors.size).toBe(26);
      const last = all.tensors.get('block5_conv3/kernel')!.data;
      expect(sameBits(last, randomWeight(3, VGG16_WEIGHTS.find((s) => s.name === 'block5_conv3/kernel')!))).toBe(true);
    });
  });

  it('refuses a wrong shape naming the tensor and both shapes (and the torchvision key it was stored as)', async () => {
    await withTempDir(async (dir) => {
      const keras = path.join(dir, 'keras.safetensors');
      const bad = new Float32Array(3 * 3 * 4 * 64);
      await writeFile(keras, safetensorsFile([{ name: 'block1_conv1/kernel', shape: [3, 3, 4, 64], data: bad }, { name: 'block1_conv1/bias', shape: [64], data: new Float32Array(64) }], {}));
      const err = await rejection(loadWeights(keras));
      expect(err.code).toBe(ErrorCode.InvalidWeights);
      expect(err.message).toContain('block1_conv1/kernel has shape [3, 3, 4, 64], expected [3, 3, 3, 64]');

      const torch = path.join(dir, 'torch.safetensors');
      await writeFile(torch, safetensorsFile([{ name: 'features.0.weight', shape: [64, 4, 3, 3], data: bad }, { name: 'features.0.bias', shape: [64], data: new Float32Array(64) }], {}));
      const err2 = await rejection(loadWeights(torch, { layers: ['features.0'] }));
      expect(err2.message).toContain('block1_conv1/kernel has shape [3, 3, 4, 64], expected [3, 3, 3, 64] (stored as features.0.weight [64, 4, 3, 3])');
    });
  });

  it('refuses a missing tensor naming it and its expected shape', async () => {
    await withTempDir(async (dir) => {
      const file = path.join(dir, 'no-bias.safetensors');
      const weights = seededWeights(1, ['block1_conv1', 'block1_conv2']);
      weights.delete('block1_conv2/bias');
      await writeFile(file, safetensorsFile(named(weights), {}));
      const err = await rejection(loadWeights(file, { layers: ['block1_pool'] }));
      expect(err.code).toBe(ErrorCode.InvalidWeights);
      expect(err.message).toContain('block1_conv2/bias is missing (expected shape [64])');
      // block1_conv1 alone is fine.
      expect((await loadWeights(file, { layers: ['features.1'] })).tensors.size).toBe(2);
    });
  });

  it('refuses files that are not weights, safetensors without VGG16 keys, mixed namings, and missing files', async () => {
    await withTempDir(async (dir) => {
      const junk = path.join(dir, 'model.h5');
      await writeFile(junk, 'GIF89a not weights at all');
      const notWeights = await rejection(loadWeights(junk));
      expect(notWeights.code).toBe(ErrorCode.InvalidWeights);
      expect(notWeights.message).toContain('is not a weights file layertap reads');
      expect(notWeights.message).toContain('474946383961'); // the first bytes, in hex

      const other = path.join(dir, 'bert.safetensors');
      await writeFile(other, safetensorsFile([{ name: 'encoder.layer.0.weight', shape: [2], data: new Float32Array(2) }], {}));
      expect((await rejection(loadWeights(other))).message).toContain('found encoder.layer.0.weight');

      const mixed = path.join(dir, 'mixed.safetensors');
      await writeFile(mixed, safetensorsFile([{ name: 'features.0.bias', shape: [64], data: new Float32Array(64) }, { name: 'block1_conv1/bias', shape: [64], data: new Float32Array(64) }], {}));
      expect((await rejection(loadWeights(mixed))).message).toContain('mixes torchvision keys');

      const json = path.join(dir, 'config.json');
      await writeFile(json, '{"architectures": ["VGG"]}');
      expect((await rejection(loadWeights(json))).message).toContain('not a TF.js layers model');

      const missing = await rejection(loadWeights(path.join(dir, 'nope.h5')));
      expect(missing.code).toBe(ErrorCode.NotFound);
      expect(missing.message).toContain('nope.h5');
    });
  });

  it('refuses remote URIs when no fetch function is given, and unknown schemes', async () => {
    await withTempDir(async (cacheDir) => {
      const remote = await rejection(loadWeights('https://user:secret@example.com/vgg16.h5?X-Amz-Signature=abc', { cacheDir }));
      expect(remote.code).toBe(ErrorCode.UnsupportedScheme);
      expect(remote.message).toContain('no fetch function was given');
      expect(remote.message).not.toContain('secret');
      expect(remote.message).not.toContain('abc');
      const s3 = await rejection(loadWeights('s3://bucket/vgg16.h5', { cacheDir }));
      expect(s3.message).toContain('s3://bucket/vgg16.h5');
      expect((await rejection(loadWeights('gs://bucket/vgg16.h5', { cacheDir }))).message).toContain('unsupported weights URI scheme "gs://"');
    });
  });

  it('converts F16 and BF16 safetensors to float32', async () => {
    await withTempDir(async (dir) => {
      // Bias as float16: 1.5, -2, 0.333251953125 (0x3555), then zeros. Kernel as bfloat16: float32 upper halves.
      const halves = new Uint16Array(64);
      halves.set([0x3e00, 0xc000, 0x3555]);
      const kernel = seededWeights(2, ['block1_conv1']).get('block1_conv1/kernel')!.data;
      const bf16 = new Uint16Array(kernel.length);
      const upper = new Uint32Array(kernel.buffer);
      for (let i = 0; i < kernel.length; i++) bf16[i] = upper[i]! >>> 16;
      const header = JSON.stringify({
        'block1_conv1/kernel': { dtype: 'BF16', shape: [3, 3, 3, 64], data_offsets: [0, bf16.byteLength] },
        'block1_conv1/bias': { dtype: 'F16', shape: [64], data_offsets: [bf16.byteLength, bf16.byteLength + 128] },
      });
      const padded = header + ' '.repeat((8 - (header.length % 8)) % 8);
      const length = Buffer.alloc(8);
      length.writeBigUInt64LE(BigInt(padded.length));
      const file = path.join(dir, 'half.safetensors');
      await writeFile(file, Buffer.concat([length, Buffer.from(padded), Buffer.from(bf16.buffer), Buffer.from(halves.buffer)]));
      const loaded = await loadWeights(file, { layers: ['block1_conv1'] });
      expect(Array.from(loaded.tensors.get('block1_conv1/bias')!.data.slice(0, 4))).toEqual([1.5, -2, 0.333251953125, 0]);
      const truncated = Float32Array.from(kernel, (v) => {
        const bits = new Uint32Array(new Float32Array([v]).buffer)[0]! & 0xffff0000;
        return new Float32Array(new Uint32Array([bits]).buffer)[0]!;
      });
      expect(sameBits(loaded.tensors.get('block1_conv1/kernel')!.data, truncated)).toBe(true);
    });
  });

  it('reads the Keras 2 model.save layout (model_weights/), Keras 3 .weights.h5 and Keras 1 weight names', async () => {
    await withTempDir(async (dir) => {
      const h5 = await loadH5wasm();
      const weights = seededWeights(5, ['block1_conv1']);
      const kernel = weights.get('block1_conv1/kernel')!;
      const bias = weights.get('block1_conv1/bias')!;

      const model = path.join(dir, 'model.h5');
      const a = new h5.File(model, 'w');
      const group = a.create_group('model_weights').create_group('block1_conv1').create_group('block1_conv1');
      group.create_dataset({ name: 'kernel:0', data: kernel.data, shape: kernel.shape, dtype: '<f4' });
      group.create_dataset({ name: 'bias:0', data: bias.data, shape: bias.shape, dtype: '<f4' });
      a.close();
      const fromModel = await loadWeights(model);
      expect(fromModel.metadata.layout).toBe('keras2-model');
      expectSameTensors(fromModel.tensors, weights);

      const keras3 = path.join(dir, 'vgg.weights.h5');
      const b = new h5.File(keras3, 'w');
      const vars = b.create_group('layers').create_group('block1_conv1').create_group('vars');
      vars.create_dataset({ name: '0', data: kernel.data, shape: kernel.shape, dtype: '<f4' });
      vars.create_dataset({ name: '1', data: bias.data, shape: bias.shape, dtype: '<f4' });
      b.close();
      const fromKeras3 = await loadWeights(keras3);
      expect(fromKeras3.metadata.layout).toBe('keras3');
      expectSameTensors(fromKeras3.tensors, weights);

      // Keras 1 names (`<layer>_W_1:0`, `<layer>_b_1:0`) are taken by position in `weight_names`, as Keras does.
      const keras1 = path.join(dir, 'keras1.h5');
      const c = new h5.File(keras1, 'w');
      c.create_attribute('layer_names', ['block1_conv1']);
      const layer = c.create_group('block1_conv1');
      layer.create_attribute('weight_names', ['block1_conv1_W_1:0', 'block1_conv1_b_1:0']);
      layer.create_dataset({ name: 'block1_conv1_W_1:0', data: kernel.data, shape: kernel.shape, dtype: '<f4' });
      layer.create_dataset({ name: 'block1_conv1_b_1:0', data: bias.data, shape: bias.shape, dtype: '<f4' });
      c.close();
      expectSameTensors((await loadWeights(keras1)).tensors, weights);
    });
  });

  it('converts torchvision conv weights with transpose (2,3,1,0)', async () => {
    await withTempDir(async (dir) => {
      const weights = seededWeights(9, ['block1_conv1', 'block1_conv2']);
      const torch = [...weights].map(([name, t]) => {
        const key = name.replace('block1_conv1', 'features.0').replace('block1_conv2', 'features.2').replace('/kernel', '.weight').replace('/bias', '.bias');
        return t.shape.length === 4
          ? { name: key, shape: [t.shape[3]!, t.shape[2]!, t.shape[0]!, t.shape[1]!], data: torchConv(t.data, t.shape) }
          : { name: key, shape: t.shape, data: t.data };
      });
      const file = path.join(dir, 'torch.safetensors');
      await writeFile(file, safetensorsFile(torch, {}));
      expectSameTensors((await loadWeights(file)).tensors, weights);
    });
  });
});
