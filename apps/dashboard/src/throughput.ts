import type { DatasetStatus } from '@layertap/queue';
import type { RatePoint } from './chart';

/** `n` samples finished at `t` (ms since the epoch). */
export interface Completion {
  t: number;
  n: number;
}

const MIN_WINDOW_MS = 5_000;

/**
 * Images/s over time, at `points` moments from `start` to `end`: at each, the samples finished in the
 * window before it, divided by the window. Chunk completions are bursts (a whole chunk at once), so the
 * window spans several of them: an eighth of the run, at least 5 s. Nothing for spans shorter than one window.
 */
export function rateSeries(completions: readonly Completion[], start: number, end: number, points = 40): RatePoint[] {
  if (end - start < MIN_WINDOW_MS || completions.length === 0) return [];
  const sorted = [...completions].sort((a, b) => a.t - b.t);
  const doneBy = (t: number) => sorted.reduce((n, c) => (c.t <= t ? n + c.n : n), 0);
  const window = Math.max((end - start) / 8, MIN_WINDOW_MS);
  const step = (end - start) / points;
  const out: RatePoint[] = [];
  for (let i = 1; i <= points; i++) {
    const t = start + i * step;
    out.push({ t: Math.round(t), rate: ((doneBy(t) - doneBy(t - window)) * 1000) / window });
  }
  return out;
}

/** The average rate of a run: samples it has done over the time since it started; 0 before it starts. */
export function averageRate(done: number, startedAt: number | undefined, now: number): number {
  if (startedAt === undefined || done <= 0 || now <= startedAt) return 0;
  return (done * 1000) / (now - startedAt);
}

/** Seconds left at `rate`: 0 when nothing is pending, undefined when nothing is moving. */
export function etaSeconds(pending: number, rate: number): number | undefined {
  if (pending <= 0) return 0;
  return rate > 0 ? pending / rate : undefined;
}

/**
 * The latest run's timing, as the list and the dataset page show it. A run's duration is the time from its
 * submission to its end (its manifest written, or its dataset job failed for good): what the operator waited,
 * queue wait and model loading included. Its average is the samples it processed over that duration.
 */
export interface RunTiming {
  /** Images/s while the run goes on: its samples done over the time since its first progress; 0 once it ended. */
  rate: number;
  /** Seconds left at `rate` while the run goes on (null when unknown); null once it ended, failed or is cancelled. */
  etaSeconds: number | null;
  /** When the run ended (ms since the epoch); null while it goes on, or when that is unknown. */
  finishedAt: number | null;
  /** From submission to `finishedAt`, in seconds; null while the run goes on. */
  durationSeconds: number | null;
  /** The run's processed samples over `durationSeconds`; null while it goes on or when it processed none. */
  averageRate: number | null;
}

/** When the latest run ended: its manifest written, or (failed for good) its dataset job's end. */
function runEnd(status: DatasetStatus): number | undefined {
  if (status.progress.finished) return status.progress.finishedAt;
  return status.state === 'failed' ? status.parentJob?.finishedOn : undefined;
}

export function runTiming(status: DatasetStatus, now: number): RunTiming {
  const { config, progress } = status;
  // A retry run covers only the retried samples: its own progress is its total less what is pending.
  const processed = progress.finished
    ? Math.max(0, config.totalSamples - (status.cancelled ? (progress.failures.cancelled ?? 0) : 0))
    : config.totalSamples - progress.pending;
  const end = runEnd(status);
  if (end !== undefined) {
    const durationSeconds = Math.max(0, end - Date.parse(config.submittedAt)) / 1000;
    const averageRate = processed > 0 && durationSeconds > 0 ? processed / durationSeconds : null;
    return { rate: 0, etaSeconds: null, finishedAt: end, durationSeconds, averageRate };
  }
  // No rate for jobs gone from Redis (unknown); no ETA either once cancelled (the rest is recorded as cancelled).
  const live = status.state === 'running' || status.state === 'finishing';
  const rate = live || status.state === 'cancelled' ? averageRate(processed, progress.startedAt, now) : 0;
  return { rate, etaSeconds: live ? (etaSeconds(progress.pending, rate) ?? null) : null, finishedAt: null, durationSeconds: null, averageRate: null };
}

export function formatDuration(seconds: number | undefined): string {
  if (seconds === undefined || !Number.isFinite(seconds) || seconds < 0) return '--';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}
