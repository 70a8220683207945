import type { DatasetStatus, LayertapQueues } from '@layertap/queue';
import { datasetStatus, sampleCounts } from '@layertap/queue';
import { storedUri } from '@layertap/contracts';

/** Images per second over a sliding window of progress samples. */
export class RateMeter {
  private readonly points: Array<{ t: number; n: number }> = [];
  constructor(private readonly windowMs = 20_000) {}

  add(t: number, n: number): void {
    this.points.push({ t, n });
    while (this.points.length > 2 && (this.points[0]?.t ?? t) < t - this.windowMs) this.points.shift();
  }

  rate(): number {
    const first = this.points[0];
    const last = this.points.at(-1);
    if (!first || !last || last.t === first.t) return 0;
    return ((last.n - first.n) * 1000) / (last.t - first.t);
  }
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** One progress line: bar, done/total, failed, rate, ETA. */
export function progressLine(status: DatasetStatus, rate: number, width = 30): string {
  const { total, ok, failed, pending } = status.progress;
  const done = ok + failed;
  const fraction = total > 0 ? Math.min(1, (total - pending) / total) : 1;
  const filled = Math.round(fraction * width);
  const bar = '#'.repeat(filled) + '-'.repeat(width - filled);
  const eta = rate > 0 ? formatDuration(pending / rate) : '--';
  const { cancelled } = sampleCounts(status.progress);
  const stopped = cancelled ? `${failed - cancelled} failed, ${cancelled} cancelled` : `${failed} failed`;
  const line = `[${bar}] ${done}/${total} done, ${stopped}, ${rate.toFixed(1)} img/s, ETA ${eta} (${status.state})`;
  return waitsForWorker(status) ? `${line}: ${NO_WORKER}` : line;
}

const NO_WORKER = 'no worker connected: start `layertap-worker` with the same REDIS_URL and LAYERTAP_QUEUE_PREFIX';

/** A run that only a worker can move on, with none connected. */
function waitsForWorker(status: DatasetStatus): boolean {
  return status.workers === 0 && (status.state === 'running' || status.state === 'finishing' || status.state === 'cancelled');
}

export interface WaitOptions {
  intervalMs?: number;
  /** Called with each new status; `line` is ready to print. */
  onProgress?: (status: DatasetStatus, line: string) => void;
  /** How long the dataset's jobs may be missing from Redis before waiting gives up (default 10 s). */
  unknownGraceMs?: number;
  /** Called when polling fails (Redis restarting); polling goes on. */
  onError?: (err: Error) => void;
}

/** Polls until the dataset's latest run is done, failed or cancelled-and-finished; returns the last status. */
export async function waitForDataset(queues: LayertapQueues, datasetId: string, options: WaitOptions = {}): Promise<DatasetStatus> {
  const meter = new RateMeter();
  const interval = options.intervalMs ?? 500;
  let unknownSince: number | undefined;
  for (;;) {
    try {
      const status = await datasetStatus(queues, datasetId);
      if (status) {
        meter.add(Date.now(), status.progress.ok + status.progress.failed);
        options.onProgress?.(status, progressLine(status, meter.rate()));
        if (status.state === 'done' || status.state === 'failed' || (status.state === 'unknown' && status.progress.finished)) return status;
        // Jobs gone from Redis with no result recorded: nothing will finish it (re-submit to resume).
        unknownSince = status.state === 'unknown' ? (unknownSince ?? Date.now()) : undefined;
        if (unknownSince !== undefined && Date.now() - unknownSince > (options.unknownGraceMs ?? 10_000)) return status;
      }
    } catch (err) {
      options.onError?.(err as Error);
    }
    await new Promise((r) => setTimeout(r, interval));
  }
}

/** A human summary of a dataset's status (what `layertap status` prints). */
/** "10 total: 4 ok, 1 failed, 5 pending", with the cancelled samples apart from the failed ones when there are some. */
export function countsText(progress: DatasetStatus['progress']): string {
  const c = sampleCounts(progress);
  return `${c.total} total: ${c.ok} ok, ${c.failed} failed, ${c.cancelled ? `${c.cancelled} cancelled, ` : ''}${c.pending} pending`;
}

export function formatStatus(status: DatasetStatus): string {
  const { config, progress } = status;
  const lines = [
    `dataset   ${status.datasetId} (run ${config.run}, ${status.state})`,
    ...(status.reason ? [`stopped   ${status.reason}`] : []),
    `samples   ${countsText(progress)}`,
    `chunks    ${status.chunks.total} total: ${status.chunks.done} done, ${status.chunks.failed} failed, ${status.chunks.pending} pending`,
    `layers    ${config.layers.map((l) => (l.spec === l.canonical ? l.spec : `${l.spec} (${l.canonical})`)).join(', ')}`,
    `model     ${config.onnx ? `${storedUri(config.onnx.uri)} (ONNX, sha256 ${config.onnx.sha256.slice(0, 12)})` : `${config.model}, weights ${config.weights ? storedUri(config.weights) : `random, seed ${config.seed}`}`}, ${config.preprocess} preprocessing at ${config.imageSize}px, ${config.dtype} ${config.layout}`,
    `output    ${config.output}/${config.datasetId}/${config.format === 'shards' ? ' (safetensors shards, one per chunk)' : ''}`,
    // Which engine computes it, on what (several workers may run different ones).
    ...status.engines.map((e, i) => `${i === 0 ? 'engine    ' : '          '}${e.engine}/${e.backend} on ${e.device.description}${e.warnings.length ? ` (warning: ${e.warnings.join('; ')})` : ''}`),
  ];
  const reasons = Object.entries(progress.failures).sort((a, b) => b[1] - a[1]);
  if (reasons.length) {
    lines.push('failures  by reason:');
    for (const [code, n] of reasons) lines.push(`            ${code.padEnd(20)} ${n}`);
  }
  for (const f of status.chunkFailures) lines.push(`chunk ${f.chunk} failed: ${f.reason}`);
  if (status.cancelled) lines.push('cancelled: the samples not run are recorded as cancelled (not failed); `layertap retry` runs them');
  if (status.workers !== undefined) lines.push(`workers   ${status.workers === 0 ? 'none connected' : `${status.workers} connected`}`);
  if (status.next) lines.push(`next      ${status.next}`);
  return lines.join('\n');
}

/**
 * One frame of `layertap status --watch`: a title with the time, the status as `layertap status` prints it,
 * and the progress line (rate and ETA).
 */
export function watchFrame(status: DatasetStatus, line: string, now: Date = new Date(), intervalMs = 1000): string {
  const title = `layertap status ${status.datasetId}   ${now.toISOString().replace('T', ' ').slice(0, 19)} UTC, every ${intervalMs / 1000}s (Ctrl-C to stop)`;
  return `${title}\n\n${formatStatus(status)}\n\n${line}`;
}

export interface WatchOptions {
  /** Refresh interval (default 1000 ms). */
  intervalMs?: number;
  /** JSON lines: one status object per change instead of a view. */
  json?: boolean;
  /** Where the view goes (default stdout). A terminal is redrawn in place; anything else gets a line per change. */
  out?: NodeJS.WritableStream & { isTTY?: boolean };
  /** Called when polling fails (Redis restarting); polling goes on. */
  onError?: (err: Error) => void;
}

/**
 * Shows a dataset's status until its latest run finishes: on a terminal the screen is redrawn every
 * interval; otherwise (a pipe, a log) a progress line is written whenever the counts change, and the full
 * status at the end; with `json`, one JSON status per change. Returns the last status.
 */
export async function watchDataset(queues: LayertapQueues, datasetId: string, options: WatchOptions = {}): Promise<DatasetStatus> {
  const out = options.out ?? process.stdout;
  const intervalMs = options.intervalMs ?? 1000;
  const tty = out.isTTY === true && !options.json;
  let last = '';
  const final = await waitForDataset(queues, datasetId, {
    intervalMs,
    ...(options.onError ? { onError: options.onError } : {}),
    onProgress: (status, line) => {
      if (options.json) {
        const text = JSON.stringify(status);
        if (text !== last) out.write(`${text}\n`);
        last = text;
      } else if (tty) {
        // Home, clear the screen, draw the frame.
        out.write(`\x1b[H\x1b[2J${watchFrame(status, line, new Date(), intervalMs)}\n`);
      } else {
        const key = `${status.state} ${status.progress.ok} ${status.progress.failed} ${status.progress.pending} ${waitsForWorker(status)}`;
        if (key !== last) out.write(`${line}\n`);
        last = key;
      }
    },
  });
  if (!options.json && !tty) out.write(`${formatStatus(final)}\n`);
  return final;
}
