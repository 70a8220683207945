import type { S3Client } from '@aws-sdk/client-s3';
import {
  DatasetConfig,
  ErrorCode,
  ValidationError,
  idProblem,
  shortHash,
  type Dtype,
  type Layout,
  type Pool,
  type Preprocess,
  type Sample,
} from '@layertap/contracts';
import { layerOutputShape, resolveLayerSpecs } from '@layertap/model/layers';
import { openOutput } from '@layertap/storage';
import { createTrustedFetcher } from '@layertap/imaging';
import path from 'node:path';
import { normalizeUri, resolveSource } from './source';

export interface SubmitOptions {
  source: string;
  layers: string[];
  output: string;
  weights?: string;
  preprocess: Preprocess;
  imageSize: number;
  batchSize: number;
  chunkSize: number;
  dtype: Dtype;
  layout: Layout;
  pool: Pool;
  datasetId?: string;
  seed: number;
}

export interface Submission {
  config: DatasetConfig;
  samples: Sample[];
}

/** A readable default dataset id: the source's name plus a digest of what is being asked for. */
export function defaultDatasetId(options: SubmitOptions, samples: readonly Sample[]): string {
  const base = path.basename(options.source.replace(/\/+$/, '')).replace(/\.[^.]+$/, '').replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 60) || 'dataset';
  const digest = shortHash(
    JSON.stringify([samples.map((s) => [s.id, s.uri]), options.layers, options.output.replace(/\/+$/, ''), options.weights ?? null, options.preprocess, options.imageSize, options.dtype, options.layout, options.pool, options.seed]),
    10,
  );
  return `${base.replace(/^[-.]+/, '') || 'dataset'}-${digest}`;
}

/**
 * Validates everything about a submission before anything is enqueued: layers (listing the valid ones),
 * output URI and that it is writable, dataset id, and the source (readable, non-empty, ids safe and unique).
 */
export async function prepareSubmission(options: SubmitOptions, deps: { s3: S3Client; submittedAt?: Date }): Promise<Submission> {
  const layers = resolveLayerSpecs(options.layers);
  for (const layer of layers) layerOutputShape(layer.canonical, options.imageSize);
  if (options.datasetId !== undefined) {
    const problem = idProblem(options.datasetId);
    if (problem) throw new ValidationError(ErrorCode.InvalidId, `--dataset-id ${JSON.stringify(options.datasetId.slice(0, 80))} ${problem}`);
  }
  const writer = openOutput(options.output, { s3: deps.s3 });
  const samples = await resolveSource(options.source, { s3: deps.s3 });
  await writer.checkWritable();
  if (options.weights) {
    // Refuse a file that cannot serve the layers (missing tensor, wrong shape, notop asked for fc1) now,
    // not in every worker. Remote files land in the local cache, keyed by their content hash.
    const { loadWeights } = await import('@layertap/model/weights');
    await loadWeights(options.weights, {
      layers: layers.map((l) => l.spec),
      fetchBytes: (uri) => createTrustedFetcher({ s3: deps.s3 }).fetch(uri),
    });
  }
  const datasetId = options.datasetId ?? defaultDatasetId(options, samples);
  const config = DatasetConfig.parse({
    datasetId,
    output: options.output.replace(/\/+$/, ''),
    layers: layers.map((l) => ({ spec: l.spec, canonical: l.canonical })),
    // A local weights path is made absolute: workers resolve it, not this shell.
    ...(options.weights ? { weights: normalizeUri(options.weights, process.cwd()) } : {}),
    seed: options.seed,
    preprocess: options.preprocess,
    imageSize: options.imageSize,
    batchSize: options.batchSize,
    chunkSize: options.chunkSize,
    dtype: options.dtype,
    layout: options.layout,
    pool: options.pool,
    totalSamples: samples.length,
    submittedAt: (deps.submittedAt ?? new Date()).toISOString(),
    run: 0,
  });
  return { config, samples };
}

/** Settings that must not change between submissions of the same dataset id. */
export function sameSettings(a: DatasetConfig, b: DatasetConfig): string | undefined {
  const keys = ['output', 'weights', 'seed', 'preprocess', 'imageSize', 'dtype', 'layout', 'pool'] as const;
  for (const key of keys) if (a[key] !== b[key]) return `${key} (${String(a[key])} then ${String(b[key])})`;
  const la = a.layers.map((l) => l.spec).join(',');
  const lb = b.layers.map((l) => l.spec).join(',');
  if (la !== lb) return `layers (${la} then ${lb})`;
  return undefined;
}
