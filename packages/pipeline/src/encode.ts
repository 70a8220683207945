// From a batch output to what is stored for one sample: its slice in the stored layout, pooled if asked,
// as float32 values or float16 bits, and as a `.npy` file.
import type { DatasetConfig } from '@layertap/contracts';
import { encodeNpy, float32ToFloat16Bits, sampleArray } from '@layertap/storage';
import { globalPool } from './global-pool';
import type { LayerBuffer } from './inference/protocol';

type StoredSettings = Pick<DatasetConfig, 'layout' | 'pool' | 'dtype'>;

/** Sample `k` of a batch output, in the dataset's layout, globally pooled when the dataset asks for it. */
export function storedSample(layer: LayerBuffer, k: number, dataset: Pick<DatasetConfig, 'layout' | 'pool'>): { data: Float32Array; shape: number[] } {
  const sample = sampleArray(layer.data, layer.shape, k, dataset.layout, layer.layout);
  return globalPool(sample.data, sample.shape, dataset.layout, dataset.pool);
}

/** Sample `k` of a batch output as the `.npy` file stored for it (its shape is checked against `shape`). */
export function encodeSampleNpy(layer: LayerBuffer, k: number, dataset: StoredSettings, shape: readonly number[]): Buffer {
  const { data, shape: got } = storedSample(layer, k, dataset);
  if (got.length !== shape.length || got.some((d, i) => d !== shape[i])) {
    throw new RangeError(`${layer.spec}: the engine gave shape ${JSON.stringify(got)}, the plan expects ${JSON.stringify(shape)}`);
  }
  return dataset.dtype === 'float16' ? encodeNpy(float32ToFloat16Bits(data), got, 'float16') : encodeNpy(data, got, 'float32');
}
