import { Job } from 'bullmq';
import { ChunkJob, ErrorCode, storedUri, type DatasetConfig, type ManifestLine, type Sample, type SampleCounts } from '@layertap/contracts';
import { chunkJobId, type LayertapQueues } from '@layertap/queue';
import type { RetrySelection } from './dataset-actions';
import { manifestKey, parsePart, parsePartKey, partKey, partsPrefix, type OutputWriter } from '@layertap/storage';

/** One sample of a dataset and where it stands. */
export interface CensusEntry {
  sample: Sample;
  /** Its latest manifest line; absent while it has not run (its chunk is queued, or never ran). */
  line?: ManifestLine;
  /** The run and chunk the sample was last given to (-1 for a line known only from `manifest.jsonl`). */
  run: number;
  chunk: number;
  /** The line is not in a part yet: its chunk failed for good and wrote none (the line says `chunk_failed`). */
  unstored?: true;
}

/** A chunk that was planned but neither wrote a part nor has a job: removed (Bull Board, Redis) before it ran. */
export interface MissingChunk {
  run: number;
  chunk: number;
  /** Its samples, from the run's plan; 0 when the plan is gone too (a dataset submitted before plans were kept). */
  samples: number;
}

/** Every sample a dataset has had, over all its runs, and where each stands. */
export interface DatasetCensus {
  datasetId: string;
  entries: Map<string, CensusEntry>;
  /** The part keys found under the output. */
  partKeys: Set<string>;
  /** The highest run known to the output or to Redis; -1 when there is none. */
  lastRun: number;
  /** Chunks whose job disappeared before they ran; their samples are entries without a line (never run). */
  missingChunks: MissingChunk[];
}

/** The line of a sample whose chunk failed after its retries. */
export function chunkFailedLine(dataset: Pick<DatasetConfig, 'dtype'>, chunk: number, sample: Sample, reason: string): ManifestLine {
  return {
    id: sample.id,
    uri: storedUri(sample.uri),
    status: 'failed',
    error: { code: ErrorCode.ChunkFailed, message: `chunk ${chunk} failed after its retries: ${reason}` },
    outputs: {},
    shape: {},
    dtype: dataset.dtype,
  };
}

/**
 * Takes stock of a dataset from everything that records its samples, so that no sample is lost between runs,
 * whatever failed: `manifest.jsonl` (a finished run's merge), then the chunk parts of every run (later runs
 * win), then the chunk jobs Redis still holds for chunks that wrote no part: a chunk that failed for good
 * gives its samples a `chunk_failed` line; one that is queued, none (they never ran); one whose job is gone
 * (removed in Bull Board, lost by Redis) is a missing chunk, its samples (from the run's plan) never ran. Only chunks
 * without a part are looked up in Redis, so a finished dataset costs no job lookups.
 */
export async function takeCensus(queues: LayertapQueues, writer: OutputWriter, datasetId: string): Promise<DatasetCensus> {
  const entries = new Map<string, CensusEntry>();
  const manifest = await writer.get(manifestKey(datasetId));
  if (manifest) {
    for (const line of parsePart(manifestKey(datasetId), manifest.toString('utf8'))) {
      entries.set(line.id, { sample: { id: line.id, uri: line.uri }, line, run: -1, chunk: -1 });
    }
  }
  const keys = (await writer.list(partsPrefix(datasetId))).filter((k) => parsePartKey(k) !== undefined).sort();
  let lastRun = -1;
  for (const key of keys) {
    const { run, chunk } = parsePartKey(key) as { run: number; chunk: number };
    lastRun = Math.max(lastRun, run);
    const body = await writer.get(key);
    if (!body) continue;
    for (const line of parsePart(key, body.toString('utf8'))) entries.set(line.id, { sample: { id: line.id, uri: line.uri }, line, run, chunk });
  }
  const partKeys = new Set(keys);
  const gone: Array<{ run: number; chunk: number; planned: Sample[] | undefined }> = [];
  for (const config of await queues.store.runs(datasetId)) {
    lastRun = Math.max(lastRun, config.run);
    const chunks = Math.ceil(config.totalSamples / config.chunkSize);
    for (let chunk = 0; chunk < chunks; chunk++) {
      if (partKeys.has(partKey(datasetId, config.run, chunk))) continue;
      const job = await Job.fromId(queues.chunks, chunkJobId(datasetId, config.run, chunk));
      const parsed = ChunkJob.safeParse(job?.data);
      if (!job || !parsed.success) {
        // Planned, no part, no job: removed before it ran. Its samples come from the plan, so that they are
        // counted as not run (never silently dropped) and `retry` runs them.
        gone.push({ run: config.run, chunk, planned: await queues.store.plannedChunk(datasetId, config.run, chunk) });
        continue;
      }
      const failed = (await job.getState()) === 'failed';
      for (const sample of parsed.data.samples) {
        if ((entries.get(sample.id)?.run ?? -1) > config.run) continue;
        entries.set(sample.id, {
          sample,
          run: config.run,
          chunk,
          ...(failed ? { line: chunkFailedLine(config, chunk, sample, job.failedReason || 'no reason recorded'), unstored: true as const } : {}),
        });
      }
    }
  }
  // After every run is seen: a sample a later run took up (queued, run, recorded) is not missing.
  const missingChunks: MissingChunk[] = [];
  for (const { run, chunk, planned } of gone) {
    const open = (planned ?? []).filter((sample) => (entries.get(sample.id)?.run ?? -1) <= run);
    if (planned && open.length === 0) continue;
    for (const sample of open) entries.set(sample.id, { sample, run, chunk });
    missingChunks.push({ run, chunk, samples: open.length });
  }
  return { datasetId, entries, partKeys, lastRun, missingChunks };
}

/** Counts lines by status and failure reason. */
export function countLines(lines: Iterable<ManifestLine>): SampleCounts {
  const counts: SampleCounts = { ok: 0, failed: 0, failures: {} };
  for (const line of lines) {
    if (line.status === 'ok') counts.ok++;
    else {
      counts.failed++;
      const code = line.error?.code ?? 'unknown';
      counts.failures[code] = (counts.failures[code] ?? 0) + 1;
    }
  }
  return counts;
}

/** What `retry` runs: every sample that is not ok (failed, cancelled, in a failed chunk, never run). */
export function selectRetry(census: DatasetCensus): RetrySelection {
  const samples: Sample[] = [];
  const others: ManifestLine[] = [];
  for (const entry of census.entries.values()) {
    if (entry.line?.status === 'ok') others.push(entry.line);
    else samples.push(entry.sample);
  }
  return { samples, earlier: countLines(others), lastRun: census.lastRun };
}
