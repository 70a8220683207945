import type { ChunkResult, ManifestLine } from '@layertap/contracts';
import { bucketThroughput, DatasetStore } from './dataset-store';
import { deletePrefix, datasetConfig, startRedis, stopRedis, uniquePrefix } from './testing';

const ok = (id: string, layer = 'features.9'): ManifestLine => ({
  id,
  uri: `s3://b/img/${id}.jpg`,
  status: 'ok',
  outputs: { [layer]: `ds/${layer}/${id}.npy` },
  shape: { [layer]: [128, 8, 8] },
  dtype: 'float32',
});
const failed = (id: string, code: string, message = `${code} for ${id}`): ManifestLine => ({
  id,
  uri: `s3://b/img/${id}.jpg`,
  status: 'failed',
  error: { code, message },
  outputs: {},
  shape: {},
  dtype: 'float32',
});
function result(run: number, chunk: number, lines: ManifestLine[]): ChunkResult {
  const failures: Record<string, number> = {};
  for (const l of lines) if (l.error) failures[l.error.code] = (failures[l.error.code] ?? 0) + 1;
  const nOk = lines.filter((l) => l.status === 'ok').length;
  return {
    chunk, run, ok: nOk, failed: lines.length - nOk, failures,
    backend: 'wasm', weights: { description: 'random, seed 0' }, startedAt: new Date().toISOString(), durationMs: 10,
  };
}

describe('DatasetStore sample index (real redis-server)', () => {
  let env: Awaited<ReturnType<typeof startRedis>> | undefined;
  let prefix: string;
  let store: DatasetStore;

  beforeAll(async () => {
    env = await startRedis();
  });
  afterAll(async () => {
    await stopRedis(env);
  });
  beforeEach(() => {
    prefix = uniquePrefix('index');
    store = new DatasetStore(env!.redis, prefix, { examplesPerReason: 4 });
  });
  afterEach(async () => {
    await deletePrefix(env!.redis, prefix);
  });

  it('records a finished chunk: counts, every sample by id and URI, failure examples, a throughput point', async () => {
    await store.saveRun(datasetConfig('ds', { totalSamples: 3 }));
    const lines = [ok('a'), failed('b', 'decode_failed', 'x'.repeat(2000)), ok('c')];
    const before = Date.now();
    await store.recordChunk('ds', result(0, 4, lines), lines);

    expect(await store.progress('ds')).toMatchObject({ ok: 2, failed: 1, pending: 0, failures: { decode_failed: 1 } });
    expect(await store.findSample('ds', 'a')).toEqual({
      datasetId: 'ds', id: 'a', status: 'ok', chunk: 4, run: 0, uri: 's3://b/img/a.jpg', outputs: { 'features.9': 'ds/features.9/a.npy' },
    });
    const b = await store.findSample('ds', 's3://b/img/b.jpg');
    expect(b).toMatchObject({ datasetId: 'ds', id: 'b', status: 'failed', code: 'decode_failed', chunk: 4, run: 0 });
    expect(b?.message).toHaveLength(500);
    expect(b?.outputs).toBeUndefined();
    expect(await store.findSample('ds', 'nope')).toBeUndefined();
    expect(await store.findSample('other', 'a')).toBeUndefined();

    const points = await store.throughput('ds');
    expect(points).toHaveLength(1);
    expect(points[0]).toMatchObject({ ok: 2, failed: 1, run: 0, chunk: 4 });
    expect(points[0]!.t).toBeGreaterThanOrEqual(before);

    // Everything lives under <prefix>:ds:ds: (one hash tag on a cluster).
    const keys = (await env!.redis.keys(`${prefix}:*`)).sort();
    expect(keys).toEqual(
      ['datasets', 'ds:ds:chunks', 'ds:ds:failcodes', 'ds:ds:failex:decode_failed', 'ds:ds:runs', 'ds:ds:samples', 'ds:ds:throughput', 'ds:ds:times', 'ds:ds:uris'].map(
        (k) => `${prefix}:${k}`,
      ),
    );
  });

  it('keeps the latest line of a sample: a retried chunk or a later run overwrites it', async () => {
    await store.saveRun(datasetConfig('ds', { totalSamples: 2 }));
    const first = [failed('a', 'timeout'), ok('b')];
    await store.recordChunk('ds', result(0, 0, first), first);
    expect((await store.findSample('ds', 'a'))?.status).toBe('failed');
    const retried = [ok('a')];
    await store.recordChunk('ds', result(1, 0, retried), retried);
    expect(await store.findSample('ds', 'a')).toMatchObject({ status: 'ok', run: 1, chunk: 0 });
    // The fixed sample is no longer an example of its old failure.
    expect(await store.failureExamples('ds')).toEqual({});
  });

  it('keeps a few examples per reason, newest first, once per sample', async () => {
    await store.saveRun(datasetConfig('ds', { totalSamples: 20 }));
    const chunk0 = [failed('n0', 'not_found'), failed('d0', 'decode_failed'), failed('d1', 'decode_failed'), ok('k0')];
    const chunk1 = Array.from({ length: 6 }, (_, i) => failed(`d${i + 2}`, 'decode_failed'));
    await store.recordChunk('ds', result(0, 0, chunk0), chunk0);
    await store.recordChunk('ds', result(0, 1, chunk1), chunk1);
    // Chunk 0 again (a retry of the same chunk): its examples are not listed twice.
    await store.recordChunk('ds', result(0, 0, chunk0), chunk0);

    const examples = await store.failureExamples('ds', 3);
    expect(Object.keys(examples)).toEqual(['decode_failed', 'not_found']);
    expect(examples.decode_failed!.map((e) => e.id)).toEqual(['d1', 'd0', 'd5']);
    expect(examples.not_found).toEqual([{ id: 'n0', uri: 's3://b/img/n0.jpg', message: 'not_found for n0', chunk: 0, run: 0, at: expect.any(Number) }]);
    // At most examplesPerReason (4) are kept in Redis.
    expect(await env!.redis.llen(`${prefix}:ds:ds:failex:decode_failed`)).toBe(4);
  });

  it('indexes the samples of a chunk that failed for good without a throughput point', async () => {
    await store.indexSamples('ds', [failed('x', 'chunk_failed')], 0, 7);
    expect(await store.findSample('ds', 'x')).toMatchObject({ status: 'failed', code: 'chunk_failed', chunk: 7 });
    expect(await store.throughput('ds')).toEqual([]);
    expect((await store.failureExamples('ds')).chunk_failed?.map((e) => e.id)).toEqual(['x']);
  });

  it('finds a sample by id or URI in every dataset, newest dataset first, up to a limit', async () => {
    for (const [id, at] of [['old', '2025-01-01'], ['mid', '2025-02-01'], ['new', '2025-03-01'], ['none', '2025-04-01']] as const) {
      await store.saveRun(datasetConfig(id, { submittedAt: `${at}T00:00:00Z` }));
    }
    await store.recordChunk('old', result(0, 0, [ok('cat')]), [ok('cat')]);
    await store.recordChunk('new', result(0, 2, [failed('cat', 'timeout')]), [failed('cat', 'timeout')]);
    // In `mid` the same image has another id: found by URI.
    const renamed = { ...ok('cat-2'), uri: 's3://b/img/cat.jpg' };
    await store.recordChunk('mid', result(0, 1, [renamed]), [renamed]);

    const byId = await store.findSampleAnywhere('cat');
    expect(byId.map((f) => [f.datasetId, f.id, f.status])).toEqual([['new', 'cat', 'failed'], ['old', 'cat', 'ok']]);
    const byUri = await store.findSampleAnywhere('s3://b/img/cat.jpg');
    expect(byUri.map((f) => [f.datasetId, f.id])).toEqual([['new', 'cat'], ['mid', 'cat-2'], ['old', 'cat']]);
    expect((await store.findSampleAnywhere('s3://b/img/cat.jpg', 1)).map((f) => f.datasetId)).toEqual(['new']);
    expect(await store.findSampleAnywhere('dog')).toEqual([]);
  });

  it('keeps URIs without credentials, and finds a sample by the URI it was submitted with', async () => {
    await store.saveRun(datasetConfig('signed', { totalSamples: 2 }));
    const submitted = 'https://u:pw@img.example.com/a.jpg?w=1&X-Amz-Signature=abc';
    const shown = 'https://img.example.com/a.jpg?w=1&X-Amz-Signature=***';
    // The worker's lines already carry the stored form; the index applies it again (it is idempotent).
    const lines = [{ ...ok('a'), uri: submitted }, { ...failed('b', 'not_found'), uri: 'https://u:pw@img.example.com/b.jpg?sig=zz' }];
    await store.recordChunk('signed', result(0, 0, lines), lines);
    for (const q of [submitted, shown]) expect(await store.findSample('signed', q)).toMatchObject({ id: 'a', uri: shown });
    expect(await store.findSampleAnywhere(submitted)).toEqual([expect.objectContaining({ datasetId: 'signed', id: 'a', uri: shown })]);
    expect((await store.failureExamples('signed')).not_found).toEqual([expect.objectContaining({ id: 'b', uri: 'https://img.example.com/b.jpg?sig=***' })]);
    const stored = JSON.stringify([await env!.redis.hgetall(`${prefix}:ds:signed:samples`), await env!.redis.hgetall(`${prefix}:ds:signed:uris`), await env!.redis.lrange(`${prefix}:ds:signed:failex:not_found`, 0, -1)]);
    expect(stored).not.toMatch(/pw|abc|zz/);
  });

  it('caps the throughput series at the newest points and filters by time', async () => {
    const small = new DatasetStore(env!.redis, prefix, { throughputPoints: 3 });
    for (let chunk = 0; chunk < 5; chunk++) {
      const lines = [ok(`s${chunk}`)];
      await small.recordChunk('ds', result(0, chunk, lines), lines);
      await new Promise((r) => setTimeout(r, 3));
    }
    const points = await small.throughput('ds');
    expect(points.map((p) => p.chunk)).toEqual([2, 3, 4]);
    expect(points.every((p, i) => i === 0 || p.t >= points[i - 1]!.t)).toBe(true);
    expect((await small.throughput('ds', { sinceMs: points[2]!.t })).map((p) => p.chunk)).toEqual([4]);
  });
});

describe('bucketThroughput', () => {
  it('sums points per bucket and gives the rate per second', () => {
    const p = (t: number, ok: number, failed = 0) => ({ t, ok, failed, run: 0, chunk: 0 });
    expect(bucketThroughput([p(10_500, 4, 1), p(10_900, 5), p(13_000, 2), p(10_100, 1)], 1000)).toEqual([
      { t: 10_000, ok: 10, failed: 1, perSecond: 11 },
      { t: 13_000, ok: 2, failed: 0, perSecond: 2 },
    ]);
    expect(() => bucketThroughput([], 0)).toThrow(/positive/);
  });
});
