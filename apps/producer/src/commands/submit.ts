import type { CliContext } from '../context';
import { ErrorCode, ValidationError, storedUri } from '@layertap/contracts';
import { openOutput } from '@layertap/storage';
import { planRun, prepareSubmission, sameSettings, type SubmitOptions } from '@layertap/pipeline';
import { datasetStatus, isActive } from '@layertap/queue';
import { readProducerConfig } from '../config';
import { createProgressBar } from '../progress-bar';
import { finalExitCode, printSummary, waitWithProgress } from './wait';

export interface SubmitCommandOptions extends SubmitOptions {
  wait: boolean;
  json: boolean;
  /** How long Redis keeps the dataset's state once it has finished, in seconds; undefined: until `forget`. */
  retentionSeconds?: number;
}

/**
 * `layertap submit`: validate everything, then enqueue the dataset flow. The same dataset id again adds
 * nothing while it runs or once it is done (`retry` runs its failures); one that stopped without finishing
 * (`failed`, or its jobs gone from Redis) is resumed: the samples the output does not hold as ok run as a
 * new run, whose finalisation writes the manifest.
 */
export async function submitCommand(ctx: CliContext, options: SubmitCommandOptions): Promise<number> {
  const download = createProgressBar(process.stderr, `downloading ${options.weights ? storedUri(options.weights) : 'weights'}`);
  const { memoryLimitBytes, maxSourceBytes, maxSamples } = ctx.config;
  const request = { ...options, ...(memoryLimitBytes ? { memoryLimitBytes } : {}), maxSourceBytes, maxSamples };
  const prepared = await prepareSubmission(request, { s3: ctx.s3, onWeightsProgress: download.update, allowHosts: readProducerConfig().allowHosts }).finally(download.done);
  // Runs as asked, but says so: another preprocessing than the training's, smaller batches, colliding file names.
  for (const warning of prepared.warnings) process.stderr.write(`layertap: warning: ${warning}\n`);
  const planned = { ...prepared.config, ...(options.retentionSeconds ? { retentionSeconds: options.retentionSeconds } : {}) };
  const queues = await ctx.queues();
  const { datasetId } = planned;
  const previous = await queues.store.runs(datasetId);
  const first = previous[0];
  if (first) {
    const difference = sameSettings(first, planned);
    if (difference) {
      throw new ValidationError(ErrorCode.InvalidRequest, `dataset ${datasetId} already exists with different settings: ${difference}; choose another --dataset-id`);
    }
  }
  const status = previous.length ? await datasetStatus(queues, datasetId) : undefined;
  let summary: Record<string, unknown>;
  if (status && (isActive(status.state) || status.state === 'done')) {
    // Running, or finished: nothing to add (a finished dataset's failures are `retry`'s to run).
    const { run } = status.config;
    summary = { datasetId, run, samples: status.progress.total, existing: true, state: status.state };
    if (!options.json) process.stdout.write(`dataset ${datasetId} is already submitted (run ${run}, ${status.state}): nothing added${status.next ? `; next: ${status.next}` : ''}\n`);
  } else {
    const plan = await planRun(openOutput(planned.output, { s3: ctx.s3 }), planned, prepared.samples, previous);
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
        process.stdout.write(`submitted dataset ${datasetId}: ${plan.samples.length} samples in ${submitted.chunks} chunks -> ${planned.output}/${datasetId}/\n`);
      }
      if (!planned.weights) {
        const pretrained = planned.model === 'vgg16' ? 'torchvision-imagenet or keras-imagenet for pretrained VGG16' : `a torchvision ${planned.model} state_dict (.pth or .safetensors) for pretrained weights`;
        process.stdout.write(`weights: random, seed ${planned.seed} (pass --weights ${pretrained})\n`);
      }
      else process.stdout.write(`weights: ${prepared.weightsDescription}\n`);
      process.stdout.write(`preprocessing: ${planned.preprocess} (${planned.preprocessReason})\n`);
    }
  }
  summary.output = `${planned.output}/${datasetId}/`;
  summary.weights = planned.weights ? storedUri(planned.weights) : `random, seed ${planned.seed}`;
  summary.preprocess = { mode: planned.preprocess, reason: planned.preprocessReason };
  if (prepared.warnings.length) summary.warnings = prepared.warnings;
  if (options.json && !options.wait) process.stdout.write(`${JSON.stringify(summary)}\n`);
  if (!options.wait) return 0;
  const final = await waitWithProgress(ctx, datasetId);
  if (options.json) process.stdout.write(`${JSON.stringify(final)}\n`);
  else printSummary(final);
  return finalExitCode(final);
}
