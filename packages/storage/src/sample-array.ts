import type { Layout } from '@layertap/contracts';

/** One sample's activations and the shape they are stored with. */
export interface SampleArray {
  data: Float32Array;
  shape: number[];
}

/**
 * Copies sample `index` out of a batch output in NHWC (or NC) order: `(C, H, W)` for `chw` (transposed, as
 * PyTorch stores feature maps), `(H, W, C)` for `hwc`, `(C,)` for a 2-D output. Runs once per sample per
 * layer, so the transpose is a plain loop.
 */
export function sampleArray(batch: Float32Array, shape: readonly number[], index: number, layout: Layout): SampleArray {
  if (shape.length !== 2 && shape.length !== 4) {
    throw new RangeError(`batch shape must be [N, H, W, C] or [N, C], got ${JSON.stringify(shape)}`);
  }
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

  const [, h, w, c] = shape as [number, number, number, number];
  if (layout === 'hwc') return { data: batch.slice(start, start + sampleSize), shape: [h, w, c] };
  const plane = h * w;
  const out = new Float32Array(sampleSize);
  // Sequential reads; each channel's writes walk one output plane.
  let src = start;
  for (let pixel = 0; pixel < plane; pixel++) {
    for (let channel = 0, dst = pixel; channel < c; channel++, dst += plane) out[dst] = batch[src++] as number;
  }
  return { data: out, shape: [c, h, w] };
}
