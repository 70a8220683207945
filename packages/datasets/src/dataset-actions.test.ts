import { Job } from 'bullmq';
import { ErrorCode, ValidationError, type ChunkJob, type DatasetConfig } from '@layertap/contracts';
import { LayertapQueues, datasetStatus } from '@layertap/queue';
import { deletePrefix, datasetConfig, samples, startRedis, stopRedis, uniquePrefix } from '@layertap/queue/testing';
import { cancelDataset, retryDataset, type CancelOptions } from './dataset-actions';

describe('cancelDataset and retryDataset (real redis-server)', () => {
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
    prefix = uniquePrefix('actions');
    queues = new LayertapQueues({ connection: env!.redis, prefix });
  });
  afterEach(async () => {
    await queues.datasets.obliterate({ force: true });
    await queues.chunks.obliterate({ force: true });
    await queues.close();
    await deletePrefix(env!.redis, prefix);
  });

  async function refusal(promise: Promise<unknown>): Promise<ValidationError> {
    const err = await promise.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as ValidationError).code).toBe(ErrorCode.InvalidRequest);
    return err as ValidationError;
  }

  /** Records run 0 of `id` as finished with `failed` failed samples, as the finalizer does. */
  async function finished(id: string, total: number, failed: number): Promise<void> {
    await queues.submit(datasetConfig(id, { totalSamples: total, chunkSize: 10 }), samples(total));
    await (await queues.datasetJob(id))!.remove();
    await queues.store.setResult(id, 0, { datasetId: id, ok: total - failed, failed, failures: { decode_failed: failed }, manifestKey: `${id}/manifest.jsonl` });
  }

  // A running dataset is only flagged: its workers record what they did not run, so the outputs are not read.
  const flagOnly: CancelOptions = {
    output: () => {
      throw new Error('the outputs of a running dataset were opened');
    },
    version: 'test',
  };

  it('cancels a known dataset and refuses an unknown one', async () => {
    await queues.submit(datasetConfig('stop', { totalSamples: 3 }), samples(3));
    expect(await queues.store.isCancelled('stop')).toBe(false);
    expect((await cancelDataset(queues, 'stop', flagOnly)).action).toBe('requested');
    expect(await queues.store.isCancelled('stop')).toBe(true);
    const err = await refusal(cancelDataset(queues, 'nope', flagOnly));
    expect(err.message).toBe('no dataset "nope" in Redis (check REDIS_URL and LAYERTAP_QUEUE_PREFIX)');
  });

  it('refuses to retry a dataset that is still running, without reading its manifest', async () => {
    await queues.submit(datasetConfig('busy', { totalSamples: 3 }), samples(3));
    const read = jest.fn(async () => samples(1));
    const err = await refusal(retryDataset(queues, 'busy', { failedSamples: read }));
    expect(err.message).toBe('dataset busy is still running: retry once it has finished');
    expect(read).not.toHaveBeenCalled();
    await refusal(retryDataset(queues, 'nope', { failedSamples: read }));
  });

  it('submits the failed samples of a finished dataset as the next run, with the same settings', async () => {
    await finished('again', 5, 2);
    const seen: DatasetConfig[] = [];
    const result = await retryDataset(queues, 'again', {
      failedSamples: async (config) => {
        seen.push(config);
        return [samples(5)[1]!, samples(5)[4]!];
      },
    });
    expect(result).toEqual({ datasetId: 'again', run: 1, retried: 2, chunks: 1 });
    expect(seen.map((c) => [c.datasetId, c.run])).toEqual([['again', 0]]);
    const job = await Job.fromId(queues.datasets, 'again~r1');
    expect(job?.data).toMatchObject({ kind: 'dataset', chunks: 1, dataset: { datasetId: 'again', run: 1, totalSamples: 2, imageSize: 64, layers: [{ spec: 'conv1_1' }] } });
    const chunk = await Job.fromId(queues.chunks, 'again~r1~c0');
    expect((chunk?.data as { samples: unknown[] }).samples).toEqual([samples(5)[1], samples(5)[4]]);
    expect((await queues.store.latestRun('again'))?.run).toBe(1);
  });

  it('retries with the weights URI as submitted, credentials included, though the status shows it without them', async () => {
    const weights = 'https://u:pw@models.example.com/w.h5?sig=s3cret';
    await queues.submit(datasetConfig('signed', { totalSamples: 2, chunkSize: 10, weights }), samples(2));
    await (await queues.datasetJob('signed'))!.remove();
    await queues.store.setResult('signed', 0, { datasetId: 'signed', ok: 1, failed: 1, failures: { not_found: 1 }, manifestKey: 'signed/manifest.jsonl' });
    expect((await datasetStatus(queues, 'signed'))?.config.weights).toBe('https://models.example.com/w.h5?sig=***');
    await retryDataset(queues, 'signed', { failedSamples: async () => [samples(2)[1]!] });
    const chunk = await Job.fromId(queues.chunks, 'signed~r1~c0');
    expect((chunk?.data as ChunkJob).dataset.weights).toBe(weights);
  });

  it('adds nothing when no sample failed', async () => {
    await finished('clean', 3, 0);
    expect(await retryDataset(queues, 'clean', { failedSamples: async () => [] })).toEqual({ datasetId: 'clean', retried: 0, chunks: 0 });
    expect(await queues.datasets.count()).toBe(0);
  });
});
