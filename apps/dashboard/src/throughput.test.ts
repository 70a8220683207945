import type { DatasetStatus } from '@layertap/queue';
import { detail } from './__tests__/fixtures';
import { averageRate, etaSeconds, formatDuration, rateSeries, runTiming } from './throughput';

describe('rateSeries', () => {
  it('is the rate over a sliding window: an eighth of the run, at least 5 s', () => {
    // 10 samples every 2 s for 40 s: 5 images/s throughout once the first window is full.
    const completions = Array.from({ length: 20 }, (_, i) => ({ t: 2_000 * (i + 1), n: 10 }));
    const points = rateSeries(completions, 0, 40_000, 8);
    expect(points.map((p) => p.t)).toEqual([5_000, 10_000, 15_000, 20_000, 25_000, 30_000, 35_000, 40_000]);
    // Window (t - 5 s, t]: at 5 s it holds the completions at 2 and 4 s (20 samples), at 10 s those at 6, 8, 10 s.
    expect(points.map((p) => p.rate)).toEqual([4, 6, 4, 6, 4, 6, 4, 6]);
  });

  it('shows a stall as zero, and leaves out completions outside the range', () => {
    const points = rateSeries([{ t: 1_000, n: 50 }, { t: 99_000, n: 7 }], 0, 80_000, 4);
    // Window 10 s (80 s / 8): no window ending at 20, 40, 60 or 80 s holds the burst at 1 s.
    expect(points).toEqual([
      { t: 20_000, rate: 0 },
      { t: 40_000, rate: 0 },
      { t: 60_000, rate: 0 },
      { t: 80_000, rate: 0 },
    ]);
    // With a point every second, the first one's window holds it: 50 samples over 10 s.
    expect(rateSeries([{ t: 1_000, n: 50 }], 0, 80_000, 80)[0]).toEqual({ t: 1_000, rate: 5 });
  });

  it('has nothing to chart for runs shorter than one window or without completions', () => {
    expect(rateSeries([{ t: 100, n: 2 }], 0, 4_999)).toEqual([]);
    expect(rateSeries([], 0, 60_000)).toEqual([]);
  });
});

describe('rates and ETA', () => {
  it('averages a run over its time so far', () => {
    expect(averageRate(30, 1_000, 11_000)).toBe(3);
    expect(averageRate(0, 1_000, 11_000)).toBe(0);
    expect(averageRate(5, undefined, 11_000)).toBe(0);
  });

  it('gives seconds left, 0 when nothing is pending, undefined when nothing moves', () => {
    expect(etaSeconds(30, 3)).toBe(10);
    expect(etaSeconds(0, 0)).toBe(0);
    expect(etaSeconds(5, 0)).toBeUndefined();
    expect([formatDuration(9.6), formatDuration(125), formatDuration(7_380), formatDuration(undefined)]).toEqual(['10s', '2m05s', '2h03m', '--']);
  });
});

describe('runTiming', () => {
  const submittedAt = '2025-03-01T12:00:00.000Z';
  const t0 = Date.parse(submittedAt);
  /** A status as datasetStatus() gives it: 100 samples submitted at t0, the first progress 10 s later. */
  function status(overrides: Partial<DatasetStatus> = {}, progress: Partial<DatasetStatus['progress']> = {}): DatasetStatus {
    const base = detail();
    return {
      ...base,
      config: { ...base.config, submittedAt, totalSamples: 100 },
      progress: { ...base.progress, total: 100, ok: 40, failed: 2, pending: 58, startedAt: t0 + 10_000, ...progress },
      ...overrides,
    };
  }

  it('gives a running run its rate since its first progress and an ETA, and no duration yet', () => {
    // 42 done 21 s after the first progress: 2 images/s, 58 left: 29 s.
    expect(runTiming(status(), t0 + 31_000)).toEqual({ rate: 2, etaSeconds: 29, finishedAt: null, durationSeconds: null, averageRate: null });
  });

  it('gives a finished run its duration from submission to the manifest, its average over it, and no ETA', () => {
    const done = status({ state: 'done' }, { ok: 98, failed: 2, pending: 0, finished: true, finishedAt: t0 + 125_000 });
    // 100 samples in 125 s, queue wait included.
    expect(runTiming(done, t0 + 999_000)).toEqual({ rate: 0, etaSeconds: null, finishedAt: t0 + 125_000, durationSeconds: 125, averageRate: 0.8 });
    // A retry run: its own 4 samples over its own time.
    const retry = status({ state: 'done', config: { ...done.config, run: 1, totalSamples: 4, submittedAt: '2025-03-01T13:00:00.000Z' } }, { ...done.progress, finishedAt: Date.parse('2025-03-01T13:00:08.000Z') });
    expect(runTiming(retry, 0)).toMatchObject({ durationSeconds: 8, averageRate: 0.5, etaSeconds: null });
    // A cancelled run that finished: the cancelled samples were not processed.
    const cancelled = status({ state: 'done', cancelled: true }, { ...done.progress, failures: { cancelled: 50 } });
    expect(runTiming(cancelled, 0).averageRate).toBeCloseTo(50 / 125, 9);
  });

  it('ends a failed run when its dataset job failed, with no rate and no ETA', () => {
    const failed = status({ state: 'failed', parentJob: { id: 'cats-1~r0', state: 'failed', finishedOn: t0 + 12_000 } }, { ok: 0, failed: 0, pending: 100 });
    expect(runTiming(failed, t0 + 600_000)).toEqual({ rate: 0, etaSeconds: null, finishedAt: t0 + 12_000, durationSeconds: 12, averageRate: null });
    const partly = status({ state: 'failed', parentJob: { id: 'cats-1~r0', state: 'failed', finishedOn: t0 + 20_000 } }, { ok: 10, failed: 0, pending: 90 });
    expect(runTiming(partly, t0 + 600_000)).toMatchObject({ etaSeconds: null, durationSeconds: 20, averageRate: 0.5 });
  });

  it('gives no ETA once cancelled or when the jobs are gone from Redis', () => {
    expect(runTiming(status({ state: 'cancelled', cancelled: true }), t0 + 31_000)).toMatchObject({ rate: 2, etaSeconds: null, durationSeconds: null });
    expect(runTiming(status({ state: 'unknown' }), t0 + 31_000)).toMatchObject({ rate: 0, etaSeconds: null, durationSeconds: null });
  });
});
