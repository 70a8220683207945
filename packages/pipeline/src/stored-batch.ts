// From an engine's batch output to the arrays a dataset stores: each sample in the dataset's layout,
// globally pooled when asked, as float32 values or float16 bits, all samples of a layer in one buffer. This runs
// in the inference process, beside the engine: what crosses the pipe is what gets written (a float16 dataset
// sends half the bytes), and the worker only wraps each sample's slice in an `.npy` header.
import type { Dtype, Layout, Pool } from '@layertap/contracts';
import { float32ToFloat16Bits, npyParts, sampleArray, type BatchLayout } from '@layertap/storage';
import { globalPool } from '@layertap/datasets';

/** How a dataset stores its arrays. */
export interface StoreSettings {
  layout: Layout;
  pool: Pool;
  dtype: Dtype;
}

/** One layer's stored arrays for a batch: [N, ...stored shape], float32 values or float16 bits. */
export interface StoredBatch {
  /** The layer spec as the dataset names it. */
  spec: string;
  canonical: string;
  dtype: Dtype;
  data: Float32Array | Uint16Array;
  /** [N, ...shape of one stored sample]. */
  shape: number[];
}

/**
 * A batch output ([N,H,W,C] `nhwc`, [N,C,H,W] `nchw` or [N,C]) as stored arrays. When the engine's order is
 * already the stored one and nothing is pooled, the values are not copied (float32) or converted in one pass
 * (float16).
 */
export function storeBatch(
  output: { spec: string; canonical: string; data: Float32Array; shape: readonly number[]; layout: BatchLayout },
  store: StoreSettings,
  /** Memory for converted (float16) values, `bytes` long: e.g. buffers reused from batch to batch. Default: new. */
  allocate?: (bytes: number) => ArrayBuffer,
): StoredBatch {
  const { data, shape, layout } = output;
  const n = shape[0] as number;
  const matches = shape.length === 2 || (shape.length === 4 && ((layout === 'nchw' && store.layout === 'chw') || (layout === 'nhwc' && store.layout === 'hwc')));
  let values: Float32Array;
  let sampleShape: number[];
  if (matches && (store.pool === 'none' || shape.length === 2)) {
    values = data;
    sampleShape = shape.length === 2 ? [shape[1] as number] : sampleArrayShape(shape, layout, store.layout);
  } else {
    const first = stored(data, shape, 0, layout, store);
    sampleShape = first.shape;
    const per = first.data.length;
    values = new Float32Array(n * per);
    values.set(first.data, 0);
    for (let k = 1; k < n; k++) values.set(stored(data, shape, k, layout, store).data, k * per);
  }
  return {
    spec: output.spec,
    canonical: output.canonical,
    dtype: store.dtype,
    data: store.dtype === 'float16' ? float32ToFloat16Bits(values, allocate ? new Uint16Array(allocate(values.length * 2)) : undefined) : values,
    shape: [n, ...sampleShape],
  };
}

function stored(data: Float32Array, shape: readonly number[], k: number, layout: BatchLayout, store: StoreSettings): { data: Float32Array; shape: number[] } {
  const sample = sampleArray(data, shape, k, store.layout, layout);
  return globalPool(sample.data, sample.shape, store.layout, store.pool);
}

function sampleArrayShape(shape: readonly number[], layout: BatchLayout, stored: Layout): number[] {
  const [, a, b, c] = shape as [number, number, number, number];
  if (layout === 'nchw') return stored === 'chw' ? [a, b, c] : [b, c, a];
  return stored === 'hwc' ? [a, b, c] : [c, a, b];
}

/** Sample `k` of a stored batch: its values (a view, not a copy) and shape. */
export function storedSample(batch: StoredBatch, k: number): { data: Float32Array | Uint16Array; shape: number[] } {
  const shape = batch.shape.slice(1);
  const per = shape.reduce((a, b) => a * b, 1);
  return { data: batch.data.subarray(k * per, (k + 1) * per), shape };
}

/** Sample `k` of a stored batch as its `.npy` file, in two parts (header, values) that share the batch's memory. */
export function sampleNpy(batch: StoredBatch, k: number): [Buffer, Buffer] {
  const { data, shape } = storedSample(batch, k);
  return npyParts(data, shape, batch.dtype);
}
