// Fixtures for the tests of every package (`@layertap/contracts/testing`): one valid dataset configuration,
// so a new required field is added here once. Not used by the apps.
import type { DatasetConfig } from './queue-contract';

/** A valid configuration of run 0 of `datasetId` (VGG16, one small layer, npy outputs); `overrides` replace fields. */
export function datasetConfig(datasetId = 'ds', overrides: Partial<DatasetConfig> = {}): DatasetConfig {
  return {
    datasetId,
    model: 'vgg16',
    output: 's3://bucket/out',
    layers: [{ spec: 'conv1_1', canonical: 'block1_conv1', shape: [64, 224, 224] }],
    seed: 0,
    preprocess: 'torchvision',
    imageSize: 64,
    batchSize: 2,
    chunkSize: 2,
    dtype: 'float32',
    layout: 'chw',
    pool: 'none',
    format: 'npy',
    totalSamples: 5,
    submittedAt: '2025-03-01T12:00:00.000Z',
    run: 0,
    ...overrides,
  };
}

