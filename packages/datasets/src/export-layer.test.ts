import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { ErrorCode, type ManifestLine } from '@layertap/contracts';
import {
  decodeNpy,
  decodeSafetensors,
  encodeNpy,
  encodeSafetensors,
  float16BitsToFloat32,
  float32ToFloat16Bits,
  manifestKey,
  openOutput,
  sampleKey,
  shardKey,
  shardOutputRef,
  shardTensorName,
  type OutputWriter,
} from '@layertap/storage';
import type { DatasetInfo } from './dataset-info';
import { DatasetReader } from './dataset-reader';
import { exportLayer, exportPaths } from './export-layer';

/** Sample `i`'s (C=2,H=2,W=3) array: distinct values, exact in float16. */
const values = (i: number) => Float32Array.from({ length: 12 }, (_, j) => (i * 16 + j) / 8 - 3);

const info = (overrides: Partial<DatasetInfo> = {}): DatasetInfo => ({
  datasetId: 'ds',
  preprocess: 'torchvision',
  imageSize: 32,
  dtype: 'float32',
  layout: 'chw',
  pool: 'none',
  format: 'npy',
  layers: [
    { spec: 'features.4', canonical: 'block1_pool', shape: [2, 2, 3] },
    { spec: 'fc2', canonical: 'fc2', shape: [4096] },
  ],
  ...overrides,
});

function ok(id: string, ref: string): ManifestLine {
  return { id, uri: `file:///img/${id}.jpg`, status: 'ok', outputs: { 'features.4': ref }, shape: { 'features.4': [2, 2, 3] }, dtype: 'float32' };
}
const failed = (id: string): ManifestLine => ({ id, uri: `file:///img/${id}.jpg`, status: 'failed', error: { code: 'decode_failed', message: 'no' }, outputs: {}, shape: {}, dtype: 'float32' });
const jsonl = (lines: ManifestLine[]) => lines.map((l) => `${JSON.stringify(l)}\n`).join('');

describe('exportLayer (a real file:// output)', () => {
  let dir: string;
  let writer: OutputWriter;
  let reader: DatasetReader;

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'lt-export-'));
    writer = openOutput(pathToFileURL(path.join(dir, 'out')).href);
    reader = new DatasetReader({ output: writer.uri, datasetId: 'ds' });
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('names the ids file beside the array and refuses other extensions', () => {
    expect(exportPaths('/x/acts.npy')).toEqual({ format: 'npy', idsPath: '/x/acts.ids.txt' });
    expect(exportPaths('/x/acts.v2.SAFETENSORS')).toEqual({ format: 'safetensors', idsPath: '/x/acts.v2.ids.txt' });
    expect(() => exportPaths('/x/acts.pt')).toThrow('--to "/x/acts.pt": give a .npy or .safetensors file');
  });

  it('stacks .npy outputs in manifest order, leaving failed samples out', async () => {
    const order = [3, 0, 2, 1];
    for (const i of order) await writer.put(sampleKey('ds', 'features.4', `s${i}`), encodeNpy(values(i), [2, 2, 3], 'float32'));
    await writer.put(manifestKey('ds'), jsonl([ok('s3', 'ds/features.4/s3.npy'), failed('bad'), ok('s0', 'ds/features.4/s0.npy'), ok('s2', 'ds/features.4/s2.npy'), ok('s1', 'ds/features.4/s1.npy')]));
    const seen: number[] = [];
    const to = path.join(dir, 'acts.npy');
    const result = await exportLayer(reader, info(), { layer: 'block1_pool', to, concurrency: 3, onProgress: (p) => seen.push(p.rows) });
    expect(result).toMatchObject({ layer: 'features.4', shape: [4, 2, 2, 3], dtype: 'float32', format: 'npy', idsPath: path.join(dir, 'acts.ids.txt') });
    const npy = decodeNpy(await readFile(to));
    expect(npy.shape).toEqual([4, 2, 2, 3]);
    expect(npy.data).toEqual(Float32Array.from(order.flatMap((i) => [...values(i)])));
    expect(await readFile(result.idsPath, 'utf8')).toBe('s3\ns0\ns2\ns1\n');
    expect(seen).toEqual([1, 2, 3, 4]);
    expect((await readFile(to)).length).toBe(result.bytes);
  });

  it('reads each shard once, placing rows where the manifest puts them (a retried sample in a later run)', async () => {
    const shard = (run: number, chunk: number, ids: number[]) =>
      writer.put(
        shardKey('ds', run, chunk),
        encodeSafetensors(ids.map((i) => ({ name: shardTensorName(`s${i}`, 'features.4'), dtype: 'F16' as const, shape: [2, 2, 3], data: float32ToFloat16Bits(values(i)) }))),
      );
    await shard(0, 0, [0, 2]);
    await shard(0, 1, [3]);
    // s1 failed in run 0 and was retried in run 1; the manifest keeps its place.
    await shard(1, 0, [1]);
    const ref = (run: number, chunk: number, i: number) => shardOutputRef(shardKey('ds', run, chunk), shardTensorName(`s${i}`, 'features.4'));
    await writer.put(manifestKey('ds'), jsonl([ok('s0', ref(0, 0, 0)), ok('s1', ref(1, 0, 1)), ok('s2', ref(0, 0, 2)), ok('s3', ref(0, 1, 3))]));

    const reads: string[] = [];
    const shardOf = reader.shard.bind(reader);
    reader.shard = (key, tensors) => {
      reads.push(key);
      return shardOf(key, tensors);
    };
    const f16 = info({ dtype: 'float16', format: 'shards' });
    const to = path.join(dir, 'acts.safetensors');
    const result = await exportLayer(reader, f16, { layer: 'features.4', to });
    expect(reads).toEqual([shardKey('ds', 0, 0), shardKey('ds', 1, 0), shardKey('ds', 0, 1)]);
    const file = decodeSafetensors(await readFile(to));
    expect(file.metadata).toEqual({ datasetId: 'ds', layer: 'features.4', canonical: 'block1_pool', dtype: 'float16', pool: 'none', layout: 'chw', ids: '4', idsFile: 'acts.ids.txt' });
    expect(file.tensors.map((t) => [t.name, t.dtype, t.shape])).toEqual([['features.4', 'F16', [4, 2, 2, 3]]]);
    expect(file.tensors[0]!.data).toEqual(float32ToFloat16Bits(Float32Array.from([0, 1, 2, 3].flatMap((i) => [...values(i)]))));
    expect(result.dtype).toBe('float16');

    // float32 on request, and pooled (C,H,W) -> (C,).
    const pooled = await exportLayer(reader, f16, { layer: 'features.4', to: path.join(dir, 'pooled.npy'), pool: 'max', dtype: 'float32' });
    expect(pooled.shape).toEqual([4, 2]);
    const npy = decodeNpy(await readFile(pooled.path));
    const max = (i: number, c: number) => Math.max(...float16BitsToFloat32(float32ToFloat16Bits(values(i))).subarray(c * 6, c * 6 + 6));
    expect(Array.from(npy.data)).toEqual([0, 1, 2, 3].flatMap((i) => [max(i, 0), max(i, 1)]));
  });

  it('refuses an unknown layer listing the layers, and leaves no file behind when an output is gone', async () => {
    await writer.put(sampleKey('ds', 'features.4', 's0'), encodeNpy(values(0), [2, 2, 3], 'float32'));
    await writer.put(manifestKey('ds'), jsonl([ok('s0', 'ds/features.4/s0.npy'), ok('s1', 'ds/features.4/s1.npy')]));
    const to = path.join(dir, 'acts.npy');
    await expect(exportLayer(reader, info(), { layer: 'fc1', to })).rejects.toMatchObject({
      code: ErrorCode.UnknownLayer,
      message: 'dataset ds has no layer "fc1"; it has features.4 (block1_pool), fc2',
    });
    await expect(exportLayer(reader, info(), { layer: 'features.4', to })).rejects.toThrow(/out\/ds\/features\.4\/s1\.npy is gone/);
    expect(await readdir(dir)).toEqual(['out']);
  });
});
