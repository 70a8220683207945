import { FlowProducer, Job, Queue, type JobsOptions } from 'bullmq';
import { ChunkJob, DatasetConfig, DatasetJob, QueueName, type Sample } from '@layertap/contracts';
import { chunkJobId, datasetJobId } from './job-ids';
import { DatasetStore } from './dataset-store';
import { assertClusterPrefix, isCluster, type Redis } from './connection';

export interface LayertapQueuesOptions {
  /** A connected ioredis client or cluster; BullMQ duplicates it where it needs its own connections. */
  connection: Redis;
  /** BullMQ key prefix; on Redis Cluster it must carry a hash tag such as `{layertap}` (refused otherwise). */
  prefix: string;
}

/** Chunk jobs retry transient failures (S3 down, a worker killed) with exponential backoff. */
export const CHUNK_JOB_OPTIONS: JobsOptions = {
  attempts: 5,
  backoff: { type: 'exponential', delay: 2_000 },
  removeOnComplete: { age: 24 * 3600, count: 100_000 },
  removeOnFail: { age: 30 * 24 * 3600 },
  // A chunk that fails for good must not block the dataset: its samples are recorded as failed.
  ignoreDependencyOnFailure: true,
};

export const DATASET_JOB_OPTIONS: JobsOptions = {
  attempts: 5,
  backoff: { type: 'exponential', delay: 2_000 },
  removeOnComplete: { age: 30 * 24 * 3600 },
  removeOnFail: { age: 30 * 24 * 3600 },
};

/** Jobs are kept no longer than the dataset's state (`retentionSeconds`), so a forgotten run leaves no job behind. */
function retentionOptions(retentionSeconds: number | undefined): { chunk: JobsOptions; dataset: JobsOptions } {
  if (!retentionSeconds) return { chunk: {}, dataset: {} };
  const age = (seconds: number) => Math.min(seconds, retentionSeconds);
  return {
    chunk: { removeOnComplete: { age: age(24 * 3600), count: 100_000 }, removeOnFail: { age: age(30 * 24 * 3600) } },
    dataset: { removeOnComplete: { age: age(30 * 24 * 3600) }, removeOnFail: { age: age(30 * 24 * 3600) } },
  };
}

/** Splits samples into chunks of at most `size`; the last one is shorter. */
export function chunkSamples(samples: readonly Sample[], size: number): Sample[][] {
  const chunks: Sample[][] = [];
  for (let i = 0; i < samples.length; i += size) chunks.push(samples.slice(i, i + size));
  return chunks;
}

export interface SubmitOptions {
  /** Attempts per chunk job (default 5). */
  attempts?: number;
  /** First retry delay in ms, doubled each time (default 2000). */
  backoffMs?: number;
}

export interface SubmitResult {
  jobId: string;
  chunks: number;
  /** true when this run of the dataset was already in Redis: nothing was added. */
  existing: boolean;
  state?: string;
}

/** The two queues, the flow producer and the dataset store, sharing one connection. */
export class LayertapQueues {
  readonly datasets: Queue;
  readonly chunks: Queue;
  readonly flows: FlowProducer;
  readonly store: DatasetStore;

  constructor(readonly options: LayertapQueuesOptions) {
    const { connection, prefix } = options;
    if (isCluster(connection)) assertClusterPrefix(prefix);
    this.datasets = new Queue(QueueName.Datasets, { connection, prefix });
    this.chunks = new Queue(QueueName.Chunks, { connection, prefix });
    this.flows = new FlowProducer({ connection, prefix });
    this.store = new DatasetStore(connection, prefix);
  }

  /**
   * Enqueues one run of a dataset as a flow: a parent job in `datasets` waiting on one child job per chunk.
   * Idempotent: if this run's parent job still exists, nothing is added and `existing` is true.
   */
  async submit(config: DatasetConfig, samples: readonly Sample[], options: SubmitOptions = {}): Promise<SubmitResult> {
    const parsed = DatasetConfig.parse(config);
    const jobId = datasetJobId(parsed.datasetId, parsed.run);
    const existing = await Job.fromId(this.datasets, jobId);
    if (existing) {
      const state = await existing.getState();
      return { jobId, chunks: (existing.data as DatasetJob).chunks, existing: true, state };
    }
    const chunks = chunkSamples(samples, parsed.chunkSize);
    const retention = retentionOptions(parsed.retentionSeconds);
    const children = chunks.map((chunkSamplesList, chunk) => {
      const data: ChunkJob = ChunkJob.parse({ kind: 'chunk', dataset: parsed, chunk, samples: chunkSamplesList });
      return {
        name: 'chunk',
        queueName: QueueName.Chunks,
        data,
        opts: {
          ...CHUNK_JOB_OPTIONS,
          ...retention.chunk,
          ...(options.attempts ? { attempts: options.attempts } : {}),
          ...(options.backoffMs ? { backoff: { type: 'exponential', delay: options.backoffMs } } : {}),
          jobId: chunkJobId(parsed.datasetId, parsed.run, chunk),
        },
      };
    });
    const parentData: DatasetJob = { kind: 'dataset', dataset: parsed, chunks: chunks.length };
    await this.store.saveRun(parsed);
    await this.store.savePlan(parsed.datasetId, parsed.run, chunks);
    await this.flows.add({
      name: 'dataset',
      queueName: QueueName.Datasets,
      data: parentData,
      opts: {
        ...DATASET_JOB_OPTIONS,
        ...retention.dataset,
        ...(options.attempts ? { attempts: options.attempts } : {}),
        ...(options.backoffMs ? { backoff: { type: 'exponential', delay: options.backoffMs } } : {}),
        jobId,
      },
      children,
    });
    return { jobId, chunks: chunks.length, existing: false };
  }

  /** The parent job of a dataset's run (latest run when `run` is omitted). */
  async datasetJob(datasetId: string, run?: number): Promise<Job | undefined> {
    const r = run ?? (await this.store.latestRun(datasetId))?.run;
    if (r === undefined) return undefined;
    return (await Job.fromId(this.datasets, datasetJobId(datasetId, r))) ?? undefined;
  }

  async close(): Promise<void> {
    await Promise.all([this.datasets.close(), this.chunks.close(), this.flows.close()]);
  }
}
