import { html, type SafeHtml } from './html';

/** Images per second at a moment (epoch ms). */
export interface RatePoint {
  t: number;
  rate: number;
}

export interface ChartOptions {
  width?: number;
  height?: number;
  /** Shown instead of a line with fewer than two points. Default: "not enough progress to chart yet". */
  emptyText?: string;
}

/** A round axis maximum at or above `value` (1, 2, 5 x 10^n). */
export function niceMax(value: number): number {
  if (!(value > 0)) return 1;
  const base = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) if (step * base >= value) return step * base;
  return 10 * base;
}

function clock(t: number): string {
  return new Date(t).toISOString().slice(11, 19);
}

function num(n: number): string {
  return Number.isInteger(n) ? String(n) : n.toFixed(1);
}

/** An axis label: the value to 6 significant digits, so 0.05 and 0.1 (or 0.25 and 0.5) stay apart. */
export function tickLabel(value: number): string {
  return String(Number(value.toPrecision(6)));
}

/**
 * An inline SVG line chart of images/s over time: a filled line, a y axis from 0 to a round maximum, and the
 * first and last times (UTC) under it. Every value drawn is a number or escaped text.
 */
export function rateChartSvg(points: readonly RatePoint[], options: ChartOptions = {}): SafeHtml {
  const width = options.width ?? 640;
  const height = options.height ?? 160;
  const left = 44;
  const right = 8;
  const top = 10;
  const bottom = 22;
  const plotW = width - left - right;
  const plotH = height - top - bottom;
  const sorted = points.filter((p) => Number.isFinite(p.t) && Number.isFinite(p.rate)).sort((a, b) => a.t - b.t);
  const frame = html`<rect x="${left}" y="${top}" width="${plotW}" height="${plotH}" fill="none" stroke="#3a3f4b"/>`;
  if (sorted.length < 2) {
    return html`<svg class="chart" role="img" aria-label="images per second: no data yet" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}">${frame}<text x="${left + plotW / 2}" y="${top + plotH / 2}" text-anchor="middle" fill="#8a93a6" font-size="12">${options.emptyText ?? 'not enough progress to chart yet'}</text></svg>`;
  }
  const t0 = sorted[0]!.t;
  const t1 = sorted.at(-1)!.t;
  const span = Math.max(1, t1 - t0);
  const max = niceMax(Math.max(...sorted.map((p) => p.rate)));
  const x = (t: number) => left + ((t - t0) / span) * plotW;
  const y = (r: number) => top + plotH - (Math.max(0, r) / max) * plotH;
  const line = sorted.map((p, i) => `${i === 0 ? 'M' : 'L'}${x(p.t).toFixed(1)},${y(p.rate).toFixed(1)}`).join(' ');
  const area = `${line} L${x(t1).toFixed(1)},${(top + plotH).toFixed(1)} L${x(t0).toFixed(1)},${(top + plotH).toFixed(1)} Z`;
  const last = sorted.at(-1)!;
  const grid = [0.5, 1].map((f) => html`<line x1="${left}" x2="${left + plotW}" y1="${y(max * f)}" y2="${y(max * f)}" stroke="#2a2f3a"/><text class="y-tick" x="${left - 4}" y="${y(max * f) + 4}" text-anchor="end" font-size="10" fill="#8a93a6">${tickLabel(max * f)}</text>`);
  return html`<svg class="chart" role="img" aria-label="${`images per second over time, latest ${num(last.rate)}`}" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}">
${grid}${frame}
<path d="${area}" fill="#4f8cff" fill-opacity="0.18"/>
<path d="${line}" fill="none" stroke="#4f8cff" stroke-width="1.6"/>
<text class="y-tick" x="${left - 4}" y="${top + plotH + 4}" text-anchor="end" font-size="10" fill="#8a93a6">0</text>
<text class="x-start" x="${left}" y="${height - 6}" font-size="10" fill="#8a93a6">${clock(t0)}</text>
<text class="x-end" x="${left + plotW}" y="${height - 6}" text-anchor="end" font-size="10" fill="#8a93a6">${clock(t1)} UTC</text>
</svg>`;
}
