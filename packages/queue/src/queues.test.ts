import { Job } from 'bullmq';
import { ChunkJob, DatasetJob, QueueName, type Sample } from '@layertap/contracts';
import { CHUNK_JOB_OPTIONS, LayertapQueues, chunkSamples } from './queues';
import { deletePrefix, datasetConfig, samples, startRedis, stopRedis, uniquePrefix } from './testing';

describe('chunkSamples', () => {
  const list: Sample[] = samples(7);

  it('splits into chunks of the size, the last one shorter, in order', () => {
    const chunks = chunkSamples(list, 3);
    expect(chunks.map((c) => c.map((s) => s.id))).toEqual([['s0', 's1', 's2'], ['s3', 's4', 's5'], ['s6']]);
  });

  it('makes one chunk when the size is at least the length, and none for no samples', () => {
    expect(chunkSamples(list, 7)).toEqual([list]);
    expect(chunkSamples(list, 100)).toEqual([list]);
    expect(chunkSamples([], 3)).toEqual([]);
  });

  it('makes equal chunks when the size divides the length', () => {
    expect(chunkSamples(samples(6), 2).map((c) => c.length)).toEqual([2, 2, 2]);
  });
});

describe('LayertapQueues.submit (real redis-server)', () => {
  let env: Awaited<ReturnType<typeof startRedis>> | undefined;
  let prefix: string;
  let queues: LayertapQueues;

  beforeAll(async () => {
    env = await startRedis();
  });
  afterAll(async () => {
    await stopRedis(env);
  });
  beforeEach(() => {
    prefix = uniquePrefix('submit');
    queues = new LayertapQueues({ connection: env!.redis, prefix });
  });
  afterEach(async () => {
    await queues.datasets.obliterate({ force: true });
    await queues.chunks.obliterate({ force: true });
    await queues.close();
    await deletePrefix(env!.redis, prefix);
  });

  it('adds one parent waiting on one chunk job per chunk, with deterministic ids and the right samples', async () => {
    const config = datasetConfig('flowers', { chunkSize: 2, totalSamples: 5 });
    const result = await queues.submit(config, samples(5));
    expect(result).toEqual({ jobId: 'flowers~r0', chunks: 3, existing: false });

    expect(await queues.datasets.getJobCounts('waiting-children', 'waiting', 'active')).toEqual({ 'waiting-children': 1, waiting: 0, active: 0 });
    const parent = await Job.fromId(queues.datasets, 'flowers~r0');
    expect(parent).toBeDefined();
    expect(await parent!.getState()).toBe('waiting-children');
    const parentData = DatasetJob.parse(parent!.data);
    expect(parentData.chunks).toBe(3);
    expect(parentData.dataset).toEqual(config);
    expect(await parent!.getDependenciesCount()).toMatchObject({ processed: 0, unprocessed: 3 });

    expect(await queues.chunks.getJobCounts('waiting')).toEqual({ waiting: 3 });
    const expected = [['s0', 's1'], ['s2', 's3'], ['s4']];
    for (const [chunk, ids] of expected.entries()) {
      const job = await Job.fromId(queues.chunks, `flowers~r0~c${chunk}`);
      expect(job).toBeDefined();
      const data = ChunkJob.parse(job!.data);
      expect(data.chunk).toBe(chunk);
      expect(data.samples.map((s) => s.id)).toEqual(ids);
      expect(data.samples[0]?.uri).toBe(`s3://bucket/images/${ids[0]}.jpg`);
      expect(data.dataset).toEqual(config);
      expect(job!.opts.attempts).toBe(CHUNK_JOB_OPTIONS.attempts);
      expect(job!.parentKey).toBe(`${prefix}:${QueueName.Datasets}:flowers~r0`);
    }
    expect(await queues.store.latestRun('flowers')).toEqual(config);
    expect(await queues.store.list()).toEqual(['flowers']);
  });

  it('is idempotent: the same run again returns existing: true and adds nothing', async () => {
    const config = datasetConfig('again', { chunkSize: 2, totalSamples: 3 });
    await queues.submit(config, samples(3));
    const again = await queues.submit({ ...config, submittedAt: '2025-03-02T00:00:00.000Z' }, samples(3));
    expect(again).toEqual({ jobId: 'again~r0', chunks: 2, existing: true, state: 'waiting-children' });
    expect(await queues.chunks.count()).toBe(2);
    expect(await queues.datasets.getJobCountByTypes('waiting-children')).toBe(1);
    // The stored configuration is the first submission's.
    expect((await queues.store.latestRun('again'))?.submittedAt).toBe('2025-03-01T12:00:00.000Z');
  });

  it('adds a new run of the same dataset as a separate flow', async () => {
    await queues.submit(datasetConfig('runs', { chunkSize: 10, totalSamples: 4 }), samples(4));
    const retry = await queues.submit(datasetConfig('runs', { chunkSize: 10, totalSamples: 1, run: 1 }), samples(1, 2));
    expect(retry).toEqual({ jobId: 'runs~r1', chunks: 1, existing: false });
    expect((await queues.chunks.getJobs(['waiting'])).map((j) => j.id).sort()).toEqual(['runs~r0~c0', 'runs~r1~c0']);
    expect((await queues.datasetJob('runs'))?.id).toBe('runs~r1');
    expect((await queues.datasetJob('runs', 0))?.id).toBe('runs~r0');
    expect(await queues.datasetJob('nothing-here')).toBeUndefined();
    expect((await queues.store.runs('runs')).map((r) => r.run)).toEqual([0, 1]);
  });

  it('refuses an invalid configuration before touching Redis', async () => {
    await expect(queues.submit(datasetConfig('bad..id'), samples(1))).rejects.toThrow(/contains '\.\.'/);
    await expect(queues.submit(datasetConfig('ok', { chunkSize: 0 }), samples(1))).rejects.toThrow(/chunkSize/);
    expect(await deletePrefix(env!.redis, prefix)).toBe(0);
  });

  it('refuses a sample with an unsafe id and leaves nothing behind', async () => {
    const bad = [...samples(2), { id: 'x/y', uri: 's3://bucket/x.jpg' }];
    await expect(queues.submit(datasetConfig('unsafe', { totalSamples: 3 }), bad)).rejects.toThrow(/path separator/);
    expect(await queues.store.runs('unsafe')).toEqual([]);
    expect(await queues.chunks.count()).toBe(0);
  });
});
