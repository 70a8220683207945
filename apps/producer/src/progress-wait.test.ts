import { randomBytes } from 'node:crypto';
import { RedisServer } from '@layertap/devservices';
import type { DatasetConfig, DatasetResult } from '@layertap/contracts';
import { LayertapQueues, connectRedis, type Redis } from '@layertap/queue';
import { waitForDataset } from './progress';

describe('waitForDataset (real redis-server)', () => {
  let server: RedisServer;
  let redis: Redis;
  let prefix: string;
  let queues: LayertapQueues;

  const config = (datasetId: string): DatasetConfig => ({
    datasetId,
    output: 's3://bucket/out',
    layers: [{ spec: 'fc2', canonical: 'fc2' }],
    seed: 0,
    preprocess: 'torchvision',
    imageSize: 64,
    batchSize: 2,
    chunkSize: 2,
    dtype: 'float32',
    layout: 'chw',
    pool: 'none',
    totalSamples: 4,
    submittedAt: '2025-01-01T00:00:00.000Z',
    run: 0,
  });
  const samples = (n: number) => Array.from({ length: n }, (_, i) => ({ id: `s${i}`, uri: `s3://bucket/s${i}.jpg` }));
  const result = (datasetId: string, ok: number, failed: number): DatasetResult => ({
    datasetId,
    ok,
    failed,
    failures: failed ? { timeout: failed } : {},
    manifestKey: `${datasetId}/manifest.jsonl`,
  });

  beforeAll(async () => {
    server = new RedisServer();
    await server.start();
    redis = await connectRedis(server.url);
  });
  afterAll(async () => {
    await redis?.quit();
    await server?.close();
  });
  beforeEach(() => {
    prefix = `lt-test-wait-${randomBytes(4).toString('hex')}`;
    queues = new LayertapQueues({ connection: redis, prefix });
  });
  afterEach(async () => {
    await queues.close();
    const keys = await redis.keys(`${prefix}:*`);
    if (keys.length) await redis.del(...keys);
  });

  it('reports progress lines while running and returns the final status once done', async () => {
    await queues.submit(config('w1'), samples(4));
    const lines: string[] = [];
    let reported = 0;
    const waiting = waitForDataset(queues, 'w1', {
      intervalMs: 10,
      onProgress: (_status, line) => {
        lines.push(line);
        reported++;
      },
    });
    while (reported < 2) await new Promise((r) => setTimeout(r, 5));
    await queues.store.setChunkProgress('w1', { run: 0, chunk: 0, ok: 2, failed: 0, failures: {}, final: true });
    const seen = reported;
    while (reported < seen + 2) await new Promise((r) => setTimeout(r, 5));
    // The finalizer wrote the manifest; the completed jobs have since been removed from Redis.
    await queues.store.setResult('w1', 0, result('w1', 3, 1));
    await (await queues.datasetJob('w1'))!.remove();

    const final = await waiting;
    expect(final.state).toBe('done');
    expect(final.progress).toMatchObject({ total: 4, ok: 3, failed: 1, pending: 0, finished: true });
    expect(lines[0]).toMatch(/^\[-+\] 0\/4 done, 0 failed, 0\.0 img\/s, ETA -- \(running\)$/);
    expect(lines).toContainEqual(expect.stringMatching(/^\[#{15}-{15}\] 2\/4 done, 0 failed, [\d.]+ img\/s, ETA .+ \(running\)$/));
    expect(lines.at(-1)).toMatch(/ 4\/4 done, 1 failed, .*\(done\)$/);
  });

  it('keeps polling through errors and reports them', async () => {
    // A run record that does not parse: every poll fails until it is fixed.
    await redis.hset(`${prefix}:ds:w2:runs`, '0', '{"not":"a config"}');
    const errors: Error[] = [];
    const waiting = waitForDataset(queues, 'w2', { intervalMs: 10, onError: (err) => errors.push(err) });
    while (errors.length < 2) await new Promise((r) => setTimeout(r, 5));
    await queues.store.saveRun(config('w2'));
    await queues.store.setResult('w2', 0, result('w2', 4, 0));
    const final = await waiting;
    expect(final.state).toBe('done');
    expect(final.progress).toMatchObject({ ok: 4, failed: 0, finished: true });
    expect(errors[0]?.name).toBe('ZodError');
  });
});
