import { Job, UnrecoverableError, Worker, type Processor } from 'bullmq';
import { ChunkJob, DatasetJob, QueueName, type ChunkResult, type DatasetResult } from '@layertap/contracts';
import { LayertapQueues } from './queues';
import { chunkJob, datasetStatus } from './status';
import { deletePrefix, datasetConfig, samples, startRedis, stopRedis, uniquePrefix, waitUntil } from './testing';

describe('datasetStatus (real redis-server, real BullMQ workers)', () => {
  let env: Awaited<ReturnType<typeof startRedis>> | undefined;
  let prefix: string;
  let queues: LayertapQueues;
  const workers: Worker[] = [];

  beforeAll(async () => {
    env = await startRedis();
  });
  afterAll(async () => {
    await stopRedis(env);
  });
  beforeEach(() => {
    prefix = uniquePrefix('status');
    queues = new LayertapQueues({ connection: env!.redis, prefix });
  });
  afterEach(async () => {
    await Promise.all(workers.splice(0).map((w) => w.close()));
    await queues.datasets.obliterate({ force: true });
    await queues.chunks.obliterate({ force: true });
    await queues.close();
    await deletePrefix(env!.redis, prefix);
  });

  /** A worker on `queue` that runs `processor`; closed after the test. */
  function work(queue: string, processor: Processor): Worker {
    const worker = new Worker(queue, processor, { connection: env!.redis, prefix, concurrency: 4 });
    workers.push(worker);
    return worker;
  }

  async function stopWorker(worker: Worker): Promise<void> {
    workers.splice(workers.indexOf(worker), 1);
    await worker.close();
  }

  /** Completes chunk jobs as a worker would: records the result in the store and returns it. */
  const completeChunk = (failChunks: number[] = []): Processor => async (job) => {
    const data = ChunkJob.parse(job.data);
    if (failChunks.includes(data.chunk)) throw new UnrecoverableError(`bad_payload: chunk ${data.chunk} is broken`);
    const ok = data.samples.length - 1;
    const result: ChunkResult = {
      chunk: data.chunk,
      run: data.dataset.run,
      ok,
      failed: 1,
      failures: { decode_failed: 1 },
      backend: 'cpu',
      weights: { description: 'random, seed 0' },
      startedAt: new Date().toISOString(),
      durationMs: 1,
    };
    await queues.store.setChunkResult(data.dataset.datasetId, result);
    return result;
  };

  /** Completes the parent job as the finalizer would: sums the children's results. */
  const completeDataset: Processor = async (job) => {
    const data = DatasetJob.parse(job.data);
    const children = Object.values(await job.getChildrenValues<ChunkResult>());
    const result: DatasetResult = {
      datasetId: data.dataset.datasetId,
      ok: children.reduce((n, c) => n + c.ok, 0),
      failed: data.dataset.totalSamples - children.reduce((n, c) => n + c.ok, 0),
      failures: { decode_failed: children.reduce((n, c) => n + c.failed, 0) },
      manifestKey: `${data.dataset.datasetId}/manifest.jsonl`,
    };
    await queues.store.setResult(data.dataset.datasetId, data.dataset.run, result);
    return result;
  };

  it('is undefined for a dataset that was never submitted', async () => {
    expect(await datasetStatus(queues, 'nope')).toBeUndefined();
  });

  it('goes running -> finishing -> done as chunk jobs and then the parent complete', async () => {
    const config = datasetConfig('trip', { chunkSize: 2, totalSamples: 5 });
    await queues.submit(config, samples(5));

    let status = await datasetStatus(queues, 'trip');
    expect(status).toMatchObject({
      datasetId: 'trip',
      state: 'running',
      config,
      chunks: { total: 3, done: 0, failed: 0, pending: 3 },
      chunkFailures: [],
      engines: [],
      cancelled: false,
      parentJob: { id: 'trip~r0', state: 'waiting-children' },
      progress: { total: 5, ok: 0, failed: 0, pending: 5, finished: false },
    });

    const chunkWorker = work(QueueName.Chunks, completeChunk());
    await waitUntil(async () => (await queues.chunks.getJobCountByTypes('completed')) === 3, 10_000, 'three completed chunks');
    await stopWorker(chunkWorker);

    status = await datasetStatus(queues, 'trip');
    expect(status?.state).toBe('finishing');
    expect(status?.parentJob?.state).toBe('waiting');
    expect(status?.chunks).toEqual({ total: 3, done: 3, failed: 0, pending: 0 });
    // Chunks of 2, 2 and 1 samples, one failed sample each.
    expect(status?.progress).toMatchObject({ ok: 2, failed: 3, pending: 0, failures: { decode_failed: 3 }, finished: false });

    work(QueueName.Datasets, completeDataset);
    await waitUntil(async () => (await queues.datasets.getJobCountByTypes('completed')) === 1, 10_000, 'the parent job');
    status = await datasetStatus(queues, 'trip');
    expect(status?.state).toBe('done');
    expect(status?.parentJob).toEqual({ id: 'trip~r0', state: 'completed', finishedOn: expect.any(Number) });
    expect(Math.abs((status?.parentJob?.finishedOn ?? 0) - Date.now())).toBeLessThan(10_000);
    expect(status?.progress).toMatchObject({ total: 5, ok: 2, failed: 3, pending: 0, finished: true });
  });

  it('counts a chunk that failed for good and names it in chunkFailures', async () => {
    await queues.submit(datasetConfig('broken', { chunkSize: 2, totalSamples: 6 }), samples(6));
    const chunkWorker = work(QueueName.Chunks, completeChunk([1]));
    await waitUntil(
      async () => (await queues.chunks.getJobCountByTypes('completed')) === 2 && (await queues.chunks.getJobCountByTypes('failed')) === 1,
      10_000,
      'two completed chunks and one failed',
    );
    await stopWorker(chunkWorker);

    const status = await datasetStatus(queues, 'broken');
    // ignoreDependencyOnFailure: the parent goes on without the failed chunk.
    expect(status?.state).toBe('finishing');
    expect(status?.chunks).toEqual({ total: 3, done: 2, failed: 1, pending: 0 });
    expect(status?.chunkFailures).toEqual([{ chunk: 1, jobId: 'broken~r0~c1', reason: 'bad_payload: chunk 1 is broken' }]);

    const failedJob = await chunkJob(queues, 'broken~r0~c1');
    expect(failedJob?.attemptsMade).toBe(1);
    expect(await failedJob?.getState()).toBe('failed');
    expect(await chunkJob(queues, 'broken~r0~c9')).toBeUndefined();
  });

  it('reports cancelled while running, but done wins once the manifest is written', async () => {
    await queues.submit(datasetConfig('stopme', { chunkSize: 5, totalSamples: 2 }), samples(2));
    await queues.store.cancel('stopme');
    let status = await datasetStatus(queues, 'stopme');
    expect(status?.state).toBe('cancelled');
    expect(status?.cancelled).toBe(true);

    work(QueueName.Chunks, completeChunk());
    work(QueueName.Datasets, completeDataset);
    await waitUntil(async () => (await queues.datasets.getJobCountByTypes('completed')) === 1, 10_000, 'the parent job');
    status = await datasetStatus(queues, 'stopme');
    expect(status?.state).toBe('done');
    expect(status?.cancelled).toBe(true);
  });

  it('is unknown once the jobs are gone from Redis, and done when the result survived them', async () => {
    await queues.submit(datasetConfig('gone', { chunkSize: 5, totalSamples: 2 }), samples(2));
    // As when removeOnComplete/removeOnFail ages the jobs out: removing the parent removes its children.
    await (await queues.datasetJob('gone'))!.remove();
    expect(await queues.chunks.count()).toBe(0);
    let status = await datasetStatus(queues, 'gone');
    expect(status?.state).toBe('unknown');
    expect(status?.parentJob).toBeUndefined();
    expect(status?.chunks).toEqual({ total: 0, done: 0, failed: 0, pending: 0 });

    await queues.store.setResult('gone', 0, { datasetId: 'gone', ok: 2, failed: 0, failures: {}, manifestKey: 'gone/manifest.jsonl' });
    status = await datasetStatus(queues, 'gone');
    expect(status?.state).toBe('done');
    expect(status?.progress).toMatchObject({ ok: 2, failed: 0, pending: 0, finished: true });
  });

  it('follows the latest run after a retry', async () => {
    await queues.submit(datasetConfig('again', { chunkSize: 5, totalSamples: 2 }), samples(2));
    work(QueueName.Chunks, completeChunk());
    work(QueueName.Datasets, completeDataset);
    await waitUntil(async () => (await queues.datasets.getJobCountByTypes('completed')) === 1, 10_000, 'run 0');
    await Promise.all(workers.splice(0).map((w) => w.close()));

    // Run 0 left one sample failed; retry it as run 1.
    await queues.submit(datasetConfig('again', { chunkSize: 5, totalSamples: 1, run: 1 }), samples(1, 1));
    const status = await datasetStatus(queues, 'again');
    expect(status?.state).toBe('running');
    expect(status?.config.run).toBe(1);
    expect(status?.parentJob?.id).toBe('again~r1');
    expect(status?.chunks).toEqual({ total: 1, done: 0, failed: 0, pending: 1 });
    expect(status?.progress).toMatchObject({ total: 2, run: 1, ok: 1, failed: 0, pending: 1, finished: false });
    expect(await Job.fromId(queues.datasets, 'again~r0').then((j) => j?.getState())).toBe('completed');
  });
});
