import { ErrorCode, ValidationError, type DatasetConfig, type Sample } from '@layertap/contracts';
import type { LayertapQueues, SubmitOptions } from './queues';
import { datasetStatus } from './status';

/** The error for a dataset id Redis does not know. */
export function unknownDatasetError(datasetId: string): ValidationError {
  return new ValidationError(ErrorCode.InvalidRequest, `no dataset "${datasetId}" in Redis (check REDIS_URL and LAYERTAP_QUEUE_PREFIX)`);
}

/**
 * Cancels a dataset (`layertap cancel`, the dashboard's Cancel): workers stop after their current batch and
 * record the samples that did not run as failed with reason `cancelled`. Throws `ValidationError` for an
 * unknown dataset.
 */
export async function cancelDataset(queues: LayertapQueues, datasetId: string): Promise<void> {
  const runs = await queues.store.runs(datasetId);
  if (runs.length === 0) throw unknownDatasetError(datasetId);
  await queues.store.cancel(datasetId);
}

export interface RetryDatasetOptions extends SubmitOptions {
  /** The failed (and cancelled) samples of the finished dataset, read from its manifest by the caller. */
  failedSamples: (config: DatasetConfig) => Promise<Sample[]>;
}

export interface RetryDatasetResult {
  datasetId: string;
  /** The new run, when anything was retried. */
  run?: number;
  retried: number;
  chunks: number;
}

/**
 * Retries a finished dataset (`layertap retry`, the dashboard's Retry): its failed samples are submitted again
 * as a new run with the same configuration. Throws `ValidationError` for an unknown dataset or one that has
 * not finished. Submitting is idempotent per run, so two concurrent retries add one run.
 */
export async function retryDataset(queues: LayertapQueues, datasetId: string, options: RetryDatasetOptions): Promise<RetryDatasetResult> {
  const status = await datasetStatus(queues, datasetId);
  if (!status) throw unknownDatasetError(datasetId);
  if (!status.progress.finished) {
    throw new ValidationError(ErrorCode.InvalidRequest, `dataset ${datasetId} is still ${status.state}: retry once it has finished`);
  }
  // The run's configuration as submitted (the status shows weights without credentials; workers need them).
  const latest = (await queues.store.latestRun(datasetId)) ?? status.config;
  const samples = await options.failedSamples(latest);
  if (samples.length === 0) return { datasetId, retried: 0, chunks: 0 };
  const run = latest.run + 1;
  const config = { ...latest, run, totalSamples: samples.length, submittedAt: new Date().toISOString() };
  const { failedSamples: _, ...submitOptions } = options;
  const submitted = await queues.submit(config, samples, submitOptions);
  return { datasetId, run, retried: samples.length, chunks: submitted.chunks };
}
