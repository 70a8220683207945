import { ErrorCode, ManifestLine, ValidationError, type Sample } from '@layertap/contracts';
import { datasetStatus } from '@layertap/queue';
import { manifestKey, openOutput } from '@layertap/storage';
import type { CliContext } from '../context';
import { formatStatus } from '../progress';
import { printSummary, waitWithProgress } from './wait';

function unknownDataset(datasetId: string): ValidationError {
  return new ValidationError(ErrorCode.InvalidRequest, `no dataset "${datasetId}" in Redis (check REDIS_URL and LAYERTAP_QUEUE_PREFIX)`);
}

/** `layertap status <id>`: counts, failures by reason, chunk states and the output location. */
export async function statusCommand(ctx: CliContext, datasetId: string, options: { json: boolean }): Promise<number> {
  const status = await datasetStatus(await ctx.queues(), datasetId);
  if (!status) throw unknownDataset(datasetId);
  process.stdout.write(options.json ? `${JSON.stringify(status)}\n` : `${formatStatus(status)}\n`);
  return 0;
}

/** `layertap cancel <id>`: samples not yet run are recorded as failed (`cancelled`); running batches finish. */
export async function cancelCommand(ctx: CliContext, datasetId: string, options: { json: boolean }): Promise<number> {
  const queues = await ctx.queues();
  const runs = await queues.store.runs(datasetId);
  if (runs.length === 0) throw unknownDataset(datasetId);
  await queues.store.cancel(datasetId);
  process.stdout.write(
    options.json
      ? `${JSON.stringify({ datasetId, cancelled: true })}\n`
      : `cancelled ${datasetId}: workers stop after their current batch; unprocessed samples are marked cancelled (use \`layertap retry\` to run them)\n`,
  );
  return 0;
}

/** Reads the failed samples of a finished dataset from its manifest. */
async function failedSamples(ctx: CliContext, output: string, datasetId: string): Promise<Sample[]> {
  const writer = openOutput(output, { s3: ctx.s3 });
  const body = await writer.get(manifestKey(datasetId));
  if (!body) throw new ValidationError(ErrorCode.InvalidRequest, `dataset ${datasetId} has no manifest yet: wait for it to finish`);
  return body
    .toString('utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => ManifestLine.parse(JSON.parse(l)))
    .filter((l) => l.status === 'failed')
    .map((l) => ({ id: l.id, uri: l.uri }));
}

/** `layertap retry <id>`: runs the failed (and cancelled) samples of a finished dataset again, as a new run. */
export async function retryCommand(ctx: CliContext, datasetId: string, options: { wait: boolean; json: boolean }): Promise<number> {
  const queues = await ctx.queues();
  const status = await datasetStatus(queues, datasetId);
  if (!status) throw unknownDataset(datasetId);
  if (!status.progress.finished) {
    throw new ValidationError(ErrorCode.InvalidRequest, `dataset ${datasetId} is still ${status.state}: retry once it has finished`);
  }
  const samples = await failedSamples(ctx, status.config.output, datasetId);
  if (samples.length === 0) {
    process.stdout.write(options.json ? `${JSON.stringify({ datasetId, retried: 0 })}\n` : `dataset ${datasetId} has no failed samples\n`);
    return 0;
  }
  const run = status.config.run + 1;
  const config = { ...status.config, run, totalSamples: samples.length, submittedAt: new Date().toISOString() };
  const submitted = await queues.submit(config, samples, { attempts: ctx.config.chunkAttempts, backoffMs: ctx.config.chunkBackoffMs });
  if (!options.wait || !options.json) {
    process.stdout.write(
      options.json
        ? `${JSON.stringify({ datasetId, run, retried: samples.length, chunks: submitted.chunks })}\n`
        : `retrying ${samples.length} failed samples of ${datasetId} as run ${run} (${submitted.chunks} chunks)\n`,
    );
  }
  if (!options.wait) return 0;
  const final = await waitWithProgress(ctx, datasetId);
  if (options.json) process.stdout.write(`${JSON.stringify(final)}\n`);
  else printSummary(final);
  return final.state === 'done' ? 0 : 1;
}
