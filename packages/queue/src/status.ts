import { Job } from 'bullmq';
import { ErrorCode, storedUri, type DatasetConfig, type EngineInfo } from '@layertap/contracts';
import type { DatasetProgress } from './dataset-store';
import type { LayertapQueues } from './queues';
import { parseJobId } from './job-ids';
import { vanishedChildren } from './orphans';

export interface ChunkFailure {
  chunk: number;
  jobId: string;
  reason: string;
}

/**
 * Where a dataset stands. Every state has a way on (`nextStep` says it in words):
 * - `running`: its latest run's chunks are queued or running; `finishing`: a worker is writing the manifest;
 *   `cancelled`: a cancel was asked for and the run is still winding down. These three are *active*: retry,
 *   forget and a resubmission wait for them.
 * - `done`: the latest run's manifest is written (samples may have failed: `retry` runs them).
 * - `failed`: the latest run could not finish: writing its manifest failed for good. `retry` (or a resubmit)
 *   runs what is not ok and writes the manifest; `cancel` records what never ran as cancelled and writes it.
 * - `unknown`: the run's jobs are gone from Redis before it finished; `retry` or a resubmit resumes it.
 */
export type DatasetState = 'running' | 'finishing' | 'cancelled' | 'done' | 'failed' | 'unknown';

/** Whether a run of the dataset is going on: retry, forget and a resubmission wait for it to end. */
export function isActive(state: DatasetState): boolean {
  return state === 'running' || state === 'finishing' || state === 'cancelled';
}

export interface DatasetStatus {
  datasetId: string;
  state: DatasetState;
  config: DatasetConfig;
  progress: DatasetProgress;
  chunks: { total: number; done: number; failed: number; pending: number };
  chunkFailures: ChunkFailure[];
  cancelled: boolean;
  /** The engines that ran (or run) its chunks: engine, backend, device, why, warnings. */
  engines: EngineInfo[];
  /** The latest run's dataset job; `finishedOn` (ms since the epoch) once it completed or failed for good. */
  parentJob?: { id: string; state: string; failedReason?: string; finishedOn?: number };
  /** Workers connected to the chunk queue, as BullMQ lists them; absent where Redis does not say (CLIENT LIST refused). */
  workers?: number;
  /** Why the dataset stopped without finishing (`failed`, `unknown`). */
  reason?: string;
  /** Chunks of the latest run whose jobs disappeared before they ran (removed in Bull Board, lost by Redis). */
  missingChunks?: number[];
  /** What to do next, in words (always set by `datasetStatus`; statuses made by hand may leave it out). */
  next?: string;
}

/**
 * A dataset's samples as people count them: `failed` leaves out the samples a cancel stopped before they
 * ran (`cancelled`), which are not broken and which `retry` runs like the failed ones.
 */
export function sampleCounts(progress: Pick<DatasetProgress, 'ok' | 'failed' | 'pending' | 'total' | 'failures'>): {
  total: number;
  ok: number;
  failed: number;
  cancelled: number;
  pending: number;
} {
  const cancelled = Math.min(progress.failed, progress.failures[ErrorCode.Cancelled] ?? 0);
  return { total: progress.total, ok: progress.ok, failed: progress.failed - cancelled, cancelled, pending: progress.pending };
}

/** Samples in one chunk of a run: chunks are `chunkSize` long, the last one shorter. */
function chunkLength(config: DatasetConfig, chunk: number): number {
  return Math.max(0, Math.min(config.chunkSize, config.totalSamples - chunk * config.chunkSize));
}

/** Everything `layertap status` and the dashboard show about one dataset, from Redis alone. */
export async function datasetStatus(queues: LayertapQueues, datasetId: string): Promise<DatasetStatus | undefined> {
  const config = await queues.store.latestRun(datasetId);
  const progress = await queues.store.progress(datasetId);
  if (!config || !progress) return undefined;
  const [cancelled, engines, workers] = await Promise.all([
    queues.store.isCancelled(datasetId),
    queues.store.engines(datasetId),
    queues.chunks.getWorkersCount().catch(() => undefined),
  ]);
  const parent = await queues.datasetJob(datasetId, config.run);
  let state: DatasetState = 'unknown';
  let chunks = { total: 0, done: 0, failed: 0, pending: 0 };
  const chunkFailures: ChunkFailure[] = [];
  let parentJob: DatasetStatus['parentJob'];
  let reason: string | undefined;
  let missingChunks: number[] = [];
  if (parent) {
    const jobState = await parent.getState();
    const counts = await parent.getDependenciesCount();
    const total = (parent.data as { chunks?: number }).chunks ?? 0;
    const failed = (counts.ignored ?? 0) + (counts.failed ?? 0);
    const done = counts.processed ?? 0;
    chunks = { total, done, failed, pending: Math.max(0, total - done - failed) };
    for (const [key, failure] of Object.entries(await parent.getIgnoredChildrenFailures())) {
      const jobId = key.split(':').pop() ?? key;
      chunkFailures.push({ chunk: parseJobId(jobId)?.chunk ?? -1, jobId, reason: failure });
    }
    chunkFailures.sort((a, b) => a.chunk - b.chunk);
    parentJob = {
      id: parent.id ?? '',
      state: jobState,
      ...(parent.failedReason ? { failedReason: parent.failedReason } : {}),
      ...((jobState === 'completed' || jobState === 'failed') && parent.finishedOn ? { finishedOn: parent.finishedOn } : {}),
    };
    if (jobState === 'waiting-children') missingChunks = await missingChunksOf(queues, parent, total, counts);
    if (progress.finished || jobState === 'completed') state = 'done';
    else if (jobState === 'failed') state = 'failed';
    else if (jobState === 'waiting-children') state = 'running';
    else state = 'finishing';
  } else if (progress.finished) {
    state = 'done';
  }
  if (cancelled && (state === 'running' || state === 'finishing')) state = 'cancelled';
  if (!progress.finished) await countFailedChunks(queues, config, progress, chunkFailures);
  if (state === 'failed') reason = `writing the manifest failed: ${parentJob?.failedReason ?? 'no reason recorded'}`;
  if (state === 'unknown') reason = `the jobs of run ${config.run} are gone from Redis (removed, or Redis lost them) before it finished`;
  if (missingChunks.length && state === 'running' && missingChunks.length === chunks.pending) {
    // Nothing left that can run: the parent would wait for the vanished chunks forever.
    state = 'unknown';
  }
  if (missingChunks.length) {
    reason =
      `${missingChunks.length === 1 ? 'chunk' : 'chunks'} ${missingChunks.join(', ')} of run ${config.run} disappeared from Redis before ${missingChunks.length === 1 ? 'it' : 'they'} ran ` +
      '(removed in Bull Board, or lost by Redis): their samples are not run; `layertap retry` runs them';
  }
  const status = {
    datasetId,
    state,
    // The latest run's configuration as shown: a weights URI without credentials (`storedUri`).
    config: config.weights ? { ...config, weights: storedUri(config.weights) } : config,
    progress,
    chunks,
    chunkFailures,
    cancelled,
    engines,
    ...(parentJob ? { parentJob } : {}),
    ...(workers !== undefined ? { workers } : {}),
    ...(reason ? { reason } : {}),
    ...(missingChunks.length ? { missingChunks } : {}),
  };
  return { ...status, next: nextStep(status) } satisfies DatasetStatus;
}

/**
 * Chunks of a run still waited for whose jobs are gone: removed from the parent's dependencies (a removed
 * job) or still listed there but deleted (Bull Board's "Empty"). Costs one EXISTS per unprocessed chunk, and a
 * listing of the dependencies only when their counts do not add up.
 */
async function missingChunksOf(
  queues: LayertapQueues,
  parent: Job,
  total: number,
  counts: { processed?: number; unprocessed?: number; failed?: number; ignored?: number },
): Promise<number[]> {
  const missing = new Set((await vanishedChildren(parent, queues.options.connection)).map((id) => parseJobId(id)?.chunk ?? -1));
  const listed = (counts.processed ?? 0) + (counts.unprocessed ?? 0) + (counts.failed ?? 0) + (counts.ignored ?? 0);
  if (listed < total) {
    const known = new Set<number>();
    let cursor = 0;
    do {
      const page = await parent.getDependencies({ unprocessed: { cursor, count: 1000 } });
      for (const key of page.unprocessed ?? []) known.add(parseJobId(key.split(':').pop() ?? key)?.chunk ?? -1);
      cursor = page.nextUnprocessedCursor ?? 0;
    } while (cursor !== 0);
    cursor = 0;
    do {
      const page = await parent.getDependencies({ processed: { cursor, count: 1000 } });
      for (const key of Object.keys(page.processed ?? {})) known.add(parseJobId(key.split(':').pop() ?? key)?.chunk ?? -1);
      cursor = page.nextProcessedCursor ?? 0;
    } while (cursor !== 0);
    for (const key of Object.keys(await parent.getIgnoredChildrenFailures())) known.add(parseJobId(key.split(':').pop() ?? key)?.chunk ?? -1);
    for (const key of (await parent.getDependencies({ failed: { cursor: 0, count: 100_000 } })).failed ?? []) known.add(parseJobId(key.split(':').pop() ?? key)?.chunk ?? -1);
    for (let chunk = 0; chunk < total; chunk++) if (!known.has(chunk)) missing.add(chunk);
  }
  missing.delete(-1);
  return [...missing].sort((a, b) => a - b);
}

/**
 * A chunk that failed for good reports nothing, and its samples get their manifest lines only when the
 * dataset is finished: until then they count as failed (`chunk_failed`), not pending.
 */
async function countFailedChunks(queues: LayertapQueues, config: DatasetConfig, progress: DatasetProgress, failures: readonly ChunkFailure[]): Promise<void> {
  if (failures.length === 0) return;
  const reported = new Set((await queues.store.chunkProgress(config.datasetId)).filter((c) => c.run === config.run && c.final).map((c) => c.chunk));
  for (const failure of failures) {
    if (failure.chunk < 0 || reported.has(failure.chunk)) continue;
    const n = Math.min(chunkLength(config, failure.chunk), progress.pending);
    progress.failed += n;
    progress.pending -= n;
    progress.failures[ErrorCode.ChunkFailed] = (progress.failures[ErrorCode.ChunkFailed] ?? 0) + n;
  }
}

/** Failure reasons that the same input meets again on a retry: the file is missing, empty, broken or refused. */
const PERMANENT_FAILURES: ReadonlySet<string> = new Set([
  ErrorCode.NotFound,
  ErrorCode.EmptyFile,
  ErrorCode.DecodeFailed,
  ErrorCode.PixelLimit,
  ErrorCode.TooLarge,
  ErrorCode.UnsupportedScheme,
  ErrorCode.PathNotAllowed,
  ErrorCode.AddressBlocked,
]);

const START_WORKER = 'no worker is connected: start `layertap-worker` with the same REDIS_URL and LAYERTAP_QUEUE_PREFIX';

/** The next step for a dataset in its state, in words (`layertap status` prints it). */
export function nextStep(status: DatasetStatus): string {
  const id = status.datasetId;
  const { failed, pending } = status.progress;
  const noWorker = status.workers === 0;
  if (status.missingChunks?.length && (status.state === 'unknown' || status.state === 'failed')) {
    return `\`layertap retry ${id}\` runs the samples of the missing chunks and any other that is not ok, and writes the manifest`;
  }
  switch (status.state) {
    case 'running':
      return noWorker ? `${START_WORKER} (or stop it: \`layertap cancel ${id}\`)` : `wait (\`layertap status ${id} --watch\`), or stop it: \`layertap cancel ${id}\``;
    case 'finishing':
      return noWorker ? `${START_WORKER}: one writes the manifest` : 'wait: a worker is writing the manifest';
    case 'cancelled':
      return noWorker
        ? `${START_WORKER}: it records the ${pending} samples not run as cancelled`
        : `wait: workers stop after their current batch and record the samples not run as cancelled; then \`layertap retry ${id}\` runs them`;
    case 'done': {
      if (failed === 0) return `nothing: every sample is ok; \`layertap forget ${id}\` drops its state from Redis (the outputs stay)`;
      const forget = `\`layertap forget ${id}\` drops its state from Redis (the outputs stay)`;
      const permanent = Object.entries(status.progress.failures).filter(([code]) => PERMANENT_FAILURES.has(code));
      const stuck = permanent.reduce((sum, [, n]) => sum + n, 0);
      // A broken or missing file fails again however often it is retried: say what fixes it instead.
      if (stuck === failed) {
        const reasons = permanent.map(([code, n]) => `${code} ${n}`).join(', ');
        return `the ${failed} failed samples are broken or missing files (${reasons}): a retry alone fails them again; replace or fix the files, then \`layertap retry ${id}\`; or leave them (${forget})`;
      }
      const note = stuck > 0 ? ` (${stuck} of them broken or missing files, which fail again until fixed)` : '';
      return `\`layertap retry ${id}\` runs the ${failed} failed samples again${note}; ${forget}`;
    }
    case 'failed':
      return failed + pending > 0
        ? `fix the cause above, then \`layertap retry ${id}\` runs the ${failed + pending} samples that are not ok and writes the manifest; or \`layertap cancel ${id}\` writes the manifest now, with what never ran recorded as cancelled`
        : `fix the cause above, then \`layertap retry ${id}\` writes the manifest (every sample is stored)`;
    case 'unknown':
      return `submit the same source again: it runs what the output does not hold as ok and writes the manifest (\`layertap retry ${id}\` does the same for the samples recorded so far)`;
  }
}

/** The chunk job of a run, if Redis still has it. */
export async function chunkJob(queues: LayertapQueues, jobId: string): Promise<Job | undefined> {
  return (await Job.fromId(queues.chunks, jobId)) ?? undefined;
}
