import type { DatasetConfig } from '@layertap/contracts';
import { layerOutputShape } from '@layertap/model/layers';

/** The shape a layer's arrays are stored with for this dataset (its layout and global pooling applied). */
export function storedShape(canonical: string, dataset: Pick<DatasetConfig, 'imageSize' | 'layout' | 'pool'>): number[] {
  const chw = layerOutputShape(canonical, dataset.imageSize);
  if (chw.length === 3 && dataset.pool !== 'none') return [chw[0] as number];
  if (chw.length === 3 && dataset.layout === 'hwc') return [chw[1] as number, chw[2] as number, chw[0] as number];
  return chw;
}
