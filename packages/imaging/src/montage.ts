import type { Layout, Preprocess } from '@layertap/contracts';
import sharp from 'sharp';
import { decodeImage } from './decode';
import { centerCropBox, resizeTarget, torchvisionResizeSize, type RgbImage } from './preprocessing';
import { resizeBilinear } from './resize-bilinear';

/** One sample's activation of one layer, as stored in its `.npy`. */
export interface MontageActivation {
  /** The values in C order (float16 arrays converted to float32 first). */
  data: Float32Array;
  /** `(C, H, W)` for `chw`, `(H, W, C)` for `hwc`; `(C,)` for dense or pooled layers (rendered as a bar strip). */
  shape: readonly number[];
  layout: Layout;
}

/** The preprocessing a dataset used, to show the input as the network saw it (resized, cropped). */
export interface MontageView {
  preprocess: Preprocess;
  imageSize: number;
}

export interface MontageOptions {
  /** The source image, drawn left of the feature maps. Default: feature maps only. */
  input?: {
    bytes: Uint8Array;
    /** Crop and squash the image as this preprocessing did, so it lines up with the maps. Default: the whole image. */
    view?: MontageView;
  };
  activation: MontageActivation;
  /** How many channels to show: the most active by mean activation. Default 16. */
  channels?: number;
  /** Side of one channel tile in pixels (maps are scaled up with nearest neighbour). Default 96. */
  size?: number;
  /** Channel numbers on the tiles. Default true. */
  labels?: boolean;
  /** A line of text above the montage (dataset, sample, layer). Default none. */
  title?: string;
}

export const DEFAULT_MONTAGE_CHANNELS = 16;
export const DEFAULT_MONTAGE_TILE = 96;
const PAD = 8;
const GAP = 4;
const TITLE_HEIGHT = 22;
const BACKGROUND = 24;

/** Channels, height and width of a `(C,H,W)` or `(H,W,C)` activation; throws when shape and data disagree. */
export function featureDims(activation: MontageActivation): { channels: number; height: number; width: number } {
  const { shape, layout, data } = activation;
  if (shape.length === 1) return { channels: shape[0] ?? 0, height: 1, width: 1 };
  if (shape.length !== 3) throw new RangeError(`expected a (C,H,W), (H,W,C) or (C,) activation, got shape (${shape.join(', ')})`);
  const [a = 0, b = 0, c = 0] = shape;
  const dims = layout === 'chw' ? { channels: a, height: b, width: c } : { channels: c, height: a, width: b };
  if (dims.channels * dims.height * dims.width !== data.length) {
    throw new RangeError(`shape (${shape.join(', ')}) holds ${dims.channels * dims.height * dims.width} values but the data has ${data.length}`);
  }
  if (dims.channels < 1 || dims.height < 1 || dims.width < 1) throw new RangeError(`empty activation (${shape.join(', ')})`);
  return dims;
}

/** The mean activation of every channel (non-finite values count as 0). */
export function channelMeans(activation: MontageActivation): Float64Array {
  const { channels, height, width } = featureDims(activation);
  const plane = height * width;
  const sums = new Float64Array(channels);
  const { data } = activation;
  for (let i = 0; i < data.length; i++) {
    const v = data[i] as number;
    if (!Number.isFinite(v)) continue;
    const c = activation.layout === 'chw' || activation.shape.length === 1 ? Math.floor(i / plane) : i % channels;
    sums[c] = (sums[c] as number) + v;
  }
  for (let c = 0; c < channels; c++) sums[c] = (sums[c] as number) / plane;
  return sums;
}

/** Indices of the `count` highest means, highest first (ties: lower index first). */
export function mostActiveChannels(means: ArrayLike<number>, count: number): number[] {
  const order = Array.from({ length: means.length }, (_, i) => i);
  order.sort((a, b) => (means[b] as number) - (means[a] as number) || a - b);
  return order.slice(0, Math.max(0, count));
}

/** One channel as 8-bit grey, its own minimum at 0 and maximum at 255 (a constant channel is all 0). */
export function channelToGrey(activation: MontageActivation, channel: number): { data: Uint8Array; width: number; height: number; min: number; max: number } {
  const { channels, height, width } = featureDims(activation);
  if (!Number.isInteger(channel) || channel < 0 || channel >= channels) throw new RangeError(`channel ${channel} is not in 0..${channels - 1}`);
  const plane = height * width;
  const at = activation.layout === 'chw' ? (p: number) => channel * plane + p : (p: number) => p * channels + channel;
  let min = Infinity;
  let max = -Infinity;
  for (let p = 0; p < plane; p++) {
    const v = activation.data[at(p)] as number;
    if (!Number.isFinite(v)) continue;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const out = new Uint8Array(plane);
  const range = max - min;
  if (range > 0) {
    for (let p = 0; p < plane; p++) {
      const v = activation.data[at(p)] as number;
      out[p] = Number.isFinite(v) ? Math.round(((v - min) / range) * 255) : 0;
    }
  }
  return { data: out, width, height, min: Number.isFinite(min) ? min : 0, max: Number.isFinite(max) ? max : 0 };
}

/** Columns and rows of a near-square grid for `n` tiles. */
export function gridShape(n: number): { cols: number; rows: number } {
  const cols = Math.max(1, Math.ceil(Math.sqrt(n)));
  return { cols, rows: Math.max(1, Math.ceil(n / cols)) };
}

/** An RGB canvas being drawn on. */
class Canvas {
  readonly data: Buffer;
  constructor(
    readonly width: number,
    readonly height: number,
  ) {
    this.data = Buffer.alloc(width * height * 3, BACKGROUND);
  }

  /** Draws a grey image scaled (nearest neighbour, aspect kept) to fit a `box` x `box` square at (x, y). */
  greyTile(grey: { data: Uint8Array; width: number; height: number }, x: number, y: number, box: number): void {
    const scale = Math.min(box / grey.width, box / grey.height);
    const w = Math.max(1, Math.round(grey.width * scale));
    const h = Math.max(1, Math.round(grey.height * scale));
    const ox = x + Math.floor((box - w) / 2);
    const oy = y + Math.floor((box - h) / 2);
    for (let ty = 0; ty < h; ty++) {
      const sy = Math.min(grey.height - 1, Math.floor((ty * grey.height) / h));
      for (let tx = 0; tx < w; tx++) {
        const sx = Math.min(grey.width - 1, Math.floor((tx * grey.width) / w));
        const v = grey.data[sy * grey.width + sx] as number;
        this.data.fill(v, ((oy + ty) * this.width + ox + tx) * 3, ((oy + ty) * this.width + ox + tx) * 3 + 3);
      }
    }
  }

  rgb(image: RgbImage, x: number, y: number): void {
    for (let row = 0; row < image.height; row++) {
      const from = row * image.width * 3;
      this.data.set(image.data.subarray(from, from + image.width * 3), ((y + row) * this.width + x) * 3);
    }
  }

  fillRect(x: number, y: number, w: number, h: number, value: number): void {
    for (let row = y; row < y + h; row++) this.data.fill(value, (row * this.width + x) * 3, (row * this.width + x + w) * 3);
  }
}

/** The image as the network saw it (torchvision: resize + center crop; caffe: squashed square), or whole. */
function inputView(rgb: RgbImage, view: MontageView | undefined): RgbImage {
  if (!view) return rgb;
  if (view.preprocess === 'torchvision') {
    const target = resizeTarget(rgb.width, rgb.height, torchvisionResizeSize(view.imageSize));
    return resizeBilinear(rgb, target.width, target.height, centerCropBox(target.width, target.height, view.imageSize));
  }
  return resizeBilinear(rgb, view.imageSize, view.imageSize);
}

/** Scales RGB pixels to fit inside `box` x `box` (aspect kept). */
async function fitInside(rgb: RgbImage, box: number): Promise<RgbImage> {
  const { data, info } = await sharp(Buffer.from(rgb.data.buffer, rgb.data.byteOffset, rgb.data.length), {
    raw: { width: rgb.width, height: rgb.height, channels: 3 },
  })
    .resize(box, box, { fit: 'inside', kernel: rgb.width < box && rgb.height < box ? 'nearest' : 'lanczos3' })
    .raw()
    .toBuffer({ resolveWithObject: true });
  return { data: new Uint8Array(data.buffer, data.byteOffset, data.length), width: info.width, height: info.height };
}

function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
}

interface Label {
  x: number;
  y: number;
  text: string;
}

function svgOverlay(width: number, height: number, title: string | undefined, labels: Label[]): Buffer {
  const parts = [`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">`];
  if (title) parts.push(`<text x="${PAD}" y="${PAD + 11}" font-family="DejaVu Sans, sans-serif" font-size="13" fill="#e8e8e8">${escapeXml(title)}</text>`);
  for (const l of labels) {
    const w = 7 * l.text.length + 6;
    parts.push(
      `<rect x="${l.x}" y="${l.y}" width="${w}" height="14" fill="#000" fill-opacity="0.6"/>`,
      `<text x="${l.x + 3}" y="${l.y + 11}" font-family="DejaVu Sans Mono, monospace" font-size="11" fill="#ffd54a">${escapeXml(l.text)}</text>`,
    );
  }
  parts.push('</svg>');
  return Buffer.from(parts.join(''));
}

/** A `(C,)` vector as bars, `width` px wide: each column is the largest value of the channels it covers. */
export function barStrip(values: Float32Array, width: number, height: number): { data: Uint8Array; width: number; height: number } {
  let min = Infinity;
  let max = -Infinity;
  for (const v of values) {
    if (!Number.isFinite(v)) continue;
    min = Math.min(min, v);
    max = Math.max(max, v);
  }
  const floor = Math.min(0, Number.isFinite(min) ? min : 0);
  const range = (Number.isFinite(max) ? max : 0) - floor;
  const out = new Uint8Array(width * height).fill(40);
  for (let x = 0; x < width; x++) {
    const from = Math.floor((x * values.length) / width);
    const to = Math.max(from + 1, Math.floor(((x + 1) * values.length) / width));
    let v = -Infinity;
    for (let i = from; i < to && i < values.length; i++) {
      const value = values[i] as number;
      if (Number.isFinite(value)) v = Math.max(v, value);
    }
    if (!Number.isFinite(v) || range <= 0) continue;
    const bar = Math.round(((v - floor) / range) * height);
    for (let y = height - bar; y < height; y++) out[y * width + x] = 230;
  }
  return { data: out, width, height };
}

/**
 * A PNG of a sample's feature maps: the input image (when given) beside a grid of the `channels` most active
 * channels (by mean activation), each normalised to 0-255 on its own, labelled with its channel number.
 * A `(C,)` activation (dense or pooled layer) is drawn as a bar strip of all its values instead.
 * Throws `SampleError` when the input image cannot be decoded, `RangeError` for an inconsistent activation.
 */
export async function renderMontage(options: MontageOptions): Promise<Buffer> {
  const { activation } = options;
  const size = options.size ?? DEFAULT_MONTAGE_TILE;
  const count = options.channels ?? DEFAULT_MONTAGE_CHANNELS;
  if (!Number.isInteger(size) || size < 8 || size > 1024) throw new RangeError(`size must be an integer from 8 to 1024, got ${size}`);
  if (!Number.isInteger(count) || count < 1) throw new RangeError(`channels must be a positive integer, got ${count}`);
  const dims = featureDims(activation);
  const pooled = activation.shape.length === 1;

  let panels: { width: number; height: number; draw: (canvas: Canvas, x: number, y: number) => Label[] };
  if (pooled) {
    const width = Math.max(4 * size, Math.min(1024, dims.channels));
    const strip = barStrip(activation.data, width, 2 * size);
    panels = {
      width,
      height: strip.height,
      draw: (canvas, x, y) => {
        canvas.rgb(greyToRgb(strip), x, y);
        return [{ x, y, text: `${dims.channels} values` }];
      },
    };
  } else {
    const shown = mostActiveChannels(channelMeans(activation), Math.min(count, dims.channels));
    const { cols, rows } = gridShape(shown.length);
    panels = {
      width: cols * size + (cols - 1) * GAP,
      height: rows * size + (rows - 1) * GAP,
      draw: (canvas, x, y) =>
        shown.map((channel, i) => {
          const tx = x + (i % cols) * (size + GAP);
          const ty = y + Math.floor(i / cols) * (size + GAP);
          canvas.greyTile(channelToGrey(activation, channel), tx, ty, size);
          return { x: tx, y: ty, text: String(channel) };
        }),
    };
  }

  let input: RgbImage | undefined;
  if (options.input) {
    const decoded = await decodeImage(options.input.bytes);
    input = await fitInside(inputView(decoded.rgb, options.input.view), Math.max(panels.height, 2 * size));
  }
  const top = PAD + (options.title ? TITLE_HEIGHT : 0);
  const inputWidth = input ? input.width + 2 * PAD : 0;
  const width = PAD + inputWidth + panels.width + PAD;
  const height = top + Math.max(panels.height, input?.height ?? 0) + PAD;
  const canvas = new Canvas(width, height);
  if (input) canvas.rgb(input, PAD, top);
  if (input) canvas.fillRect(PAD + input.width + PAD - 1, top, 2, Math.max(panels.height, input.height), 64);
  const labels = panels.draw(canvas, PAD + inputWidth, top);

  let image = sharp(canvas.data, { raw: { width, height, channels: 3 } });
  if (options.labels !== false || options.title) {
    image = image.composite([{ input: svgOverlay(width, height, options.title, options.labels === false ? [] : labels), top: 0, left: 0 }]);
  }
  return image.png().toBuffer();
}

function greyToRgb(grey: { data: Uint8Array; width: number; height: number }): RgbImage {
  const data = new Uint8Array(grey.data.length * 3);
  for (let i = 0; i < grey.data.length; i++) data.fill(grey.data[i] as number, i * 3, i * 3 + 3);
  return { data, width: grey.width, height: grey.height };
}
