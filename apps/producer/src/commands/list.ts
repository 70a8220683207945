import { datasetStatus, sampleCounts, type DatasetStatus } from '@layertap/queue';
import type { CliContext } from '../context';
import { formatDuration } from '../progress';

export interface ListCommandOptions {
  json: boolean;
  /** Most datasets shown, newest first (default 100). */
  limit?: number;
}

/** One dataset as `layertap list` shows it. */
export interface ListedDataset {
  datasetId: string;
  state: DatasetStatus['state'];
  run: number;
  samples: { total: number; ok: number; failed: number; cancelled: number; pending: number };
  /** When its first run was submitted (ISO 8601). */
  submittedAt: string;
  /** When the latest run started on a worker (ISO 8601), once one did. */
  startedAt: string | null;
  /** When the latest run finished (ISO 8601), once it did. */
  finishedAt: string | null;
  /** Seconds from the latest run's start to its end, or to now while it runs. */
  durationSeconds: number | null;
  output: string;
}

function listed(status: DatasetStatus, firstSubmittedAt: string, now: number): ListedDataset {
  const { progress, config } = status;
  const finishedAt = progress.finishedAt ?? status.parentJob?.finishedOn;
  const startedAt = progress.startedAt;
  const end = finishedAt ?? (status.state === 'running' || status.state === 'finishing' || status.state === 'cancelled' ? now : undefined);
  return {
    datasetId: status.datasetId,
    state: status.state,
    run: config.run,
    samples: sampleCounts(progress),
    submittedAt: firstSubmittedAt,
    startedAt: startedAt ? new Date(startedAt).toISOString() : null,
    finishedAt: finishedAt ? new Date(finishedAt).toISOString() : null,
    durationSeconds: startedAt && end ? Math.max(0, Math.round((end - startedAt) / 1000)) : null,
    output: `${config.output}/${config.datasetId}/`,
  };
}

/** The table of `layertap list`: one line per dataset, columns padded to their widest cell. */
export function formatList(rows: readonly ListedDataset[]): string {
  if (rows.length === 0) return 'no datasets in Redis (datasets forgotten or past their retention are not listed; their outputs stay)';
  const header = ['DATASET', 'STATE', 'OK', 'FAILED', 'CANCELLED', 'PENDING', 'STARTED', 'DURATION', 'OUTPUT'];
  const cells = rows.map((r) => [
    r.datasetId,
    r.run > 0 ? `${r.state} (run ${r.run})` : r.state,
    String(r.samples.ok),
    String(r.samples.failed),
    String(r.samples.cancelled),
    String(r.samples.pending),
    (r.startedAt ?? r.submittedAt).replace('T', ' ').replace(/\.\d+Z$/, 'Z'),
    r.durationSeconds === null ? '--' : formatDuration(r.durationSeconds),
    r.output,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => (c[i] as string).length)));
  const right = new Set([2, 3, 4, 5]);
  const line = (row: string[]) =>
    row
      .map((cell, i) => (i === row.length - 1 ? cell : right.has(i) ? cell.padStart(widths[i] as number) : cell.padEnd(widths[i] as number)))
      .join('  ');
  return [line(header), ...cells.map(line)].join('\n');
}

/** `layertap list`: the datasets Redis knows, newest first, with their state, counts, times and output. */
export async function listCommand(ctx: CliContext, options: ListCommandOptions): Promise<number> {
  const queues = await ctx.queues();
  const ids = await queues.store.list(options.limit ?? 100);
  const now = Date.now();
  const rows: ListedDataset[] = [];
  for (const id of ids) {
    const [status, first] = await Promise.all([datasetStatus(queues, id), queues.store.runs(id).then((runs) => runs[0])]);
    // Forgotten or expired between the listing and now.
    if (!status || !first) continue;
    rows.push(listed(status, first.submittedAt, now));
  }
  process.stdout.write(options.json ? `${JSON.stringify(rows)}\n` : `${formatList(rows)}\n`);
  return 0;
}
