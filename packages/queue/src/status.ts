import { Job } from 'bullmq';
import { storedUri, type DatasetConfig, type EngineInfo } from '@layertap/contracts';
import type { DatasetProgress } from './dataset-store';
import type { LayertapQueues } from './queues';
import { parseJobId } from './job-ids';

export interface ChunkFailure {
  chunk: number;
  jobId: string;
  reason: string;
}

export interface DatasetStatus {
  datasetId: string;
  /** queued: waiting for chunks; finishing: merging the manifest; done: manifest written; cancelled; failed; unknown: jobs gone from Redis. */
  state: 'running' | 'finishing' | 'done' | 'failed' | 'cancelled' | 'unknown';
  /** The latest run's configuration as shown: a weights URI without credentials (`storedUri`). */
  config: DatasetConfig;
  progress: DatasetProgress;
  chunks: { total: number; done: number; failed: number; pending: number };
  chunkFailures: ChunkFailure[];
  cancelled: boolean;
  /** The engines that ran (or run) its chunks: engine, backend, device, why, warnings. */
  engines: EngineInfo[];
  /** The latest run's dataset job; `finishedOn` (ms since the epoch) once it completed or failed for good. */
  parentJob?: { id: string; state: string; failedReason?: string; finishedOn?: number };
}

/** Everything `layertap status` and the dashboard show about one dataset, from Redis alone. */
export async function datasetStatus(queues: LayertapQueues, datasetId: string): Promise<DatasetStatus | undefined> {
  const config = await queues.store.latestRun(datasetId);
  const progress = await queues.store.progress(datasetId);
  if (!config || !progress) return undefined;
  const [cancelled, engines] = await Promise.all([queues.store.isCancelled(datasetId), queues.store.engines(datasetId)]);
  const parent = await queues.datasetJob(datasetId, config.run);
  let state: DatasetStatus['state'] = 'unknown';
  let chunks = { total: 0, done: 0, failed: 0, pending: 0 };
  const chunkFailures: ChunkFailure[] = [];
  let parentJob: DatasetStatus['parentJob'];
  if (parent) {
    const jobState = await parent.getState();
    const counts = await parent.getDependenciesCount();
    const total = (parent.data as { chunks?: number }).chunks ?? 0;
    const failed = (counts.ignored ?? 0) + (counts.failed ?? 0);
    const done = counts.processed ?? 0;
    chunks = { total, done, failed, pending: Math.max(0, total - done - failed) };
    for (const [key, reason] of Object.entries(await parent.getIgnoredChildrenFailures())) {
      const jobId = key.split(':').pop() ?? key;
      chunkFailures.push({ chunk: parseJobId(jobId)?.chunk ?? -1, jobId, reason });
    }
    parentJob = {
      id: parent.id ?? '',
      state: jobState,
      ...(parent.failedReason ? { failedReason: parent.failedReason } : {}),
      ...((jobState === 'completed' || jobState === 'failed') && parent.finishedOn ? { finishedOn: parent.finishedOn } : {}),
    };
    if (jobState === 'completed') state = 'done';
    else if (jobState === 'failed') state = 'failed';
    else if (jobState === 'waiting-children') state = 'running';
    else state = 'finishing';
  } else if (progress.finished) {
    state = 'done';
  }
  if (cancelled && state !== 'done' && state !== 'failed') state = 'cancelled';
  const shown = config.weights ? { ...config, weights: storedUri(config.weights) } : config;
  return { datasetId, state, config: shown, progress, chunks, chunkFailures, cancelled, engines, ...(parentJob ? { parentJob } : {}) };
}

/** The chunk job of a run, if Redis still has it. */
export async function chunkJob(queues: LayertapQueues, jobId: string): Promise<Job | undefined> {
  return (await Job.fromId(queues.chunks, jobId)) ?? undefined;
}
