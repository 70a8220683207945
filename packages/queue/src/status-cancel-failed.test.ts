import { UnrecoverableError, Worker } from 'bullmq';
import { QueueName } from '@layertap/contracts';
import { LayertapQueues } from './queues';
import { datasetStatus } from './status';
import { deletePrefix, datasetConfig, samples, startRedis, stopRedis, uniquePrefix, waitUntil } from './testing';

it('a cancelled dataset whose parent job failed for good reports failed, not cancelled', async () => {
  const env = await startRedis();
  const prefix = uniquePrefix('cancelfail');
  const queues = new LayertapQueues({ connection: env.redis, prefix });
  const workers = [
    new Worker(QueueName.Chunks, async () => ({ ok: 1 }), { connection: env.redis, prefix }),
    new Worker(QueueName.Datasets, async () => { throw new UnrecoverableError('upload_failed: manifest write refused'); }, { connection: env.redis, prefix }),
  ];
  try {
    await queues.submit(datasetConfig('cf', { chunkSize: 5, totalSamples: 2 }), samples(2));
    await queues.store.cancel('cf');
    await waitUntil(async () => (await queues.datasets.getJobCountByTypes('failed')) === 1, 10_000, 'failed parent');
    const status = await datasetStatus(queues, 'cf');
    expect(status?.parentJob).toMatchObject({ state: 'failed', failedReason: 'upload_failed: manifest write refused', finishedOn: expect.any(Number) });
    expect(status?.state).toBe('failed');
  } finally {
    await Promise.all(workers.map((w) => w.close()));
    await queues.close();
    await deletePrefix(env.redis, prefix);
    await stopRedis(env);
  }
});
