import type { CliContext } from '../context';
import { ErrorCode, ValidationError, storedUri } from '@layertap/contracts';
import { openOutput } from '@layertap/storage';
import path from 'node:path';
import { planRun, prepareSubmission, sameSettings, skippedWarning, type RunPlan, type SubmitOptions } from '@layertap/submission';
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
 * nothing while it runs; once it is done, the samples new to the source run as a new run (stored ones are
 * skipped, failures are `retry`'s); one that stopped without finishing (`failed`, or its jobs gone from
 * Redis) is resumed: the samples the output does not hold as ok run as a new run, whose finalisation writes
 * the manifest.
 */
/** The rest of a grown dataset in words: stored, failed earlier, removed from the source. */
function describeCounts(plan: RunPlan): string {
  const parts = [`${plan.alreadyDone} already stored`];
  if (plan.failedEarlier) parts.push(`${plan.failedEarlier} failed earlier (\`layertap retry ${plan.config.datasetId}\` runs them)`);
  parts.push(`${plan.removed} removed from the source (their outputs and manifest lines stay)`);
  return parts.join(', ');
}

export async function submitCommand(ctx: CliContext, options: SubmitCommandOptions): Promise<number> {
  const download = createProgressBar(process.stderr, `downloading ${options.weights ? storedUri(options.weights) : 'weights'}`);
  const { memoryLimitBytes, maxSourceBytes, maxSamples } = ctx.config;
  const request = { ...options, ...(memoryLimitBytes ? { memoryLimitBytes } : {}), maxSourceBytes, maxSamples };
  // Redis down is said before the weights are read (their header; a Keras .h5 whole); connecting writes nothing.
  const beforeWeights = () => ctx.connect();
  const prepared = await prepareSubmission(request, { s3: ctx.s3, onWeightsProgress: download.update, allowHosts: readProducerConfig().allowHosts, beforeWeights }).finally(download.done);
  // Runs as asked, but says so: another preprocessing than the training's, smaller batches, colliding file names.
  for (const warning of prepared.warnings) process.stderr.write(`layertap: warning: ${warning}\n`);
  // Not a warning (a README beside the photos is normal), but said: a file left out silently looks lost.
  const skipped = skippedWarning(prepared.skipped);
  if (skipped && !options.json) process.stdout.write(`${skipped}\n`);
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
  if (status && isActive(status.state)) {
    // A run is going on: it owns the dataset until it ends (then a resubmission adds what is new).
    const { run } = status.config;
    summary = { datasetId, run, samples: status.progress.total, existing: true, state: status.state };
    if (!options.json) process.stdout.write(`dataset ${datasetId} is already submitted (run ${run}, ${status.state}): nothing added while it runs${status.next ? `; next: ${status.next}` : ''}\n`);
  } else {
    // A finished dataset grows: the samples new to the source run as a new run, the stored ones are skipped
    // (its failures are `retry`'s). One that stopped without finishing resumes: everything not ok runs.
    const finished = status?.state === 'done';
    const plan = await planRun(openOutput(planned.output, { s3: ctx.s3 }), planned, prepared.samples, previous, { rerunFailed: !finished });
    const counts = { added: plan.added, alreadyStored: plan.alreadyDone, failedEarlier: plan.failedEarlier, removedFromSource: plan.removed };
    if (finished && plan.samples.length === 0) {
      summary = { datasetId, run: status.config.run, samples: status.progress.total, existing: true, state: status.state, ...counts };
      if (!options.json) {
        process.stdout.write(
          `dataset ${datasetId} is already submitted (run ${status.config.run}, done): nothing new in the source; ${describeCounts(plan)}` +
            `${status.next ? `; next: ${status.next}` : ''}\n`,
        );
      }
    } else {
      const submitted = await queues.submit(plan.config, plan.samples, { attempts: ctx.config.chunkAttempts, backoffMs: ctx.config.chunkBackoffMs });
      summary = { datasetId, run: plan.config.run, samples: plan.samples.length, alreadyDone: plan.alreadyDone, ...counts, chunks: submitted.chunks, existing: false };
      if (!options.json) {
        if (finished) {
          process.stdout.write(
            `adding to dataset ${datasetId} as run ${plan.config.run}: ${plan.added} new samples to run in ${submitted.chunks} chunks; ${describeCounts(plan)}\n`,
          );
        } else if (plan.config.run > 0) {
          process.stdout.write(
            `resuming dataset ${datasetId} as run ${plan.config.run}: ${plan.alreadyDone} samples already stored, ${plan.samples.length} to run in ${submitted.chunks} chunks` +
              `${plan.added ? ` (${plan.added} new to the source)` : ''}${plan.removed ? `; ${plan.removed} removed from the source (their outputs stay)` : ''}\n`,
          );
        } else {
          process.stdout.write(`submitted dataset ${datasetId}: ${plan.samples.length} samples in ${submitted.chunks} chunks -> ${planned.output}/${datasetId}/\n`);
        }
        if (planned.onnx) process.stdout.write(`model: ${prepared.weightsDescription}\n`);
        else if (!planned.weights) {
          const pretrained = planned.model === 'vgg16' ? 'torchvision-imagenet or keras-imagenet for pretrained VGG16' : `a torchvision ${planned.model} state_dict (.pth or .safetensors) for pretrained weights`;
          process.stdout.write(`weights: random, seed ${planned.seed} (pass --weights ${pretrained})\n`);
        }
        else process.stdout.write(`weights: ${prepared.weightsDescription}\n`);
        process.stdout.write(`preprocessing: ${planned.preprocess} (${planned.preprocessReason})\n`);
      }
    }
  }
  summary.output = `${planned.output}/${datasetId}/`;
  summary.weights = planned.onnx ? 'in the ONNX file' : planned.weights ? storedUri(planned.weights) : `random, seed ${planned.seed}`;
  if (planned.onnx) summary.model = { file: storedUri(planned.onnx.uri), sha256: planned.onnx.sha256, tensors: planned.layers.map((l) => ({ spec: l.spec, tensor: l.canonical, shape: l.shape })) };
  summary.preprocess = { mode: planned.preprocess, reason: planned.preprocessReason };
  if (prepared.warnings.length) summary.warnings = prepared.warnings;
  if (prepared.skipped.length) summary.skipped = { files: prepared.skipped.length, examples: prepared.skipped.slice(0, 3).map((f) => path.basename(f)) };
  if (options.json && !options.wait) process.stdout.write(`${JSON.stringify(summary)}\n`);
  if (!options.wait) return 0;
  const final = await waitWithProgress(ctx, datasetId);
  if (options.json) process.stdout.write(`${JSON.stringify(final)}\n`);
  else printSummary(final);
  return finalExitCode(final);
}
