// The modes' table (PREPROCESSING) is data in @layertap/contracts; this file implements it.
import { CAFFE_MEAN_BGR, PREPROCESSING, TORCHVISION_MEAN, TORCHVISION_STD, type Preprocess } from '@layertap/contracts';

export { PREPROCESSING };

export const DEFAULT_IMAGE_SIZE = 224;

/** Length of the shorter side before the center crop, for a given crop size (256 for 224; V2: 232 for 224). */
export function torchvisionResizeSize(imageSize: number, resizeFor224 = 256): number {
  return Math.round((imageSize * resizeFor224) / 224);
}

/**
 * Output size of torchvision's `Resize(shorter)` for an image of `width` x `height`: the shorter side becomes
 * `shorter`, the longer one `int(shorter * long / short)` (truncated, as torchvision does).
 */
export function resizeTarget(width: number, height: number, shorter: number): { width: number; height: number } {
  if (width <= height) return { width: shorter, height: Math.trunc((shorter * height) / width) };
  return { width: Math.trunc((shorter * width) / height), height: shorter };
}

/** Python 3's `round()`: halves go to the even neighbour (round(58.5) is 58, round(59.5) is 60). */
export function roundHalfEven(x: number): number {
  const floor = Math.floor(x);
  const diff = x - floor;
  if (diff > 0.5) return floor + 1;
  if (diff < 0.5) return floor;
  return floor % 2 === 0 ? floor : floor + 1;
}

export interface Box {
  left: number;
  top: number;
  width: number;
  height: number;
}

/**
 * torchvision's `CenterCrop(crop)` box: `top = int(round((height - crop) / 2))`, same for left. The image must be
 * at least `crop` on both sides (after `Resize` it always is).
 */
export function centerCropBox(width: number, height: number, crop: number): Box {
  if (width < crop || height < crop) {
    throw new RangeError(`cannot center-crop ${crop}x${crop} from a ${width}x${height} image`);
  }
  return { left: roundHalfEven((width - crop) / 2), top: roundHalfEven((height - crop) / 2), width: crop, height: crop };
}

/**
 * Per-channel lookup tables from a byte value to the model input, computed with float32 rounding at every step
 * exactly as PyTorch does (`x.float().div(255).sub(mean).div(std)`), so outputs match torchvision bit for bit.
 */
function torchvisionTables(means: readonly number[] = TORCHVISION_MEAN, stds: readonly number[] = TORCHVISION_STD): Float32Array[] {
  return [0, 1, 2].map((c) => {
    const mean = Math.fround(means[c] ?? 0);
    const std = Math.fround(stds[c] ?? 1);
    const table = new Float32Array(256);
    for (let v = 0; v < 256; v++) table[v] = Math.fround(Math.fround(Math.fround(v / 255) - mean) / std);
    return table;
  });
}

/** float32(v - float32(mean)), as numpy computes `x[..., c] -= mean` on a float32 array. */
function caffeTables(): Float32Array[] {
  return [0, 1, 2].map((c) => {
    const mean = Math.fround(CAFFE_MEAN_BGR[c] ?? 0);
    const table = new Float32Array(256);
    for (let v = 0; v < 256; v++) table[v] = Math.fround(v - mean);
    return table;
  });
}

const TORCHVISION_TABLES = torchvisionTables();
// V2 weights are evaluated with the same normalisation; only the resize differs.
const TABLES: Record<Preprocess, Float32Array[]> = { torchvision: TORCHVISION_TABLES, 'torchvision-v2': TORCHVISION_TABLES, caffe: caffeTables() };

const customTables = new Map<string, Float32Array[]>();

/**
 * Converts 8-bit RGB pixels (HWC) with a normalisation of the caller's (`--mean`/`--std`, RGB on the [0, 1]
 * scale) in torchvision's float32 arithmetic: ((v / 255) - mean[c]) / std[c].
 */
export function normalizeWithStats(rgb: Uint8Array, stats: { mean: readonly number[]; std: readonly number[] }, out?: Float32Array): Float32Array {
  const key = `${stats.mean.join(',')}/${stats.std.join(',')}`;
  let tables = customTables.get(key);
  if (!tables) {
    tables = torchvisionTables(stats.mean, stats.std);
    if (customTables.size > 16) customTables.clear();
    customTables.set(key, tables);
  }
  return applyTables(rgb, tables, false, out);
}

/** Tightly packed 8-bit RGB pixels, row-major (HWC). */
export interface RgbImage {
  data: Uint8Array;
  width: number;
  height: number;
}

/**
 * Converts 8-bit RGB pixels (HWC) into torchvision's input space: scaled to [0, 1] and normalised with the
 * ImageNet mean and std, RGB order, HWC layout.
 */
export function normalizeTorchvision(rgb: Uint8Array, out?: Float32Array): Float32Array {
  return applyTables(rgb, TABLES.torchvision, false, out);
}

/**
 * Converts 8-bit RGB pixels (HWC) into Keras' caffe input space: BGR order, the ImageNet BGR mean subtracted on
 * the 0-255 scale, HWC layout.
 */
export function normalizeCaffe(rgb: Uint8Array, out?: Float32Array): Float32Array {
  return applyTables(rgb, TABLES.caffe, true, out);
}

/** `out`, when given, receives the values (it must have the input's length): no new array. */
function applyTables(rgb: Uint8Array, tables: Float32Array[], bgr: boolean, target?: Float32Array): Float32Array {
  if (rgb.length % 3 !== 0) throw new RangeError(`expected RGB bytes, got a length of ${rgb.length}`);
  if (target && target.length !== rgb.length) throw new RangeError(`output holds ${target.length} values, the input ${rgb.length}`);
  const [t0, t1, t2] = tables as [Float32Array, Float32Array, Float32Array];
  const out = target ?? new Float32Array(rgb.length);
  for (let i = 0; i < rgb.length; i += 3) {
    const r = rgb[i] as number;
    const g = rgb[i + 1] as number;
    const b = rgb[i + 2] as number;
    if (bgr) {
      out[i] = t0[b] as number;
      out[i + 1] = t1[g] as number;
      out[i + 2] = t2[r] as number;
    } else {
      out[i] = t0[r] as number;
      out[i + 1] = t1[g] as number;
      out[i + 2] = t2[b] as number;
    }
  }
  return out;
}
