import { datasetConfig } from '@layertap/contracts/testing';
import type { DatasetDetail } from '../dataset-view';

/** A dataset as the views receive it; `overrides` replaces top-level fields. */
export function detail(overrides: Partial<DatasetDetail> = {}): DatasetDetail {
  return {
    datasetId: 'cats-1',
    state: 'running',
    config: datasetConfig('cats-1', {
      output: 's3://bucket/acts',
      layers: [
        { spec: 'features.9', canonical: 'block2_pool', shape: [128, 56, 56] },
        { spec: 'fc2', canonical: 'fc2', shape: [4096] },
      ],
      imageSize: 224,
      batchSize: 16,
      chunkSize: 64,
      totalSamples: 100,
    }),
    progress: { total: 100, ok: 40, failed: 2, pending: 58, failures: { decode_failed: 2 }, run: 0, startedAt: 1_000, updatedAt: 9_000, finished: false },
    chunks: { total: 2, done: 0, failed: 0, pending: 2 },
    chunkFailures: [],
    engines: [],
    cancelled: false,
    parentJob: { id: 'cats-1~r0', state: 'waiting-children' },
    rate: 5.25,
    etaSeconds: 11,
    finishedAt: null,
    durationSeconds: null,
    averageRate: null,
    outputLocation: 's3://bucket/acts/cats-1/',
    weights: 'random, seed 0',
    throughput: [],
    failureExamples: {},
    preprocessing: { mode: 'torchvision', imageSize: 224, reference: 'torchvision IMAGENET1K_V1', channelOrder: 'RGB', resize: 'shorter side', crop: 'center', formula: 'f' },
    runs: [{ run: 0, submittedAt: '2025-03-01T12:00:00.000Z', samples: 100 }],
    ...overrides,
  };
}
