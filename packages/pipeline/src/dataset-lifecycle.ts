import type { Logger } from '@layertap/config';
import { isActive, knownDatasetStatus, type DatasetStatus, type LayertapQueues, type RetrySelection } from '@layertap/queue';
import type { OutputWriter } from '@layertap/storage';
import { selectRetry, takeCensus } from './dataset-census';
import { closeDataset, type CloseDatasetResult } from './finalize-dataset';

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
export async function cancelOrCloseDataset(queues: LayertapQueues, datasetId: string, options: CancelOptions): Promise<CancelOutcome> {
  const status = await knownDatasetStatus(queues, datasetId);
  if (status.state === 'done') return { action: 'none', status };
  await queues.store.cancel(datasetId);
  if (isActive(status.state)) return { action: 'requested', status };
  const writer = options.output(status.config.output);
  const census = await takeCensus(queues, writer, datasetId);
  const result = await closeDataset(census, { queues, writer, dataset: status.config, version: options.version, cancelNotRun: true, ...(options.log ? { log: options.log } : {}) });
  return { action: 'closed', status, result };
}

/** What `layertap retry` runs, read from the outputs and Redis: every sample of the dataset that is not ok. */
export async function retrySelection(queues: LayertapQueues, writer: OutputWriter, datasetId: string): Promise<RetrySelection> {
  return selectRetry(await takeCensus(queues, writer, datasetId));
}
