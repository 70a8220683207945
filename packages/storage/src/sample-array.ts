import type { Layout } from '@layertap/contracts';

/** One sample's activations and the shape they are stored with. */
export interface SampleArray {
  data: Float32Array;
  shape: number[];
}

/**
 * Memory order of a 4-D batch as an engine returned it: `nhwc` (TF.js) or `nchw` (ONNX Runtime). 2-D
 * batches are [N, C] either way.
 */
export type BatchLayout = 'nhwc' | 'nchw';

/** Side of the square tiles the transposes walk: 64 x 64 floats (16 KB) of source and of destination fit in L1/L2. */
const TILE = 64;

/**
 * Copies sample `index` out of a batch output and stores it as `(C, H, W)` for `chw` (as PyTorch stores
 * feature maps), `(H, W, C)` for `hwc`, or `(C,)` for a 2-D output. The batch is [N, H, W, C] when
 * `batchLayout` is `nhwc` (the default) and [N, C, H, W] when it is `nchw`. When the batch already has the
 * stored order the sample is one contiguous copy; otherwise it is a tiled transpose.
 */
export function sampleArray(
  batch: Float32Array,
  shape: readonly number[],
  index: number,
  layout: Layout,
  batchLayout: BatchLayout = 'nhwc',
): SampleArray {
  if (shape.length !== 2 && shape.length !== 4) {
    const expected = batchLayout === 'nchw' ? '[N, C, H, W]' : '[N, H, W, C]';
    throw new RangeError(`batch shape must be ${expected} or [N, C], got ${JSON.stringify(shape)}`);
  }
  if (batchLayout !== 'nhwc' && batchLayout !== 'nchw') throw new RangeError(`unknown batch layout ${JSON.stringify(batchLayout)}`);
  let size = 1;
  for (const dim of shape) {
    if (!Number.isSafeInteger(dim) || dim < 0) throw new RangeError(`batch shape ${JSON.stringify(shape)} has an invalid dimension`);
    size *= dim;
  }
  if (batch.length !== size) throw new RangeError(`batch shape ${JSON.stringify(shape)} needs ${size} values, got ${batch.length}`);
  const n = shape[0] as number;
  if (!Number.isInteger(index) || index < 0 || index >= n) throw new RangeError(`sample index ${index} is outside the batch of ${n}`);

  const sampleSize = size / n;
  const start = index * sampleSize;
  if (shape.length === 2) return { data: batch.slice(start, start + sampleSize), shape: [sampleSize] };

  if (batchLayout === 'nhwc') {
    const [, h, w, c] = shape as [number, number, number, number];
    if (layout === 'hwc') return { data: batch.slice(start, start + sampleSize), shape: [h, w, c] };
    // (H*W, C) -> (C, H*W)
    return { data: transpose(batch, start, h * w, c), shape: [c, h, w] };
  }
  const [, c, h, w] = shape as [number, number, number, number];
  if (layout === 'chw') return { data: batch.slice(start, start + sampleSize), shape: [c, h, w] };
  // (C, H*W) -> (H*W, C)
  return { data: transpose(batch, start, c, h * w), shape: [h, w, c] };
}

/**
 * The [cols, rows] transpose of the row-major [rows, cols] matrix at `src[offset...]`, walked in tiles so
 * that neither the reads nor the writes stride through more memory than the cache holds.
 */
function transpose(src: Float32Array, offset: number, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r0 = 0; r0 < rows; r0 += TILE) {
    const r1 = Math.min(r0 + TILE, rows);
    for (let c0 = 0; c0 < cols; c0 += TILE) {
      const c1 = Math.min(c0 + TILE, cols);
      for (let r = r0; r < r1; r++) {
        let s = offset + r * cols + c0;
        for (let c = c0, d = c0 * rows + r; c < c1; c++, d += rows) out[d] = src[s++] as number;
      }
    }
  }
  return out;
}
