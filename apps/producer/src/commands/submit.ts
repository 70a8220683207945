import type { CliContext } from '../context';
import { ErrorCode, ValidationError } from '@layertap/contracts';
import { prepareSubmission, sameSettings, type SubmitOptions } from '../submission';
import { printSummary, waitWithProgress } from './wait';

export interface SubmitCommandOptions extends SubmitOptions {
  wait: boolean;
  json: boolean;
}

/** `layertap submit`: validate everything, then enqueue the dataset flow (or find it already there). */
export async function submitCommand(ctx: CliContext, options: SubmitCommandOptions): Promise<number> {
  const { config, samples } = await prepareSubmission(options, { s3: ctx.s3 });
  const queues = await ctx.queues();
  const previous = await queues.store.runs(config.datasetId);
  const first = previous[0];
  if (first) {
    const difference = sameSettings(first, config);
    if (difference) {
      throw new ValidationError(ErrorCode.InvalidRequest, `dataset ${config.datasetId} already exists with different settings: ${difference}; choose another --dataset-id`);
    }
  }
  const latest = previous.at(-1);
  const submitted = latest
    ? await queues.submit({ ...latest }, samples).then((r) => ({ ...r, run: latest.run }))
    : await queues.submit(config, samples).then((r) => ({ ...r, run: 0 }));
  const summary = {
    datasetId: config.datasetId,
    run: submitted.run,
    samples: samples.length,
    chunks: submitted.chunks,
    existing: submitted.existing,
    ...(submitted.state ? { state: submitted.state } : {}),
    output: `${config.output}/${config.datasetId}/`,
    weights: config.weights ?? `random, seed ${config.seed}`,
  };
  if (options.json && !options.wait) process.stdout.write(`${JSON.stringify(summary)}\n`);
  else if (!options.json) {
    process.stdout.write(
      submitted.existing
        ? `dataset ${config.datasetId} is already submitted (run ${submitted.run}, ${submitted.state}): nothing added\n`
        : `submitted dataset ${config.datasetId}: ${samples.length} samples in ${submitted.chunks} chunks -> ${summary.output}\n`,
    );
    if (!config.weights) process.stdout.write(`weights: random, seed ${config.seed} (pass --weights for pretrained VGG16)\n`);
  }
  if (!options.wait) return 0;
  const status = await waitWithProgress(ctx, config.datasetId);
  if (options.json) process.stdout.write(`${JSON.stringify(status)}\n`);
  else printSummary(status);
  return status.state === 'done' ? 0 : 1;
}
