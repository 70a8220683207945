import { forgetDataset, knownDatasetStatus, retryDataset, cancelDataset, retrySelection } from '@layertap/datasets';
import { openOutput } from '@layertap/storage';
import type { CliContext } from '../context';
import { version } from '../version';
import { formatStatus, watchDataset } from '../progress';
import { finalExitCode, printSummary, waitWithProgress } from './wait';

export interface StatusCommandOptions {
  json: boolean;
  /** Refresh until the dataset's latest run finishes (exit codes as `--wait`). */
  watch?: boolean;
  /** Refresh interval of `--watch` in ms (default 1000). */
  intervalMs?: number;
}

/**
 * `layertap status <id>`: counts, failures by reason, chunk states, why it stopped, the output location and
 * the next step. With `--watch` the view refreshes in the terminal until the run finishes (JSON lines with
 * `--json`).
 */
export async function statusCommand(ctx: CliContext, datasetId: string, options: StatusCommandOptions): Promise<number> {
  const queues = await ctx.queues();
  const status = await knownDatasetStatus(queues, datasetId);
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
  return finalExitCode(final);
}

/**
 * `layertap cancel <id>`: a running dataset's workers stop after their current batch and record what did not
 * run as cancelled; a dataset that stopped without finishing is closed here (what never ran is recorded as
 * cancelled and the manifest written); a done one has nothing to cancel.
 */
export async function cancelCommand(ctx: CliContext, datasetId: string, options: { json: boolean }): Promise<number> {
  const queues = await ctx.queues();
  const outcome = await cancelDataset(queues, datasetId, { output: (uri) => openOutput(uri, { s3: ctx.s3 }), version });
  const { status, result } = outcome;
  if (options.json) {
    const json = {
      datasetId,
      action: outcome.action,
      cancelled: outcome.action !== 'none',
      ...(result ? { recordedCancelled: result.cancelled, ok: result.ok, failed: result.failed } : {}),
    };
    process.stdout.write(`${JSON.stringify(json)}\n`);
    return 0;
  }
  if (outcome.action === 'none') {
    process.stdout.write(`dataset ${datasetId} is done: nothing to cancel${status.next ? `; next: ${status.next}` : ''}\n`);
  } else if (outcome.action === 'requested') {
    const waiting = status.workers === 0 ? ' (no worker is connected: the next one to start records them)' : '';
    process.stdout.write(
      `cancelled ${datasetId}: workers stop after their current batch; unprocessed samples are marked cancelled${waiting} (use \`layertap retry\` to run them)\n`,
    );
  } else if (result) {
    process.stdout.write(
      `cancelled ${datasetId}: it had stopped (${status.state}); recorded the ${result.cancelled} samples that never ran to the end as cancelled ` +
        `and wrote the manifest: ${result.ok} ok, ${result.failed} failed (\`layertap retry ${datasetId}\` runs the failed and cancelled ones)\n`,
    );
  }
  return 0;
}

/**
 * `layertap retry <id>`: runs every sample that is not ok (failed, cancelled, in a failed chunk, never run)
 * of a dataset that is not running, as a new run; one that never finished gets its manifest written even
 * when every sample is ok.
 */
export async function retryCommand(ctx: CliContext, datasetId: string, options: { wait: boolean; json: boolean }): Promise<number> {
  const queues = await ctx.queues();
  const retried = await retryDataset(queues, datasetId, {
    failedSamples: (config) => retrySelection(queues, openOutput(config.output, { s3: ctx.s3 }), datasetId),
    attempts: ctx.config.chunkAttempts,
    backoffMs: ctx.config.chunkBackoffMs,
  });
  if (retried.run === undefined) {
    process.stdout.write(options.json ? `${JSON.stringify({ datasetId, retried: 0 })}\n` : `dataset ${datasetId} has no failed samples: nothing to retry\n`);
    return 0;
  }
  const { run, chunks } = retried;
  if (!options.wait || !options.json) {
    process.stdout.write(
      options.json
        ? `${JSON.stringify({ datasetId, run, retried: retried.retried, chunks, ...(retried.finalizeOnly ? { finalizeOnly: true } : {}) })}\n`
        : retried.finalizeOnly
          ? `every sample of ${datasetId} is stored ok: run ${run} writes the manifest\n`
          : `retrying ${retried.retried} samples of ${datasetId} that are not ok as run ${run} (${chunks} chunks)\n`,
    );
  }
  if (!options.wait) return 0;
  const final = await waitWithProgress(ctx, datasetId);
  if (options.json) process.stdout.write(`${JSON.stringify(final)}\n`);
  else printSummary(final);
  return finalExitCode(final);
}

/** `layertap forget <id>`: removes the dataset's state, sample index and jobs from Redis; the outputs stay. */
export async function forgetCommand(ctx: CliContext, datasetId: string, options: { json: boolean }): Promise<number> {
  const forgotten = await forgetDataset(await ctx.queues(), datasetId);
  process.stdout.write(
    options.json
      ? `${JSON.stringify(forgotten)}\n`
      : `forgot ${datasetId}: its state, sample index and ${forgotten.jobs} jobs are gone from Redis; the outputs are untouched (submitting it again resumes from them)\n`,
  );
  return 0;
}
