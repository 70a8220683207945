import { averageRate, etaSeconds, formatDuration, rateSeries } from './throughput';

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
