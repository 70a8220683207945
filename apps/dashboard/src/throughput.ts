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

export function formatDuration(seconds: number | undefined): string {
  if (seconds === undefined || !Number.isFinite(seconds) || seconds < 0) return '--';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}
