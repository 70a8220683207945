import type { BullMQAdapter } from '@bull-board/api/bullMQAdapter';

/**
 * A chunk job's data as Bull Board shows it: which dataset, run and chunk, how many samples and the first and
 * last ids, instead of every sample's URI (thousands of lines for a chunk of 64). Attempts and the failure
 * reason are Bull Board's own fields, shown beside it; `layertap status` and the dataset page have the rest.
 */
export function chunkJobSummary(data: unknown): unknown {
  const job = data as { kind?: unknown; dataset?: { datasetId?: unknown; run?: unknown; layers?: Array<{ spec?: unknown }> }; chunk?: unknown; samples?: unknown };
  if (!job || job.kind !== 'chunk' || !Array.isArray(job.samples)) return data;
  const samples = job.samples as Array<{ id?: unknown }>;
  return {
    dataset: job.dataset?.datasetId,
    run: job.dataset?.run,
    chunk: job.chunk,
    samples: samples.length,
    first: samples[0]?.id,
    last: samples.at(-1)?.id,
    layers: job.dataset?.layers?.map((l) => l.spec),
  };
}

/**
 * Shows chunk jobs' data summarised (`chunkJobSummary`); data that is not a chunk job's goes through `redact`,
 * as the adapter's other formatter does (the summary holds no URI).
 */
export function summariseChunkJobs(adapter: BullMQAdapter, redact: (data: unknown) => unknown): BullMQAdapter {
  adapter.setFormatter('data', (data: unknown) => {
    const summary = chunkJobSummary(data);
    return summary === data ? redact(data) : summary;
  });
  return adapter;
}
