import type { Job } from 'bullmq';
import {
  ChunkJob,
  ChunkResult,
  ErrorCode,
  storedUri,
  type DatasetConfig,
  type EngineInfo,
  type DatasetJob,
  type DatasetResult,
  type ManifestLine,
} from '@layertap/contracts';
import { PREPROCESSING } from '@layertap/imaging';
import { datasetKey, manifestKey, partKey, readManifestParts, type OutputWriter } from '@layertap/storage';
import type { Logger } from '@layertap/config';
import type { LayertapQueues } from '@layertap/queue';
import { getModel } from '@layertap/model/models';

export interface FinalizeContext {
  queues: LayertapQueues;
  output: (uri: string) => OutputWriter;
  log: Logger;
  version: string;
}

/**
 * The dataset parent job's processor: runs once every chunk of a run is done (or failed for good), merges
 * the chunk parts of every run into `manifest.jsonl` (later runs win, so a retried sample has exactly one
 * line) and writes `dataset.json`. Re-running it rewrites the same files: the dataset finishes once.
 */
export async function finalizeDataset(job: Job<DatasetJob>, ctx: FinalizeContext): Promise<DatasetResult> {
  const { dataset } = job.data;
  const writer = ctx.output(dataset.output);
  const runs = await ctx.queues.store.runs(dataset.datasetId);
  const { lines, keys: partKeys } = await readManifestParts(writer, dataset.datasetId);

  // Chunks of this run that failed for good left no part: their samples fail with the chunk's reason.
  const chunkResults: ChunkResult[] = [];
  for (const value of Object.values(await job.getChildrenValues())) {
    const parsed = ChunkResult.safeParse(value);
    if (parsed.success) chunkResults.push(parsed.data);
  }
  const ignored = await job.getIgnoredChildrenFailures();
  for (const [childKey, reason] of Object.entries(ignored)) {
    const jobId = childKey.split(':').pop() ?? '';
    const child = await ctx.queues.chunks.getJob(jobId);
    const parsed = ChunkJob.safeParse(child?.data);
    if (!parsed.success) {
      ctx.log.error({ datasetId: dataset.datasetId, jobId }, 'failed chunk job is gone from Redis: its samples are missing from the manifest');
      continue;
    }
    const hasPart = partKeys.includes(partKey(dataset.datasetId, dataset.run, parsed.data.chunk));
    if (hasPart) continue;
    const failedLines: ManifestLine[] = parsed.data.samples.map((s) => ({
      id: s.id,
      uri: storedUri(s.uri),
      status: 'failed',
      error: { code: ErrorCode.ChunkFailed, message: `chunk ${parsed.data.chunk} failed after its retries: ${reason}` },
      outputs: {},
      shape: {},
      dtype: dataset.dtype,
    }));
    for (const line of failedLines) lines.set(line.id, line);
    // The sample index learns about them too (a chunk that failed for good wrote no part).
    await ctx.queues.store.indexSamples(dataset.datasetId, failedLines, dataset.run, parsed.data.chunk);
    ctx.log.warn({ datasetId: dataset.datasetId, chunk: parsed.data.chunk, code: ErrorCode.ChunkFailed, samples: failedLines.length, reason }, 'chunk failed for good: its samples are failed');
  }

  let ok = 0;
  let failed = 0;
  const failures: Record<string, number> = {};
  for (const line of lines.values()) {
    if (line.status === 'ok') ok++;
    else {
      failed++;
      const code = line.error?.code ?? 'unknown';
      failures[code] = (failures[code] ?? 0) + 1;
    }
  }
  const manifest = [...lines.values()].map((l) => JSON.stringify(l)).join('\n') + (lines.size ? '\n' : '');
  await writer.put(manifestKey(dataset.datasetId), manifest, { contentType: 'application/x-ndjson' });

  const engines = await ctx.queues.store.engines(dataset.datasetId);
  const provenance = datasetDocument(dataset, runs, chunkResults, { ok, failed, failures }, ctx.version, engines);
  await writer.put(datasetKey(dataset.datasetId), JSON.stringify(provenance, null, 2) + '\n', { contentType: 'application/json' });

  const result: DatasetResult = { datasetId: dataset.datasetId, ok, failed, failures, manifestKey: manifestKey(dataset.datasetId) };
  await ctx.queues.store.setResult(dataset.datasetId, dataset.run, result);
  ctx.log.info({ datasetId: dataset.datasetId, run: dataset.run, ok, failed }, 'dataset finished');
  return result;
}

/** `dataset.json`: everything needed to know how the activations were made. */
export function datasetDocument(
  dataset: DatasetConfig,
  runs: DatasetConfig[],
  chunks: ChunkResult[],
  counts: { ok: number; failed: number; failures: Record<string, number> },
  version: string,
  engines: EngineInfo[] = [],
) {
  const backends = [...new Set(chunks.map((c) => c.backend).filter((b) => b !== 'none'))];
  // The weights URI as given may carry credentials (a presigned URL): what is stored is its `storedUri`.
  const source = dataset.weights ? storedUri(dataset.weights) : undefined;
  const weights = chunks.find((c) => c.backend !== 'none')?.weights ?? { description: source ?? `random, seed ${dataset.seed}` };
  const startedAt = chunks.map((c) => c.startedAt).sort()[0] ?? dataset.submittedAt;
  return {
    layertap: { version },
    datasetId: dataset.datasetId,
    model: {
      name: dataset.model,
      architecture: getModel(dataset.model).architecture,
      weights: { source: source ?? null, description: weights.description, sha256: weights.sha256 ?? null, ...(dataset.weights ? {} : { seed: dataset.seed }) },
    },
    layers: dataset.layers.map((l) => ({ spec: l.spec, canonical: l.canonical, shape: l.shape })),
    preprocessing: {
      mode: dataset.preprocess,
      // Why: --preprocess as given, or the training of the weights (set at submit; older datasets lack it).
      reason: dataset.preprocessReason ?? null,
      imageSize: dataset.imageSize,
      ...PREPROCESSING[dataset.preprocess],
    },
    imageSize: dataset.imageSize,
    dtype: dataset.dtype,
    layout: dataset.layout,
    pool: dataset.pool,
    backend: backends.join(', ') || null,
    // Which engines computed the arrays, on what device, why, and any warning (a software adapter named).
    engines: engines.map((e) => ({ engine: e.engine, backend: e.backend, device: e.device, reason: e.reason, warnings: e.warnings })),
    output: dataset.output,
    format: dataset.format,
    files:
      dataset.format === 'shards'
        ? { manifest: 'manifest.jsonl', shards: 'shards/<run>-<chunk>.safetensors', tensors: '<sampleId>/<layer>', outputs: '<shard key>#<tensor name>' }
        : { manifest: 'manifest.jsonl', samples: '<layer>/<sampleId>.npy' },
    counts: { total: counts.ok + counts.failed, ...counts },
    runs: runs.map((r) => ({ run: r.run, submittedAt: r.submittedAt, samples: r.totalSamples })),
    startedAt,
    finishedAt: new Date().toISOString(),
  };
}
