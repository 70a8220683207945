import { niceMax, rateChartSvg, tickLabel } from './chart';

describe('rateChartSvg', () => {
  it('rounds the axis up to 1, 2 or 5 times a power of ten', () => {
    expect([0, 0.3, 1, 1.2, 3, 7.5, 11, 240].map(niceMax)).toEqual([1, 0.5, 1, 2, 5, 10, 20, 500]);
  });

  it('draws the line and its filled area over the plot, scaled to the axis maximum', () => {
    const svg = rateChartSvg(
      [
        { t: Date.UTC(2025, 2, 1, 12, 0, 0), rate: 0 },
        { t: Date.UTC(2025, 2, 1, 12, 0, 30), rate: 4 },
        { t: Date.UTC(2025, 2, 1, 12, 1, 0), rate: 2 },
      ],
      { width: 244, height: 132 },
    ).value;
    // Plot: x from 44 to 236 (192 px), y from 10 to 110 (100 px); axis max 5 -> 4 is at y 30, 2 at y 70.
    expect(svg).toContain('<path d="M44.0,110.0 L140.0,30.0 L236.0,70.0" fill="none"');
    expect(svg).toContain('<path d="M44.0,110.0 L140.0,30.0 L236.0,70.0 L236.0,110.0 L44.0,110.0 Z"');
    expect(svg).toContain('>12:00:00</text>');
    expect(svg).toContain('>12:01:00 UTC</text>');
    expect(svg).toContain('aria-label="images per second over time, latest 2"');
    expect(svg.match(/<path /g)).toHaveLength(2);
  });

  it('labels the y axis 0, half and the maximum, each distinct, however small the rates', () => {
    const yTicks = (svg: string) => [...svg.matchAll(/<text class="y-tick"[^>]*>([^<]*)<\/text>/g)].map((m) => m[1]);
    // 0.08 images/s at most: axis 0.1, half 0.05 (both were "0.1").
    expect(yTicks(rateChartSvg([{ t: 0, rate: 0 }, { t: 60_000, rate: 0.08 }]).value)).toEqual(['0.05', '0.1', '0']);
    expect(yTicks(rateChartSvg([{ t: 0, rate: 0.4 }, { t: 60_000, rate: 0.3 }]).value)).toEqual(['0.25', '0.5', '0']);
    expect(yTicks(rateChartSvg([{ t: 0, rate: 3 }, { t: 60_000, rate: 170 }]).value)).toEqual(['100', '200', '0']);
    expect([0.05, 0.1, 2.5, 0.30000000000000004, 1e-3].map(tickLabel)).toEqual(['0.05', '0.1', '2.5', '0.3', '0.001']);
  });

  it('says so instead of drawing fewer than two points', () => {
    const svg = rateChartSvg([{ t: 1, rate: 3 }]).value;
    expect(svg).toContain('not enough progress to chart yet');
    expect(svg).not.toContain('<path');
  });
});
