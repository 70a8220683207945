import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { S3Client } from '@aws-sdk/client-s3';
import { S3Server } from '@layertap/devservices';
import { DatasetConfig, ErrorCode, ValidationError, type ManifestLine } from '@layertap/contracts';
import {
  datasetKey,
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
  type OutputWriter,
} from '@layertap/storage';
import { DatasetReader } from './dataset-reader';
import { datasetDocument } from './finalize-dataset';

const line = (id: string, status: 'ok' | 'failed', code = 'decode_failed'): ManifestLine => ({
  id,
  uri: `file:///img/${id}.jpg`,
  status,
  ...(status === 'failed' ? { error: { code, message: 'no' } } : {}),
  outputs: status === 'ok' ? { fc2: `ds/fc2/${id}.npy` } : {},
  shape: status === 'ok' ? { fc2: [4] } : {},
  dtype: 'float32',
});
const jsonl = (lines: ManifestLine[]) => lines.map((l) => `${JSON.stringify(l)}\n`).join('');

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}

/** A real writer whose streamed reads count the bytes they hand out and whether they were released. */
function counting(inner: OutputWriter) {
  const stats = { bytes: 0, streams: [] as Readable[] };
  const store: OutputWriter = Object.create(inner) as OutputWriter;
  store.read = async (key) => {
    const stream = await inner.read(key);
    if (stream) {
      stats.streams.push(stream);
      stream.on('data', (chunk: Buffer) => (stats.bytes += chunk.length));
    }
    return stream;
  };
  return { store, stats };
}

describe('DatasetReader (a real file:// output)', () => {
  let dir: string;
  let root: string;
  let writer: OutputWriter;
  let reader: DatasetReader;

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'lt-dataset-reader-'));
    root = pathToFileURL(dir).href;
    writer = openOutput(root);
    reader = new DatasetReader({ output: root, datasetId: 'ds' });
  });
  afterEach(async () => {
    await reader.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('reads a .npy output as stored, as float32 and as .npy bytes; float16 ones converted', async () => {
    const values = Float32Array.from({ length: 2 * 2 * 3 }, (_, i) => i / 4 - 1);
    const halves = float32ToFloat16Bits(values);
    await writer.put(sampleKey('ds', 'features.4', 'a'), encodeNpy(values, [2, 2, 3], 'float32'));
    await writer.put(sampleKey('ds', 'features.4', 'b'), encodeNpy(halves, [2, 2, 3], 'float16'));
    expect(await reader.array('ds/features.4/a.npy')).toEqual({ dtype: 'float32', shape: [2, 2, 3], data: values });
    expect(await reader.array('ds/features.4/b.npy')).toEqual({ dtype: 'float16', shape: [2, 2, 3], data: halves });
    expect(await reader.activation('ds/features.4/a.npy')).toEqual({ data: values, shape: [2, 2, 3] });
    // Quarters are exact in float16.
    expect(await reader.activation('ds/features.4/b.npy')).toEqual({ data: values, shape: [2, 2, 3] });
    expect((await reader.npy('ds/features.4/a.npy'))?.equals(encodeNpy(values, [2, 2, 3], 'float32'))).toBe(true);
    expect(await reader.activation('ds/features.4/gone.npy')).toBeUndefined();
    expect(await reader.npy('ds/features.4/gone.npy')).toBeUndefined();
  });

  it('reads tensors out of a safetensors shard (F32 and F16), one or several at a time, and re-encodes one as .npy', async () => {
    const a = Float32Array.from([1, 2, 3, 4]);
    const b = float32ToFloat16Bits(Float32Array.from([5, 6, 7, 8]));
    const key = shardKey('ds', 0, 3);
    await writer.put(
      key,
      encodeSafetensors([
        { name: shardTensorName('a', 'fc2'), dtype: 'F32', shape: [4], data: a },
        { name: shardTensorName('b', 'fc2'), dtype: 'F16', shape: [4], data: b },
        { name: shardTensorName('b', 'fc1'), dtype: 'F16', shape: [2], data: b.subarray(0, 2) },
      ]),
    );
    expect(await reader.array(shardOutputRef(key, 'b/fc2'))).toEqual({ dtype: 'float16', shape: [4], data: b });
    expect(await reader.activation(shardOutputRef(key, 'b/fc2'))).toEqual({ data: Float32Array.from([5, 6, 7, 8]), shape: [4] });
    expect(decodeNpy((await reader.npy(shardOutputRef(key, 'a/fc2')))!)).toEqual({ dtype: 'float32', shape: [4], data: a });
    expect(await reader.activation(shardOutputRef(key, 'c/fc2'))).toBeUndefined();
    // A shard is read once for the tensors asked for; the others are not copied out.
    const some = await reader.shard(key, ['a/fc2', 'b/fc2']);
    expect([...some!.keys()]).toEqual(['a/fc2', 'b/fc2']);
    expect([...(await reader.shard(key))!.keys()]).toEqual(['a/fc2', 'b/fc2', 'b/fc1']);
    expect(await reader.shard(shardKey('ds', 0, 4))).toBeUndefined();
  });

  it('reads the chunk parts before the manifest exists (a retry run replacing lines in place), then the manifest', async () => {
    expect(await reader.manifest()).toBeUndefined();
    expect(await collect(reader.lines())).toEqual([]);
    // One run: streamed part by part, in chunk order.
    await writer.put(partKey('ds', 0, 1), jsonl([line('c', 'ok')]));
    await writer.put(partKey('ds', 0, 0), jsonl([line('a', 'failed'), line('b', 'ok')]));
    expect((await collect(reader.lines())).map((l) => [l.id, l.status])).toEqual([
      ['a', 'failed'],
      ['b', 'ok'],
      ['c', 'ok'],
    ]);
    // A later run wins, and its line keeps the sample's place.
    await writer.put(partKey('ds', 1, 0), jsonl([line('a', 'ok')]));
    expect((await reader.manifest())?.map((l) => [l.id, l.status])).toEqual([
      ['a', 'ok'],
      ['b', 'ok'],
      ['c', 'ok'],
    ]);
    // Once written, manifest.jsonl is what counts.
    await writer.put(manifestKey('ds'), jsonl([line('a', 'failed'), line('c', 'ok')]));
    expect((await reader.manifest())?.map((l) => [l.id, l.status])).toEqual([
      ['a', 'failed'],
      ['c', 'ok'],
    ]);
  });

  it('lists failed and cancelled samples in manifest order, and refuses a dataset with no manifest yet', async () => {
    const err = await reader.failedSamples().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ValidationError);
    expect(err).toMatchObject({ code: ErrorCode.InvalidRequest, message: 'dataset ds has no manifest yet: wait for it to finish' });
    await writer.put(manifestKey('ds'), jsonl([line('a', 'ok'), line('b', 'failed', 'cancelled'), line('c', 'ok'), line('d', 'failed')]));
    expect(await reader.failedSamples()).toEqual([
      { id: 'b', uri: 'file:///img/b.jpg' },
      { id: 'd', uri: 'file:///img/d.jpg' },
    ]);
  });

  it('streams a large manifest: stopping early reads a little of it, and lines split across chunks (UTF-8 too) parse whole', async () => {
    const many = Array.from({ length: 60_000 }, (_, i) => ({ ...line(`s${i}`, i % 7 === 0 ? 'failed' : 'ok'), uri: `file:///img/caf\u00e9-\u{1F600}-${i}.jpg` }));
    const body = jsonl(many);
    await writer.put(manifestKey('ds'), body);
    const { store, stats } = counting(writer);
    const streamed = new DatasetReader({ output: root, datasetId: 'ds', store });

    const first: string[] = [];
    for await (const l of streamed.lines()) {
      first.push(l.id);
      if (first.length === 3) break;
    }
    expect(first).toEqual(['s0', 's1', 's2']);
    expect(Buffer.byteLength(body)).toBeGreaterThan(8_000_000);
    expect(stats.bytes).toBeLessThan(1_000_000);
    // Leaving the loop released the file.
    expect(stats.streams[0]!.destroyed).toBe(true);

    let count = 0;
    let failed = 0;
    for await (const l of streamed.lines()) {
      expect(l.uri).toBe(many[count]!.uri);
      count++;
      if (l.status === 'failed') failed++;
    }
    expect(count).toBe(60_000);
    expect(failed).toBe(Math.ceil(60_000 / 7));
    expect(stats.bytes).toBeGreaterThan(Buffer.byteLength(body));
  });

  it('says which line of the manifest is broken', async () => {
    await writer.put(manifestKey('ds'), `${JSON.stringify(line('a', 'ok'))}\n\n{"id": "b"\n`);
    await expect(collect(reader.lines())).rejects.toThrow('ds/manifest.jsonl:3 is not JSON');
  });

  it("opens a dataset from its folder's URI and reads dataset.json as the finalizer writes it", async () => {
    const config = DatasetConfig.parse({
      datasetId: 'ds',
      output: root,
      layers: [
        { spec: 'features.9', canonical: 'block2_pool', shape: [16, 16, 128] },
        { spec: 'fc2', canonical: 'fc2', shape: [4096] },
      ],
      seed: 0,
      preprocess: 'caffe',
      imageSize: 64,
      batchSize: 4,
      chunkSize: 8,
      dtype: 'float16',
      layout: 'hwc',
      format: 'shards',
      totalSamples: 2,
      submittedAt: '2025-01-01T00:00:00.000Z',
      run: 0,
    });
    const byUri = DatasetReader.fromUri(`${root}/ds`);
    expect({ output: byUri.output, datasetId: byUri.datasetId, uri: byUri.uri }).toEqual({ output: root, datasetId: 'ds', uri: `${root}/ds` });
    expect(await byUri.info()).toBeUndefined();
    const doc = datasetDocument(config, [config], [], { ok: 2, failed: 0, failures: {} }, '0.1.0');
    await writer.put(datasetKey('ds'), JSON.stringify(doc, null, 2));
    expect(await byUri.info()).toEqual({
      datasetId: 'ds',
      preprocess: 'caffe',
      imageSize: 64,
      dtype: 'float16',
      layout: 'hwc',
      pool: 'none',
      format: 'shards',
      layers: [
        { spec: 'features.9', canonical: 'block2_pool', shape: [16, 16, 128] },
        { spec: 'fc2', canonical: 'fc2', shape: [4096] },
      ],
    });
    expect((await byUri.dataset())?.counts).toEqual({ total: 2, ok: 2, failed: 0, failures: {} });

    await writer.put(datasetKey('ds'), JSON.stringify({ ...doc, layout: 'nchw' }));
    await expect(byUri.dataset()).rejects.toThrow(`${root}/ds/dataset.json is not a layertap dataset.json: layout: `);
    await byUri.close();
  });
});

describe('DatasetReader (a real S3 server)', () => {
  const server = new S3Server({ buckets: ['reader-test'] });
  let s3: S3Client;

  beforeAll(async () => {
    await server.start();
    s3 = server.createClient();
  });
  afterAll(async () => {
    s3?.destroy();
    await server.close();
  });

  it('opens s3://bucket/prefix/<dataset>, streams its manifest and reads npy and shard arrays', async () => {
    const writer = openOutput('s3://reader-test/acts', { s3 });
    const values = Float32Array.from([0.5, -1, 2, 8]);
    const key = shardKey('cats', 0, 0);
    await writer.put(sampleKey('cats', 'fc2', 'a'), encodeNpy(values, [4], 'float32'));
    await writer.put(key, encodeSafetensors([{ name: shardTensorName('b', 'fc2'), dtype: 'F32', shape: [4], data: values }]));
    const lines = Array.from({ length: 5_000 }, (_, i) => ({ ...line(`s${i}`, 'ok'), outputs: { fc2: i % 2 ? 'cats/fc2/a.npy' : shardOutputRef(key, 'b/fc2') } }));
    await writer.put(manifestKey('cats'), jsonl(lines));

    const reader = DatasetReader.fromUri('s3://reader-test/acts/cats', { s3 });
    expect({ output: reader.output, datasetId: reader.datasetId, uri: reader.uri }).toEqual({ output: 's3://reader-test/acts', datasetId: 'cats', uri: 's3://reader-test/acts/cats' });
    expect((await collect(reader.lines())).map((l) => l.id)).toEqual(lines.map((l) => l.id));
    expect(await reader.activation('cats/fc2/a.npy')).toEqual({ data: values, shape: [4] });
    expect(await reader.activation(shardOutputRef(key, 'b/fc2'))).toEqual({ data: values, shape: [4] });
    expect(await reader.array('cats/fc2/gone.npy')).toBeUndefined();
    expect(await reader.info()).toBeUndefined();
    await reader.close();
    await writer.close();
    // The client was the caller's: still usable.
    expect(await openOutput('s3://reader-test/acts', { s3 }).exists(manifestKey('cats'))).toBe(true);
  });
});
