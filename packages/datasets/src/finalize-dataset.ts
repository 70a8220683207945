import { UnrecoverableError, type Job } from 'bullmq';
import {
  ChunkResult,
  ErrorCode,
  PREPROCESSING,
  storedUri,
  type DatasetConfig,
  type DatasetJob,
  type DatasetResult,
  type EngineInfo,
  type ManifestLine,
} from '@layertap/contracts';
import { datasetKey, manifestKey, partKey, type OutputWriter } from '@layertap/storage';
import type { Logger } from '@layertap/config';
import type { LayertapQueues } from '@layertap/queue';
import { modelFor } from '@layertap/model/models';
import { countLines, takeCensus, type CensusEntry, type DatasetCensus } from './dataset-census';

export interface FinalizeContext {
  queues: LayertapQueues;
  output: (uri: string) => OutputWriter;
  log: Logger;
  version: string;
}

/**
 * The dataset parent job's processor: runs once every chunk of a run is done (or failed for good), takes
 * stock of every sample of every run (`takeCensus`) and writes `manifest.jsonl` and `dataset.json`
 * (`closeDataset`). Re-running it rewrites the same files: the dataset finishes once.
 */
export async function finalizeDataset(job: Job<DatasetJob>, ctx: FinalizeContext): Promise<DatasetResult> {
  const { dataset } = job.data;
  const writer = ctx.output(dataset.output);
  const chunkResults: ChunkResult[] = [];
  for (const value of Object.values(await job.getChildrenValues())) {
    const parsed = ChunkResult.safeParse(value);
    if (parsed.success) chunkResults.push(parsed.data);
  }
  const census = await takeCensus(ctx.queues, writer, dataset.datasetId);
  if (census.missingChunks.length) {
    // Finishing now would write a manifest without these samples and call the dataset done: it stays
    // unfinished (failed, with the chunks named) until `retry` runs them or `cancel` records them cancelled.
    const missing = census.missingChunks;
    const samples = missing.reduce((n, m) => n + m.samples, 0);
    const message =
      `chunk jobs ${missing.map((m) => `${m.run}/${m.chunk}`).join(', ')} (run/chunk; ${samples} samples) disappeared from Redis before they ran ` +
      `(removed in Bull Board, or lost by Redis): \`layertap retry ${dataset.datasetId}\` runs them, \`layertap cancel ${dataset.datasetId}\` records them cancelled`;
    ctx.log.error({ datasetId: dataset.datasetId, missingChunks: missing }, 'chunks are missing: the dataset is not finished');
    throw new UnrecoverableError(message);
  }
  return closeDataset(census, { queues: ctx.queues, writer, dataset, version: ctx.version, log: ctx.log, chunkResults });
}

export interface CloseDatasetOptions {
  queues: LayertapQueues;
  writer: OutputWriter;
  /** The run that finishes (its result is recorded), normally the latest. */
  dataset: DatasetConfig;
  version: string;
  log?: Logger;
  /** The results of the run's chunks (engines, weights, start times for `dataset.json`). */
  chunkResults?: ChunkResult[];
  /**
   * `layertap cancel` of a dataset that stopped: record the samples without an outcome of their own (never run,
   * or in a chunk that failed for good) as failed with reason `cancelled`.
   */
  cancelNotRun?: boolean;
}

export interface CloseDatasetResult extends DatasetResult {
  /** Samples recorded `cancelled` here (cancelling a dataset that stopped). */
  cancelled: number;
  /** Samples of chunks that failed for good, recorded `chunk_failed` here. */
  chunkFailed: number;
}

/**
 * Writes what a dataset's census lacks and then the dataset's files: samples of chunks that failed for good
 * (and, when cancelling, samples that never ran) get their lines stored as their chunk's part, so later merges
 * keep them; then every line goes into `manifest.jsonl` and the counts, layers and runs into `dataset.json`
 * (runs that Redis forgot are kept from the previous `dataset.json`), and the run's result is recorded.
 */
export async function closeDataset(census: DatasetCensus, options: CloseDatasetOptions): Promise<CloseDatasetResult> {
  const { queues, writer, dataset, log } = options;
  const { datasetId } = census;
  const groups = new Map<string, { run: number; chunk: number; entries: CensusEntry[] }>();
  let cancelled = 0;
  let chunkFailed = 0;
  for (const entry of census.entries.values()) {
    if (options.cancelNotRun && entry.run >= 0 && (!entry.line || entry.unstored)) {
      // Cancelling a dataset that stopped: a sample with no outcome of its own (never run, or in a chunk that
      // failed before recording anything) is recorded cancelled; the chunk's failure stays in the message.
      const message = entry.line?.error ? `cancelled; ${entry.line.error.message}` : 'dataset was cancelled before this sample ran';
      entry.line = { id: entry.sample.id, uri: storedUri(entry.sample.uri), status: 'failed', error: { code: ErrorCode.Cancelled, message }, outputs: {}, shape: {}, dtype: dataset.dtype };
      entry.unstored = true;
      cancelled++;
    } else if (entry.unstored) chunkFailed++;
    if (!entry.unstored) continue;
    const key = partKey(datasetId, entry.run, entry.chunk);
    const group = groups.get(key) ?? { run: entry.run, chunk: entry.chunk, entries: [] };
    group.entries.push(entry);
    groups.set(key, group);
  }
  for (const [key, group] of groups) {
    const lines = group.entries.map((e) => e.line as ManifestLine);
    await writer.put(key, lines.map((l) => JSON.stringify(l)).join('\n') + '\n', { contentType: 'application/x-ndjson' });
    await queues.store.indexSamples(datasetId, lines, group.run, group.chunk);
    for (const entry of group.entries) delete entry.unstored;
    log?.warn(
      { datasetId, run: group.run, chunk: group.chunk, samples: lines.length, code: lines[0]?.error?.code, reason: lines[0]?.error?.message },
      lines[0]?.error?.code === ErrorCode.Cancelled ? 'samples never ran: recorded as cancelled' : 'chunk failed for good: its samples are failed',
    );
  }

  const lines = [...census.entries.values()].flatMap((e) => (e.line ? [e.line] : []));
  const counts = countLines(lines);
  const manifest = lines.map((l) => JSON.stringify(l)).join('\n') + (lines.length ? '\n' : '');
  await writer.put(manifestKey(datasetId), manifest, { contentType: 'application/x-ndjson' });

  const previous = await readPreviousDocument(writer, datasetId);
  const runs = await queues.store.runs(datasetId);
  const engines = await queues.store.engines(datasetId);
  const provenance = datasetDocument(dataset, runs, options.chunkResults ?? [], counts, options.version, previous, engines);
  await writer.put(datasetKey(datasetId), JSON.stringify(provenance, null, 2) + '\n', { contentType: 'application/json' });

  const result: DatasetResult = { datasetId, ...counts, manifestKey: manifestKey(datasetId) };
  await queues.store.finish(dataset, result);
  log?.info({ datasetId, run: dataset.run, ok: counts.ok, failed: counts.failed }, 'dataset finished');
  return { ...result, cancelled, chunkFailed };
}

/** What an earlier `dataset.json` of the dataset recorded, where it can be read. */
interface PreviousDocument {
  runs?: Array<{ run: number; submittedAt: string; samples: number }>;
  backend?: string | null;
  startedAt?: string;
  model?: { weights?: { description?: string; sha256?: string | null } };
  engines?: EngineInfo[];
}

async function readPreviousDocument(writer: OutputWriter, datasetId: string): Promise<PreviousDocument | undefined> {
  const body = await writer.get(datasetKey(datasetId));
  if (!body) return undefined;
  try {
    return JSON.parse(body.toString('utf8')) as PreviousDocument;
  } catch {
    return undefined;
  }
}

/** `dataset.json`: everything needed to know how the activations were made. */
export function datasetDocument(
  dataset: DatasetConfig,
  runs: DatasetConfig[],
  chunks: ChunkResult[],
  counts: { ok: number; failed: number; failures: Record<string, number> },
  version: string,
  previous?: PreviousDocument,
  engines: EngineInfo[] = [],
) {
  // The weights URI as given may carry credentials (a presigned URL): what is stored is its `storedUri`.
  const source = dataset.weights ? storedUri(dataset.weights) : undefined;
  // Backends of this run and of the runs before it (a run that only writes the manifest ran none).
  const earlierBackends = (previous?.backend ?? '').split(', ').filter(Boolean);
  const backends = [...new Set([...earlierBackends, ...chunks.map((c) => c.backend).filter((b) => b !== 'none')])];
  const earlierWeights = previous?.model?.weights;
  const weights =
    chunks.find((c) => c.backend !== 'none')?.weights ??
    (earlierWeights?.description
      ? { description: earlierWeights.description, ...(earlierWeights.sha256 ? { sha256: earlierWeights.sha256 } : {}) }
      : { description: source ?? (dataset.onnx ? `${storedUri(dataset.onnx.uri)} (ONNX, weights in the file)` : `random, seed ${dataset.seed}`), ...(dataset.onnx ? { sha256: dataset.onnx.sha256 } : {}) });
  const startedAt = [previous?.startedAt, ...chunks.map((c) => c.startedAt)].filter((t): t is string => typeof t === 'string').sort()[0] ?? dataset.submittedAt;
  // Every run: those Redis knows, and those only an earlier dataset.json remembers (Redis lost or forgot them).
  const allRuns = new Map<number, { run: number; submittedAt: string; samples: number }>();
  for (const r of previous?.runs ?? []) if (Number.isInteger(r?.run)) allRuns.set(r.run, { run: r.run, submittedAt: r.submittedAt, samples: r.samples });
  for (const r of runs) allRuns.set(r.run, { run: r.run, submittedAt: r.submittedAt, samples: r.totalSamples });
  return {
    layertap: { version },
    datasetId: dataset.datasetId,
    model: {
      name: dataset.model,
      architecture: modelFor(dataset).architecture,
      // An ONNX model is its file: where it was and its sha256 (what the workers checked before running it).
      ...(dataset.onnx ? { onnx: { source: storedUri(dataset.onnx.uri), sha256: dataset.onnx.sha256, bytes: dataset.onnx.bytes, input: dataset.onnx.input } } : {}),
      weights: { source: source ?? null, description: weights.description, sha256: weights.sha256 ?? null, ...(dataset.weights || dataset.onnx ? {} : { seed: dataset.seed }) },
    },
    layers: dataset.layers.map((l) => ({ spec: l.spec, canonical: l.canonical, shape: l.shape })),
    preprocessing: {
      mode: dataset.preprocess,
      // Why: --preprocess as given, or the training of the weights (set at submit; older datasets lack it).
      reason: dataset.preprocessReason ?? null,
      imageSize: dataset.imageSize,
      ...PREPROCESSING[dataset.preprocess],
      // --mean/--std replace the mode's normalisation.
      ...(dataset.normalize ? { mean: dataset.normalize.mean, std: dataset.normalize.std, normalizedBy: '--mean/--std' } : {}),
      // Datasets planned before --exif-orientation applied it.
      exifOrientation: dataset.exifOrientation ?? 'apply',
    },
    imageSize: dataset.imageSize,
    dtype: dataset.dtype,
    layout: dataset.layout,
    pool: dataset.pool,
    backend: backends.join(', ') || null,
    // Which engines computed the arrays, on what device, why, and any warning (a software adapter named);
    // those of earlier runs when Redis forgot them.
    engines: (engines.length ? engines : (previous?.engines ?? [])).map((e) => ({ engine: e.engine, backend: e.backend, device: e.device, reason: e.reason, warnings: e.warnings })),
    output: dataset.output,
    format: dataset.format,
    files:
      dataset.format === 'shards'
        ? { manifest: 'manifest.jsonl', shards: 'shards/<run>-<chunk>.safetensors', tensors: '<sampleId>/<layer>', outputs: '<shard key>#<tensor name>' }
        : { manifest: 'manifest.jsonl', samples: '<layer>/<sampleId>.npy' },
    counts: { total: counts.ok + counts.failed, ...counts },
    runs: [...allRuns.values()].sort((a, b) => a.run - b.run),
    startedAt,
    finishedAt: new Date().toISOString(),
  };
}
