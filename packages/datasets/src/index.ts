export { DatasetReader, type DatasetReaderOptions, type StoredArray } from './dataset-reader';
export { findLayer, infoFromConfig, infoFromDocument, type DatasetInfo, type DatasetLayer } from './dataset-info';
export { exportLayer, exportPaths, type ExportLayerOptions, type ExportResult } from './export-layer';
export { storedShape } from './stored-shape';
export { globalPool, pooledShape } from './global-pool';
export { readAhead } from './read-ahead';
export { chunkFailedLine, countLines, selectRetry, takeCensus, type CensusEntry, type DatasetCensus } from './dataset-census';
export { closeDataset, datasetDocument, finalizeDataset, type CloseDatasetOptions, type CloseDatasetResult, type FinalizeContext } from './finalize-dataset';
export {
  cancelDataset,
  forgetDataset,
  knownDatasetStatus,
  retryDataset,
  retrySelection,
  unknownDatasetError,
  type CancelOptions,
  type CancelOutcome,
  type ForgetResult,
  type RetryDatasetOptions,
  type RetryDatasetResult,
  type RetrySelection,
} from './dataset-actions';
