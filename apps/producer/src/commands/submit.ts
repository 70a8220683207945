import type { CliContext } from '../context';
import { ErrorCode, ValidationError, storedUri } from '@layertap/contracts';
import { openOutput } from '@layertap/storage';
import { planRun, prepareSubmission, sameSettings, type SubmitOptions } from '@layertap/pipeline';
import { createProgressBar } from '../progress-bar';
import { printSummary, waitWithProgress } from './wait';

export interface SubmitCommandOptions extends SubmitOptions {
  wait: boolean;
  json: boolean;
}

/** `layertap submit`: validate everything, then enqueue the dataset flow (or find it already there). */
export async function submitCommand(ctx: CliContext, options: SubmitCommandOptions): Promise<number> {
  const download = createProgressBar(process.stderr, `downloading ${options.weights ? storedUri(options.weights) : 'weights'}`);
  const { memoryLimitBytes, maxSourceBytes, maxSamples } = ctx.config;
  const request = { ...options, ...(memoryLimitBytes ? { memoryLimitBytes } : {}), maxSourceBytes, maxSamples };
  const prepared = await prepareSubmission(request, { s3: ctx.s3, onWeightsProgress: download.update }).finally(download.done);
  // Runs as asked, but says so: another preprocessing than the training's, smaller batches, colliding file names.
  for (const warning of prepared.warnings) process.stderr.write(`layertap: warning: ${warning}\n`);
  const queues = await ctx.queues();
  const { datasetId } = prepared.config;
  const previous = await queues.store.runs(datasetId);
  const first = previous[0];
  if (first) {
    const difference = sameSettings(first, prepared.config);
    if (difference) {
      throw new ValidationError(ErrorCode.InvalidRequest, `dataset ${datasetId} already exists with different settings: ${difference}; choose another --dataset-id`);
    }
  }
  const latest = previous.at(-1);
  const live = latest ? await queues.datasetJob(datasetId, latest.run) : undefined;
  let summary: Record<string, unknown>;
  if (latest && live) {
    // The latest run is still in Redis: nothing to add, whatever state it is in.
    const state = await live.getState();
    summary = { datasetId, run: latest.run, samples: latest.totalSamples, existing: true, state };
    if (!options.json) process.stdout.write(`dataset ${datasetId} is already submitted (run ${latest.run}, ${state}): nothing added\n`);
  } else {
    const plan = await planRun(openOutput(prepared.config.output, { s3: ctx.s3 }), prepared.config, prepared.samples, previous);
    const submitted = await queues.submit(plan.config, plan.samples, { attempts: ctx.config.chunkAttempts, backoffMs: ctx.config.chunkBackoffMs });
    summary = {
      datasetId,
      run: plan.config.run,
      samples: plan.samples.length,
      alreadyDone: plan.alreadyDone,
      chunks: submitted.chunks,
      existing: false,
    };
    if (!options.json) {
      if (plan.config.run > 0) {
        process.stdout.write(
          `resuming dataset ${datasetId} as run ${plan.config.run}: ${plan.alreadyDone} samples already stored, ${plan.samples.length} to run in ${submitted.chunks} chunks\n`,
        );
      } else {
        process.stdout.write(`submitted dataset ${datasetId}: ${plan.samples.length} samples in ${submitted.chunks} chunks -> ${prepared.config.output}/${datasetId}/\n`);
      }
      if (!prepared.config.weights) process.stdout.write(`weights: random, seed ${prepared.config.seed} (pass --weights torchvision-imagenet or keras-imagenet for pretrained VGG16)\n`);
      else process.stdout.write(`weights: ${prepared.weightsDescription}\n`);
      process.stdout.write(`preprocessing: ${prepared.config.preprocess} (${prepared.config.preprocessReason})\n`);
    }
  }
  summary.output = `${prepared.config.output}/${datasetId}/`;
  summary.weights = prepared.config.weights ? storedUri(prepared.config.weights) : `random, seed ${prepared.config.seed}`;
  summary.preprocess = { mode: prepared.config.preprocess, reason: prepared.config.preprocessReason };
  if (prepared.warnings.length) summary.warnings = prepared.warnings;
  if (options.json && !options.wait) process.stdout.write(`${JSON.stringify(summary)}\n`);
  if (!options.wait) return 0;
  const status = await waitWithProgress(ctx, datasetId);
  if (options.json) process.stdout.write(`${JSON.stringify(status)}\n`);
  else printSummary(status);
  return status.state === 'done' ? 0 : 1;
}
