import { ErrorCode, ValidationError, type DatasetConfig, type DatasetDocument } from '@layertap/contracts';
import { storedShape } from './stored-shape';

/** A layer as readers see it: the spec (it names the outputs), its canonical name, the stored shape of one sample. */
export interface DatasetLayer {
  spec: string;
  canonical: string;
  shape: number[];
}

/** What reading a dataset's arrays needs: from its `dataset.json`, or from its config while a run goes on. */
export interface DatasetInfo extends Pick<DatasetConfig, 'datasetId' | 'preprocess' | 'imageSize' | 'dtype' | 'layout' | 'pool' | 'format'> {
  layers: DatasetLayer[];
}

export function infoFromConfig(config: DatasetConfig): DatasetInfo {
  const { datasetId, preprocess, imageSize, dtype, layout, pool, format } = config;
  const layers = config.layers.map((l) => ({ spec: l.spec, canonical: l.canonical, shape: storedShape(l.canonical, config) }));
  return { datasetId, preprocess, imageSize, dtype, layout, pool, format, layers };
}

export function infoFromDocument(doc: DatasetDocument): DatasetInfo {
  const { datasetId, imageSize, dtype, layout, pool, format } = doc;
  const layers = doc.layers.map((l) => ({ spec: l.spec, canonical: l.canonical, shape: [...l.shape] }));
  return { datasetId, preprocess: doc.preprocessing.mode, imageSize, dtype, layout, pool, format, layers };
}

/**
 * The layer `wanted` names, by its spec or its canonical name; the first layer when `wanted` is undefined.
 * An unknown name throws `ValidationError` (`unknown_layer`) listing the dataset's layers.
 */
export function findLayer(info: Pick<DatasetInfo, 'datasetId' | 'layers'>, wanted: string | undefined): DatasetLayer {
  if (wanted === undefined) return info.layers[0]!;
  const layer = info.layers.find((l) => l.spec === wanted) ?? info.layers.find((l) => l.canonical === wanted);
  if (!layer) {
    const known = info.layers.map((l) => (l.spec === l.canonical ? l.spec : `${l.spec} (${l.canonical})`)).join(', ');
    throw new ValidationError(ErrorCode.UnknownLayer, `dataset ${info.datasetId} has no layer ${JSON.stringify(wanted)}; it has ${known}`);
  }
  return layer;
}
