import { DatasetReader } from '@layertap/pipeline';
import { cancelDataset, datasetStatus, retryDataset, unknownDatasetError } from '@layertap/queue';
import type { CliContext } from '../context';
import { formatStatus, watchDataset } from '../progress';
import { printSummary, waitWithProgress } from './wait';

export interface StatusCommandOptions {
  json: boolean;
  /** Refresh until the dataset's latest run finishes (exit 0 when it is done, 1 otherwise). */
  watch?: boolean;
  /** Refresh interval of `--watch` in ms (default 1000). */
  intervalMs?: number;
}

/**
 * `layertap status <id>`: counts, failures by reason, chunk states and the output location. With `--watch`
 * the view refreshes in the terminal until the run finishes (JSON lines with `--json`).
 */
export async function statusCommand(ctx: CliContext, datasetId: string, options: StatusCommandOptions): Promise<number> {
  const queues = await ctx.queues();
  const status = await datasetStatus(queues, datasetId);
  if (!status) throw unknownDatasetError(datasetId);
  if (!options.watch) {
    process.stdout.write(options.json ? `${JSON.stringify(status)}\n` : `${formatStatus(status)}\n`);
    return 0;
  }
  let redisDown = false;
  const final = await watchDataset(queues, datasetId, {
    json: options.json,
    ...(options.intervalMs ? { intervalMs: options.intervalMs } : {}),
    onError: (err) => {
      if (!redisDown) process.stderr.write(`waiting for Redis: ${err.message}\n`);
      redisDown = true;
    },
  });
  return final.state === 'done' ? 0 : 1;
}

/** `layertap cancel <id>`: samples not yet run are recorded as failed (`cancelled`); running batches finish. */
export async function cancelCommand(ctx: CliContext, datasetId: string, options: { json: boolean }): Promise<number> {
  await cancelDataset(await ctx.queues(), datasetId);
  process.stdout.write(
    options.json
      ? `${JSON.stringify({ datasetId, cancelled: true })}\n`
      : `cancelled ${datasetId}: workers stop after their current batch; unprocessed samples are marked cancelled (use \`layertap retry\` to run them)\n`,
  );
  return 0;
}

/** `layertap retry <id>`: runs the failed (and cancelled) samples of a finished dataset again, as a new run. */
export async function retryCommand(ctx: CliContext, datasetId: string, options: { wait: boolean; json: boolean }): Promise<number> {
  const queues = await ctx.queues();
  const retried = await retryDataset(queues, datasetId, {
    failedSamples: (config) => new DatasetReader({ output: config.output, datasetId, s3: ctx.s3 }).failedSamples(),
    attempts: ctx.config.chunkAttempts,
    backoffMs: ctx.config.chunkBackoffMs,
  });
  if (retried.retried === 0) {
    process.stdout.write(options.json ? `${JSON.stringify({ datasetId, retried: 0 })}\n` : `dataset ${datasetId} has no failed samples\n`);
    return 0;
  }
  const { run, chunks } = retried;
  if (!options.wait || !options.json) {
    process.stdout.write(
      options.json
        ? `${JSON.stringify({ datasetId, run, retried: retried.retried, chunks })}\n`
        : `retrying ${retried.retried} failed samples of ${datasetId} as run ${run} (${chunks} chunks)\n`,
    );
  }
  if (!options.wait) return 0;
  const final = await waitWithProgress(ctx, datasetId);
  if (options.json) process.stdout.write(`${JSON.stringify(final)}\n`);
  else printSummary(final);
  return final.state === 'done' ? 0 : 1;
}
