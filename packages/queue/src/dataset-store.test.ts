import { DatasetStore } from './dataset-store';
import { deletePrefix, datasetConfig, startRedis, stopRedis, uniquePrefix } from './testing';

describe('DatasetStore (real redis-server)', () => {
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
    prefix = uniquePrefix('store');
    store = new DatasetStore(env!.redis, prefix);
  });
  afterEach(async () => {
    await deletePrefix(env!.redis, prefix);
  });

  const result = (ok: number, failed: number, failures: Record<string, number>) => ({
    datasetId: 'ds',
    model: 'vgg16',
    ok,
    failed,
    failures,
    manifestKey: 'ds/manifest.jsonl',
  });

  it('knows nothing about a dataset never submitted', async () => {
    expect(await store.progress('ghost')).toBeUndefined();
    expect(await store.runs('ghost')).toEqual([]);
    expect(await store.latestRun('ghost')).toBeUndefined();
  });

  it('keeps its keys under <prefix>:ds:<id>: and the index under <prefix>:datasets', async () => {
    await store.saveRun(datasetConfig('ds'));
    await store.setChunkProgress('ds', { run: 0, chunk: 0, ok: 1, failed: 0, failures: {}, final: false });
    const keys = (await env!.redis.keys(`${prefix}:*`)).sort();
    expect(keys).toEqual([`${prefix}:datasets`, `${prefix}:ds:ds:chunks`, `${prefix}:ds:ds:runs`, `${prefix}:ds:ds:times`]);
  });

  it('lists datasets newest first by submission time', async () => {
    await store.saveRun(datasetConfig('middle', { submittedAt: '2025-02-01T00:00:00Z' }));
    await store.saveRun(datasetConfig('newest', { submittedAt: '2025-03-01T00:00:00Z' }));
    await store.saveRun(datasetConfig('oldest', { submittedAt: '2025-01-01T00:00:00Z' }));
    expect(await store.list()).toEqual(['newest', 'middle', 'oldest']);
    expect(await store.list(2)).toEqual(['newest', 'middle']);
  });

  it('returns runs oldest first whatever order they were saved in', async () => {
    await store.saveRun(datasetConfig('ds', { run: 2, totalSamples: 1 }));
    await store.saveRun(datasetConfig('ds', { run: 0, totalSamples: 10 }));
    await store.saveRun(datasetConfig('ds', { run: 1, totalSamples: 3 }));
    expect((await store.runs('ds')).map((r) => [r.run, r.totalSamples])).toEqual([[0, 10], [1, 3], [2, 1]]);
    expect((await store.latestRun('ds'))?.run).toBe(2);
  });

  it('sums the chunk reports of run 0 while it runs; a chunk report replaces its earlier one', async () => {
    await store.saveRun(datasetConfig('ds', { totalSamples: 10 }));
    const before = Date.now();
    await store.setChunkProgress('ds', { run: 0, chunk: 0, ok: 1, failed: 1, failures: { decode_failed: 1 }, final: false });
    await store.setChunkProgress('ds', { run: 0, chunk: 1, ok: 2, failed: 1, failures: { not_found: 1 }, final: false });
    let p = await store.progress('ds');
    expect(p).toMatchObject({ total: 10, run: 0, ok: 3, failed: 2, pending: 5, failures: { decode_failed: 1, not_found: 1 }, finished: false });
    expect(p?.startedAt).toBeGreaterThanOrEqual(before);
    expect(p?.updatedAt).toBeGreaterThanOrEqual(p?.startedAt ?? Infinity);

    // Chunk 0 retried from scratch and finished: its new counts replace the old ones.
    await store.setChunkResult('ds', {
      chunk: 0, run: 0, ok: 3, failed: 1, failures: { decode_failed: 1 },
      backend: 'cpu', weights: { description: 'random, seed 0' }, startedAt: new Date().toISOString(), durationMs: 5,
    });
    p = await store.progress('ds');
    expect(p).toMatchObject({ ok: 5, failed: 2, pending: 3, failures: { decode_failed: 1, not_found: 1 }, finished: false });
    const chunks = (await store.chunkProgress('ds')).sort((a, b) => a.chunk - b.chunk);
    expect(chunks.map((c) => [c.chunk, c.ok, c.failed, c.final])).toEqual([[0, 3, 1, true], [1, 2, 1, false]]);
  });

  it('keeps the start time of a run at its first report', async () => {
    await store.saveRun(datasetConfig('ds'));
    await store.setChunkProgress('ds', { run: 0, chunk: 0, ok: 1, failed: 0, failures: {}, final: false });
    const first = (await store.progress('ds'))?.startedAt;
    await new Promise((r) => setTimeout(r, 15));
    await store.setChunkProgress('ds', { run: 0, chunk: 1, ok: 1, failed: 0, failures: {}, final: false });
    const p = await store.progress('ds');
    expect(p?.startedAt).toBe(first);
    expect(p?.updatedAt).toBeGreaterThan(first ?? Infinity);
  });

  it('has no start or update time before the first report', async () => {
    await store.saveRun(datasetConfig('ds', { totalSamples: 4 }));
    const p = await store.progress('ds');
    expect(p).toEqual({ total: 4, run: 0, ok: 0, failed: 0, pending: 4, failures: {}, finished: false });
  });

  it('takes a finished run from its result, whatever the chunk reports say', async () => {
    await store.saveRun(datasetConfig('ds', { totalSamples: 10 }));
    await store.setChunkProgress('ds', { run: 0, chunk: 0, ok: 2, failed: 0, failures: {}, final: true });
    await store.setResult('ds', 0, result(8, 2, { decode_failed: 1, cancelled: 1 }));
    expect(await store.progress('ds')).toMatchObject({
      total: 10, run: 0, ok: 8, failed: 2, pending: 0, failures: { decode_failed: 1, cancelled: 1 }, finished: true,
    });
    const results = await store.results('ds');
    expect(results.get(0)).toMatchObject(result(8, 2, { decode_failed: 1, cancelled: 1 }));
    expect(typeof results.get(0)?.finishedAt).toBe('number');
    expect((await store.progress('ds'))?.finishedAt).toBe(results.get(0)?.finishedAt);
  });

  it('counts the samples of a retry run as pending, not failed, until they are processed', async () => {
    await store.saveRun(datasetConfig('ds', { totalSamples: 10, chunkSize: 2 }));
    await store.setChunkProgress('ds', { run: 0, chunk: 0, ok: 2, failed: 0, failures: {}, final: true });
    await store.setResult('ds', 0, result(7, 3, { decode_failed: 2, timeout: 1 }));

    // Retry the 3 failed samples as run 1.
    await store.saveRun(datasetConfig('ds', { totalSamples: 3, chunkSize: 2, run: 1 }));
    let p = await store.progress('ds');
    expect(p).toMatchObject({ total: 10, run: 1, ok: 7, failed: 0, pending: 3, failures: {}, finished: false });
    expect(p?.startedAt).toBeUndefined();

    // One chunk of the retry: one fixed, one still failing (this run's failures only).
    await store.setChunkProgress('ds', { run: 1, chunk: 0, ok: 1, failed: 1, failures: { decode_failed: 1 }, final: true });
    p = await store.progress('ds');
    expect(p).toMatchObject({ total: 10, run: 1, ok: 8, failed: 1, pending: 1, failures: { decode_failed: 1 }, finished: false });
    expect(p!.ok + p!.failed + p!.pending).toBe(p!.total);

    await store.setResult('ds', 1, result(9, 1, { decode_failed: 1 }));
    expect(await store.progress('ds')).toMatchObject({ total: 10, run: 1, ok: 9, failed: 1, pending: 0, finished: true });
  });

  it('keeps untouched failures of earlier runs when a retry covers only some of them', async () => {
    await store.saveRun(datasetConfig('ds', { totalSamples: 10 }));
    await store.setResult('ds', 0, result(6, 4, { timeout: 4 }));
    await store.saveRun(datasetConfig('ds', { totalSamples: 3, run: 1 }));
    const p = await store.progress('ds');
    expect(p).toMatchObject({ total: 10, ok: 6, failed: 1, pending: 3 });
  });

  it('sets, reports and clears the cancel flag (a new run clears it)', async () => {
    await store.saveRun(datasetConfig('ds'));
    expect(await store.isCancelled('ds')).toBe(false);
    await store.cancel('ds');
    expect(await store.isCancelled('ds')).toBe(true);
    expect(await store.isCancelled('other')).toBe(false);
    await store.saveRun(datasetConfig('ds', { run: 1, totalSamples: 2 }));
    expect(await store.isCancelled('ds')).toBe(false);
  });

  it('counts the whole dataset while a resumed run goes on, and exactly once it is finished', async () => {
    // Run 1 resumes after Redis lost run 0: 3 samples were stored ok, 4 run now.
    await store.saveRun(datasetConfig('ds', { run: 1, totalSamples: 4, earlier: { ok: 3, failed: 0, failures: {} } }));
    expect(await store.progress('ds')).toMatchObject({ total: 7, ok: 3, failed: 0, pending: 4, finished: false });
    await store.setChunkProgress('ds', { run: 1, chunk: 0, ok: 2, failed: 1, failures: { decode_failed: 1 }, final: true });
    expect(await store.progress('ds')).toMatchObject({ total: 7, ok: 5, failed: 1, pending: 1, failures: { decode_failed: 1 } });
    await store.setResult('ds', 1, result(6, 1, { decode_failed: 1 }));
    expect(await store.progress('ds')).toMatchObject({ total: 7, ok: 6, failed: 1, pending: 0, finished: true });
  });

  it('finish starts the retention of every key; a new run lifts it', async () => {
    await store.saveRun(datasetConfig('ds', { retentionSeconds: 100 }));
    await store.recordChunk('ds', { chunk: 0, run: 0, ok: 0, failed: 1, failures: { not_found: 1 }, backend: 'cpu', weights: { description: 'random' }, startedAt: '', durationMs: 1 }, [
      { id: 'a', uri: 'file:///a.jpg', status: 'failed', error: { code: 'not_found', message: 'gone' }, outputs: {}, shape: {}, dtype: 'float32' },
    ]);
    await store.finish({ datasetId: 'ds', run: 0, retentionSeconds: 100 }, result(0, 1, { not_found: 1 }));
    for (const part of ['runs', 'chunks', 'results', 'samples', 'uris', 'failcodes', 'failex:not_found', 'throughput']) {
      const ttl = await env!.redis.ttl(`${prefix}:ds:ds:${part}`);
      expect([part, ttl > 90 && ttl <= 100]).toEqual([part, true]);
    }
    await store.saveRun(datasetConfig('ds', { run: 1, retentionSeconds: 100 }));
    expect(await env!.redis.ttl(`${prefix}:ds:ds:samples`)).toBe(-1);
  });

  it('forget removes every key of the dataset and its entry in the list; an expired dataset leaves the list', async () => {
    await store.saveRun(datasetConfig('gone'));
    await store.saveRun(datasetConfig('kept'));
    await store.indexSamples('gone', [{ id: 'a', uri: 'file:///a.jpg', status: 'failed', error: { code: 'x', message: 'y' }, outputs: {}, shape: {}, dtype: 'float32' }], 0, 0);
    await store.forget('gone');
    expect(await env!.redis.keys(`${prefix}:ds:gone:*`)).toEqual([]);
    expect(await store.list()).toEqual(['kept']);
    // Retention ran out: the keys are gone, and list() drops the id it still had.
    await env!.redis.del(`${prefix}:ds:kept:runs`);
    expect(await store.list()).toEqual([]);
    expect(await env!.redis.zcard(`${prefix}:datasets`)).toBe(0);
  });
});
