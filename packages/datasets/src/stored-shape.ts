import type { DatasetConfig } from '@layertap/contracts';
import { modelFor } from '@layertap/model/models';

/**
 * The shape a layer's arrays are stored with for a dataset (its layout and global pooling applied). Computed
 * once, at submit, into the plan the jobs carry (`LayerRequest.shape`).
 */
export function storedShape(canonical: string, dataset: Pick<DatasetConfig, 'imageSize' | 'layout' | 'pool'> & { model?: DatasetConfig['model']; onnx?: DatasetConfig['onnx'] }): number[] {
  const chw = modelFor(dataset).outputShape(canonical, dataset.imageSize);
  if (chw.length === 3 && dataset.pool !== 'none') return [chw[0] as number];
  if (chw.length === 3 && dataset.layout === 'hwc') return [chw[1] as number, chw[2] as number, chw[0] as number];
  return chw;
}
