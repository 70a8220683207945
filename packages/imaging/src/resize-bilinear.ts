import type { Box, RgbImage } from './preprocessing';

// Pillow's fixed-point resampling (libImaging/Resample.c), reproduced so that outputs match torchvision and
// Keras, which both resize PIL images, bit for bit. libvips' linear kernel is close but not equal (upsampling
// differs by several levels, downsampling by up to ~10 on edges).
const PRECISION_BITS = 32 - 8 - 2;
const ONE = 1 << PRECISION_BITS;
const HALF = 1 << (PRECISION_BITS - 1);
const MAX = 1 << (PRECISION_BITS + 8);

interface Coefficients {
  /** Taps per output pixel (the row length in `weights`). */
  taps: number;
  /** Fixed-point weights, `taps` per output pixel. */
  weights: Int32Array;
  /** First input pixel and number of input pixels, per output pixel. */
  bounds: Int32Array;
}

/**
 * Pillow's `precompute_coeffs` for the bilinear (triangle) filter: when shrinking, the filter is widened by the
 * scale so every input pixel contributes (antialiasing); when enlarging, it is plain linear interpolation with
 * pixel centres at +0.5.
 */
export function bilinearCoefficients(inSize: number, outSize: number): Coefficients {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = filterScale; // the triangle filter's support is 1
  const taps = Math.ceil(support) * 2 + 1;
  const weights = new Int32Array(outSize * taps);
  const bounds = new Int32Array(outSize * 2);
  const raw = new Float64Array(taps);
  const inverse = 1 / filterScale;
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const count = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    let sum = 0;
    for (let x = 0; x < count; x++) {
      const t = Math.abs((x + xmin - center + 0.5) * inverse);
      const w = t < 1 ? 1 - t : 0;
      raw[x] = w;
      sum += w;
    }
    for (let x = 0; x < count; x++) {
      const k = sum !== 0 ? (raw[x] as number) / sum : (raw[x] as number);
      // Weights of the triangle filter are never negative: Pillow's rounding for them is (int)(0.5 + k * ONE).
      weights[xx * taps + x] = Math.trunc(0.5 + k * ONE);
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = count;
  }
  return { taps, weights, bounds };
}

function clip8(sum: number): number {
  if (sum <= 0) return 0;
  if (sum >= MAX) return 255;
  return sum >> PRECISION_BITS;
}

/**
 * Resizes 8-bit RGB pixels to `width` x `height` exactly as Pillow's `Image.resize(size, Image.BILINEAR)` does
 * (a horizontal pass, rounded to 8 bits, then a vertical pass), and returns the `region` of the result
 * (default: all of it). Computing only the region gives the same pixels as resizing then cropping, with less
 * work: torchvision's center crop keeps about 57% of a 341x256 resize.
 */
export function resizeBilinear(image: RgbImage, width: number, height: number, region?: Box): RgbImage {
  const box = region ?? { left: 0, top: 0, width, height };
  if (
    !Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1 ||
    box.left < 0 || box.top < 0 || box.width < 1 || box.height < 1 ||
    box.left + box.width > width || box.top + box.height > height
  ) {
    throw new RangeError(
      `invalid resize to ${width}x${height} (region ${box.width}x${box.height} at ${box.left},${box.top})`,
    );
  }
  if (image.data.length !== image.width * image.height * 3) {
    throw new RangeError(`expected ${image.width}x${image.height}x3 bytes, got ${image.data.length}`);
  }
  const needHorizontal = width !== image.width;
  const needVertical = height !== image.height;

  // Input rows the vertical pass reads (or, without one, the rows of the region itself).
  let firstRow = box.top;
  let endRow = box.top + box.height;
  const vertical = needVertical ? cachedCoefficients(image.height, height) : undefined;
  if (vertical) {
    firstRow = vertical.bounds[box.top * 2] as number;
    const last = box.top + box.height - 1;
    endRow = (vertical.bounds[last * 2] as number) + (vertical.bounds[last * 2 + 1] as number);
  }

  // Horizontal pass over the rows [firstRow, endRow), for the region's columns only. When a vertical pass
  // follows, its input lives in a scratch buffer reused from call to call (the resize is synchronous): one
  // allocation fewer per image for the garbage collector.
  const bytes = (endRow - firstRow) * box.width * 3;
  const target = vertical ? scratch(bytes) : new Uint8Array(bytes);
  const rows = needHorizontal
    ? horizontalPass(image, cachedCoefficients(image.width, width), box.left, box.width, firstRow, endRow, target)
    : copyColumns(image, box.left, box.width, firstRow, endRow, target);
  if (!vertical) return { data: rows, width: box.width, height: box.height };
  return { data: verticalPass(rows, box.width, vertical, firstRow, box.top, box.height), width: box.width, height: box.height };
}

/** Coefficients of the last few (input, output) sizes: a dataset's photos mostly share a handful of sizes. */
const coefficientCache = new Map<string, Coefficients>();
const CACHED_SIZES = 16;

function cachedCoefficients(inSize: number, outSize: number): Coefficients {
  const key = `${inSize}>${outSize}`;
  let found = coefficientCache.get(key);
  if (found) {
    // Most recently used last, so the first entry is the one to drop.
    coefficientCache.delete(key);
  } else {
    found = bilinearCoefficients(inSize, outSize);
    if (coefficientCache.size >= CACHED_SIZES) coefficientCache.delete(coefficientCache.keys().next().value as string);
  }
  coefficientCache.set(key, found);
  return found;
}

let scratchBuffer = new Uint8Array(0);

/** `bytes` of the scratch buffer (grown when too small). */
function scratch(bytes: number): Uint8Array {
  if (scratchBuffer.length < bytes) scratchBuffer = new Uint8Array(bytes);
  return scratchBuffer.subarray(0, bytes);
}

function horizontalPass(
  image: RgbImage,
  coefficients: Coefficients,
  firstColumn: number,
  columns: number,
  firstRow: number,
  endRow: number,
  out: Uint8Array,
): Uint8Array {
  const { taps, weights, bounds } = coefficients;
  const src = image.data;
  const rowBytes = image.width * 3;
  let o = 0;
  for (let y = firstRow; y < endRow; y++) {
    const rowStart = y * rowBytes;
    for (let xx = firstColumn; xx < firstColumn + columns; xx++) {
      const count = bounds[xx * 2 + 1] as number;
      const k0 = xx * taps;
      let p = rowStart + (bounds[xx * 2] as number) * 3;
      // Sums stay below 2^31 (weights sum to 2^22, values to 255): int32 maths throughout.
      let s0 = HALF;
      let s1 = HALF;
      let s2 = HALF;
      for (let x = 0; x < count; x++) {
        const k = weights[k0 + x] as number;
        s0 = (s0 + (src[p] as number) * k) | 0;
        s1 = (s1 + (src[p + 1] as number) * k) | 0;
        s2 = (s2 + (src[p + 2] as number) * k) | 0;
        p += 3;
      }
      out[o] = clip8(s0);
      out[o + 1] = clip8(s1);
      out[o + 2] = clip8(s2);
      o += 3;
    }
  }
  return out;
}

function copyColumns(image: RgbImage, firstColumn: number, columns: number, firstRow: number, endRow: number, out: Uint8Array): Uint8Array {
  for (let y = firstRow; y < endRow; y++) {
    const start = (y * image.width + firstColumn) * 3;
    out.set(image.data.subarray(start, start + columns * 3), (y - firstRow) * columns * 3);
  }
  return out;
}

/**
 * Vertical pass; `rows` starts at input row `firstRow`. Each output value sums its column's taps in a register
 * (the rows it reads, a few hundred bytes each, stay in the L1 cache): no accumulator row to store and reload.
 */
function verticalPass(
  rows: Uint8Array,
  columns: number,
  coefficients: Coefficients,
  firstRow: number,
  firstOut: number,
  outRows: number,
): Uint8Array {
  const { taps, weights, bounds } = coefficients;
  const stride = columns * 3;
  const out = new Uint8Array(outRows * stride);
  for (let yy = firstOut; yy < firstOut + outRows; yy++) {
    const ymin = (bounds[yy * 2] as number) - firstRow;
    const count = bounds[yy * 2 + 1] as number;
    const k0 = yy * taps;
    const base = ymin * stride;
    const o = (yy - firstOut) * stride;
    for (let i = 0; i < stride; i++) {
      let s = HALF;
      let p = base + i;
      for (let y = 0; y < count; y++) {
        s = (s + (rows[p] as number) * (weights[k0 + y] as number)) | 0;
        p += stride;
      }
      out[o + i] = clip8(s);
    }
  }
  return out;
}
