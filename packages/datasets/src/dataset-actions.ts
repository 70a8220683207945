// What a user does to a whole dataset (`layertap cancel/retry/forget`, the dashboard's Cancel and Retry), in
// one place: the decision reads Redis (status, runs), and closing a stopped dataset or choosing what to retry
// reads its outputs (the census), so both sides live here rather than in @layertap/queue.
import type { Logger } from '@layertap/config';
import { ErrorCode, ValidationError, type DatasetConfig, type Sample, type SampleCounts } from '@layertap/contracts';
import {
  chunkJobId,
  datasetJobId,
  datasetStatus,
  isActive,
  type DatasetStatus,
  type LayertapQueues,
  type SubmitOptions,
} from '@layertap/queue';
import type { OutputWriter } from '@layertap/storage';
import { selectRetry, takeCensus } from './dataset-census';
import { closeDataset, type CloseDatasetResult } from './finalize-dataset';

/** The error for a dataset id Redis does not know. */
export function unknownDatasetError(datasetId: string): ValidationError {
  return new ValidationError(ErrorCode.InvalidRequest, `no dataset "${datasetId}" in Redis (check REDIS_URL and LAYERTAP_QUEUE_PREFIX)`);
}

/** The status of a dataset Redis knows, or the unknown-dataset error. */
export async function knownDatasetStatus(queues: LayertapQueues, datasetId: string): Promise<DatasetStatus> {
  const status = await datasetStatus(queues, datasetId);
  if (!status) throw unknownDatasetError(datasetId);
  return status;
}

/** How an active state reads in a refusal: `running`, `running (cancel requested)`, `finishing`. */
function activeState(status: DatasetStatus): string {
  return status.state === 'cancelled' ? 'running (cancel requested)' : status.state;
}

export interface CancelOutcome {
  /**
   * `requested`: the dataset runs; workers stop after their current batch and record what did not run as
   * cancelled. `closed`: it had stopped (`failed`, `unknown`); what never ran was recorded as cancelled here and
   * the manifest written. `none`: it was done, nothing to cancel.
   */
  action: 'requested' | 'closed' | 'none';
  /** The status before the cancel. */
  status: DatasetStatus;
  /** With `closed`: the counts written, and how many samples were recorded cancelled and chunk_failed. */
  result?: CloseDatasetResult;
}

export interface CancelOptions {
  output: (uri: string) => OutputWriter;
  /** Recorded in `dataset.json` when the cancel writes it. */
  version: string;
  log?: Logger;
}

/**
 * `layertap cancel`, for a dataset in any state. A running one is flagged, and its workers record the samples
 * they did not run as cancelled. One that stopped without finishing has no worker coming back to it: its
 * census is taken here, the samples without an outcome (never run, or in a chunk that failed for good) are
 * recorded as cancelled, and the manifest and `dataset.json` are written, so it ends `done`.
 */
export async function cancelDataset(queues: LayertapQueues, datasetId: string, options: CancelOptions): Promise<CancelOutcome> {
  const status = await knownDatasetStatus(queues, datasetId);
  if (status.state === 'done') return { action: 'none', status };
  await queues.store.cancel(datasetId);
  if (isActive(status.state)) return { action: 'requested', status };
  const writer = options.output(status.config.output);
  const census = await takeCensus(queues, writer, datasetId);
  const result = await closeDataset(census, { queues, writer, dataset: status.config, version: options.version, cancelNotRun: true, ...(options.log ? { log: options.log } : {}) });
  return { action: 'closed', status, result };
}

/** What a retry runs: the samples that are not ok, and the counts of the others. */
export interface RetrySelection {
  samples: Sample[];
  /** The dataset's samples outside the retry (all ok when every sample that is not ok is retried). */
  earlier?: SampleCounts;
  /** The highest run found anywhere (the outputs may know runs that Redis lost): the retry is numbered after it. */
  lastRun?: number;
}

/** What `layertap retry` runs, read from the outputs and Redis: every sample of the dataset that is not ok. */
export async function retrySelection(queues: LayertapQueues, writer: OutputWriter, datasetId: string): Promise<RetrySelection> {
  return selectRetry(await takeCensus(queues, writer, datasetId));
}

export interface RetryDatasetOptions extends SubmitOptions {
  /**
   * The samples to run again, read from the outputs by the caller: a `RetrySelection` (`retrySelection`:
   * failed, cancelled and never-run samples), or a plain list.
   */
  failedSamples: (config: DatasetConfig) => Promise<Sample[] | RetrySelection>;
}

export interface RetryDatasetResult {
  datasetId: string;
  /** The new run, when one was added. */
  run?: number;
  retried: number;
  chunks: number;
  /** true when the new run only writes the manifest (a failed finalisation, every sample already ok). */
  finalizeOnly?: boolean;
}

/**
 * Retries a dataset that is not running (`layertap retry`, the dashboard's Retry): the samples the caller
 * selects are submitted again as a new run with the same configuration, and that run's finalisation writes
 * the manifest. A dataset whose latest run never finished (`failed`, `unknown`) gets a new run even when
 * every sample is ok, so its manifest is written. Throws `ValidationError` for an unknown dataset or one that
 * is running. Submitting is idempotent per run, so two concurrent retries add one run.
 */
export async function retryDataset(queues: LayertapQueues, datasetId: string, options: RetryDatasetOptions): Promise<RetryDatasetResult> {
  const status = await knownDatasetStatus(queues, datasetId);
  if (isActive(status.state)) {
    throw new ValidationError(ErrorCode.InvalidRequest, `dataset ${datasetId} is still ${activeState(status)}: retry once it has finished`);
  }
  // The run's configuration as submitted (the status shows weights without credentials; workers need them).
  const latest = (await queues.store.latestRun(datasetId)) ?? status.config;
  const selected = await options.failedSamples(latest);
  const selection: RetrySelection = Array.isArray(selected) ? { samples: selected } : selected;
  const finalizeOnly = selection.samples.length === 0;
  if (finalizeOnly && status.progress.finished) return { datasetId, retried: 0, chunks: 0 };
  const run = Math.max(latest.run, selection.lastRun ?? -1) + 1;
  const { earlier: _, ...rest } = latest;
  const config: DatasetConfig = {
    ...rest,
    run,
    totalSamples: selection.samples.length,
    submittedAt: new Date().toISOString(),
    ...(selection.earlier ? { earlier: selection.earlier } : {}),
  };
  const { failedSamples: __, ...submitOptions } = options;
  const submitted = await queues.submit(config, selection.samples, submitOptions);
  return { datasetId, run, retried: selection.samples.length, chunks: submitted.chunks, ...(finalizeOnly ? { finalizeOnly } : {}) };
}

export interface ForgetResult {
  datasetId: string;
  runs: number;
  /** BullMQ jobs removed (dataset jobs and chunk jobs still in Redis). */
  jobs: number;
}

/**
 * Removes a dataset from Redis (`layertap forget`): its runs, progress, results, sample index and failure
 * examples, and the jobs of every run still kept. The outputs are left as they are, so submitting the same
 * source again resumes from them. Refused while the dataset runs.
 */
export async function forgetDataset(queues: LayertapQueues, datasetId: string): Promise<ForgetResult> {
  const status = await knownDatasetStatus(queues, datasetId);
  if (isActive(status.state)) {
    throw new ValidationError(
      ErrorCode.InvalidRequest,
      `dataset ${datasetId} is still ${activeState(status)}: forget it once it has finished (\`layertap cancel ${datasetId}\` stops it)`,
    );
  }
  const runs = await queues.store.runs(datasetId);
  let jobs = 0;
  for (const config of runs) {
    const ids = Array.from({ length: Math.ceil(config.totalSamples / config.chunkSize) }, (_, chunk) => chunkJobId(datasetId, config.run, chunk));
    for (let i = 0; i < ids.length; i += 100) {
      const removed = await Promise.all(ids.slice(i, i + 100).map((id) => queues.chunks.remove(id)));
      jobs += removed.reduce((a, b) => a + b, 0);
    }
    jobs += await queues.datasets.remove(datasetJobId(datasetId, config.run), { removeChildren: true });
  }
  await queues.store.forget(datasetId);
  return { datasetId, runs: runs.length, jobs };
}
