import { readFile, readdir, writeFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { ErrorCode } from '@layertap/contracts';
import { PARITY, parityIndex, rejection, seededWeights, withTempDir } from '../testing/helpers';
import { convertWeights } from './convert-weights';
import { loadWeights, type LoadedWeights } from './load-weights';
import { parseSafetensors } from './safetensors';
import { TFJS_SHARD_BYTES } from './tfjs-layers';
import type { WeightsMap } from '../weight-specs';

function sameTensors(a: WeightsMap, b: WeightsMap): string[] {
  const problems: string[] = [];
  for (const [name, t] of b) {
    const got = a.get(name);
    if (!got) problems.push(`${name} missing`);
    else if (got.shape.join() !== t.shape.join()) problems.push(`${name} shape ${got.shape} != ${t.shape}`);
    else if (!Buffer.from(got.data.buffer, got.data.byteOffset, got.data.byteLength).equals(Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength))) problems.push(`${name} values differ`);
  }
  if (a.size !== b.size) problems.push(`${a.size} tensors, expected ${b.size}`);
  return problems;
}

describe('convertWeights', () => {
  let source: LoadedWeights;
  beforeAll(async () => {
    const index = await parityIndex();
    source = await loadWeights(path.join(PARITY, index.weights['keras-h5'].file));
  });

  it('round-trips h5 -> safetensors -> TF.js dir -> h5 -> torchvision safetensors with identical tensors', async () => {
    await withTempDir(async (dir) => {
      const expected = seededWeights(11, ['block1_conv1', 'block1_conv2', 'block2_conv1', 'block2_conv2']);
      expect(sameTensors(source.tensors, expected)).toEqual([]);

      const st = await convertWeights(source, path.join(dir, 'a.safetensors'), 'safetensors');
      const fromSt = await loadWeights(st.path);
      expect(fromSt).toMatchObject({ format: 'safetensors', naming: 'keras', sha256: st.sha256, size: st.bytes });
      expect(fromSt.metadata).toMatchObject({ created_by: 'layertap weights convert', layout: 'tf', source_sha256: source.sha256, source_format: 'keras-h5' });
      expect(sameTensors(fromSt.tensors, expected)).toEqual([]);

      const tfjs = await convertWeights(fromSt, path.join(dir, 'tfjs'), 'tfjs-layers');
      expect((await readdir(tfjs.path)).sort()).toEqual(['group1-shard1of1.bin', 'model.json']);
      const fromTfjs = await loadWeights(path.join(tfjs.path, 'model.json'));
      expect(fromTfjs).toMatchObject({ format: 'tfjs-layers', sha256: tfjs.sha256, size: tfjs.bytes });
      expect(JSON.parse(fromTfjs.metadata.layertap ?? '{}')).toMatchObject({ source_sha256: st.sha256, source_format: 'safetensors' });
      expect(sameTensors(fromTfjs.tensors, expected)).toEqual([]);

      const h5 = await convertWeights(fromTfjs, path.join(dir, 'b.h5'), 'keras-h5');
      const fromH5 = await loadWeights(h5.path);
      expect(fromH5).toMatchObject({ format: 'keras-h5', sha256: h5.sha256 });
      expect(fromH5.metadata.layers).toBe('block1_conv1,block1_conv2,block2_conv1,block2_conv2');
      expect(sameTensors(fromH5.tensors, expected)).toEqual([]);

      const torch = await convertWeights(fromH5, path.join(dir, 'c.safetensors'), 'safetensors', { naming: 'torchvision' });
      const header = parseSafetensors(await readFile(torch.path), torch.path);
      expect(header.entries.map((e) => `${e.name} ${e.shape.join('x')}`)).toEqual([
        'features.0.weight 64x3x3x3', 'features.0.bias 64', 'features.2.weight 64x64x3x3', 'features.2.bias 64',
        'features.5.weight 128x64x3x3', 'features.5.bias 128', 'features.7.weight 128x128x3x3', 'features.7.bias 128',
      ]);
      expect(header.metadata).toMatchObject({ format: 'pt', layout: 'torchvision', source_sha256: h5.sha256 });
      // Byte for byte what the Python fixture script wrote from the same values with torch's layout.
      const index = await parityIndex();
      const fixture = await readFile(path.join(PARITY, index.weights.safetensors.file));
      const fixtureHeader = parseSafetensors(fixture, 'fixture');
      const ours = await readFile(torch.path);
      for (const entry of header.entries) {
        const theirs = fixtureHeader.entries.find((e) => e.name === entry.name)!;
        expect({ name: entry.name, same: ours.subarray(entry.begin, entry.end).equals(fixture.subarray(theirs.begin, theirs.end)) }).toEqual({ name: entry.name, same: true });
      }
      expect(sameTensors((await loadWeights(torch.path)).tensors, expected)).toEqual([]);
    });
  });

  it('shards TF.js output at 4 MiB, across tensor boundaries, and reads it back', async () => {
    await withTempDir(async (dir) => {
      // block3 alone is 1.2M values (4.7 MB): two shards, block3_conv2's kernel split between them.
      const weights = seededWeights(4, ['block1_conv1', 'block1_conv2', 'block2_conv1', 'block2_conv2', 'block3_conv1', 'block3_conv2']);
      const loaded: LoadedWeights = { ...source, tensors: weights };
      const out = await convertWeights(loaded, path.join(dir, 'sharded'), 'tfjs-layers');
      const files = (await readdir(out.path)).sort();
      expect(files).toEqual(['group1-shard1of2.bin', 'group1-shard2of2.bin', 'model.json']);
      expect((await readFile(path.join(out.path, 'group1-shard1of2.bin'))).length).toBe(TFJS_SHARD_BYTES);
      const back = await loadWeights(out.path);
      expect(back.sha256).toBe(out.sha256);
      expect(sameTensors(back.tensors, weights)).toEqual([]);
    });
  });

  it('refuses to replace an existing output unless asked, and accepts an empty directory', async () => {
    await withTempDir(async (dir) => {
      const file = path.join(dir, 'x.safetensors');
      await writeFile(file, 'precious');
      const err = await rejection(convertWeights(source, file, 'safetensors'));
      expect(err.code).toBe(ErrorCode.InvalidRequest);
      expect(err.message).toContain('already exists');
      expect(await readFile(file, 'utf8')).toBe('precious');
      const replaced = await convertWeights(source, file, 'safetensors', { overwrite: true });
      expect((await loadWeights(replaced.path)).tensors.size).toBe(8);

      const empty = path.join(dir, 'empty');
      await mkdir(empty);
      await convertWeights(source, empty, 'tfjs-layers');
      expect((await loadWeights(empty)).tensors.size).toBe(8);
      expect((await readdir(dir)).sort()).toEqual(['empty', 'x.safetensors']); // no temporary files left
    });
  });
});
