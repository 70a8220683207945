import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { S3Client } from '@aws-sdk/client-s3';
import {
  decodeNpy,
  encodeNpy,
  encodeSafetensors,
  float32ToFloat16Bits,
  manifestKey,
  openOutput,
  partKey,
  sampleKey,
  shardKey,
  shardOutputRef,
  shardTensorName,
} from '@layertap/storage';
import { OutputReaders } from './dataset-reader';

describe('OutputReaders (a real file:// output)', () => {
  let dir: string;
  let root: string;
  let readers: OutputReaders;
  const s3 = new S3Client({ region: 'us-east-1' });

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'lt-dash-outputs-'));
    root = pathToFileURL(dir).href;
    readers = new OutputReaders({ s3 });
  });
  afterEach(async () => {
    await readers.close();
    await rm(dir, { recursive: true, force: true });
  });
  afterAll(() => s3.destroy());

  const line = (id: string, status: 'ok' | 'failed') =>
    JSON.stringify({ id, uri: `file:///img/${id}.jpg`, status, ...(status === 'failed' ? { error: { code: 'decode_failed', message: 'no' } } : {}), outputs: {}, shape: {}, dtype: 'float32' });

  it('reads a .npy output as float32, and float16 ones converted', async () => {
    const writer = openOutput(root);
    const values = Float32Array.from({ length: 2 * 2 * 3 }, (_, i) => i / 4 - 1);
    await writer.put(sampleKey('ds', 'features.4', 'a'), encodeNpy(values, [2, 2, 3], 'float32'));
    await writer.put(sampleKey('ds', 'features.4', 'b'), encodeNpy(float32ToFloat16Bits(values), [2, 2, 3], 'float16'));
    expect(await readers.activation(root, 'ds/features.4/a.npy')).toEqual({ data: values, shape: [2, 2, 3] });
    // Quarters are exact in float16.
    expect(await readers.activation(root, 'ds/features.4/b.npy')).toEqual({ data: values, shape: [2, 2, 3] });
    expect((await readers.npy(root, 'ds/features.4/a.npy'))?.equals(encodeNpy(values, [2, 2, 3], 'float32'))).toBe(true);
    expect(await readers.activation(root, 'ds/features.4/gone.npy')).toBeUndefined();
  });

  it('reads one tensor out of a safetensors shard, and re-encodes it as .npy', async () => {
    const a = Float32Array.from([1, 2, 3, 4]);
    const b = Float32Array.from([5, 6, 7, 8]);
    const key = shardKey('ds', 0, 3);
    await openOutput(root).put(
      key,
      encodeSafetensors([
        { name: shardTensorName('a', 'fc2'), dtype: 'F32', shape: [4], data: a },
        { name: shardTensorName('b', 'fc2'), dtype: 'F32', shape: [4], data: b },
      ]),
    );
    expect(await readers.activation(root, shardOutputRef(key, shardTensorName('b', 'fc2')))).toEqual({ data: b, shape: [4] });
    const npy = decodeNpy((await readers.npy(root, shardOutputRef(key, shardTensorName('a', 'fc2'))))!);
    expect(npy).toEqual({ dtype: 'float32', shape: [4], data: a });
    expect(await readers.activation(root, shardOutputRef(key, 'c/fc2'))).toBeUndefined();
  });

  it('reads the manifest once finished, the merged parts while running, nothing before either', async () => {
    const writer = openOutput(root);
    expect(await readers.manifest(root, 'ds', false)).toBeUndefined();
    await writer.put(partKey('ds', 0, 0), `${line('a', 'failed')}\n${line('b', 'ok')}\n`);
    await writer.put(partKey('ds', 1, 0), `${line('a', 'ok')}\n`);
    // Parts merge as the finalizer merges them: the later run wins.
    expect((await readers.manifest(root, 'ds', false))?.map((l) => [l.id, l.status])).toEqual([
      ['a', 'ok'],
      ['b', 'ok'],
    ]);
    await writer.put(manifestKey('ds'), `${line('a', 'failed')}\n`);
    expect((await readers.manifest(root, 'ds', true))?.map((l) => [l.id, l.status])).toEqual([['a', 'failed']]);
  });
});
