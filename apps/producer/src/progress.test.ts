import { datasetConfig } from '@layertap/contracts/testing';
import type { DatasetStatus } from '@layertap/queue';
import { RateMeter, formatDuration, formatStatus, progressLine } from './progress';

function status(progress: Partial<DatasetStatus['progress']>, overrides: Partial<DatasetStatus> = {}): DatasetStatus {
  return {
    datasetId: 'cats-0123456789',
    state: 'running',
    config: datasetConfig('cats-0123456789', {
      layers: [
        { spec: 'features.29', canonical: 'block5_conv3', shape: [512, 14, 14] },
        { spec: 'fc2', canonical: 'fc2', shape: [4096] },
      ],
      seed: 3,
      imageSize: 224,
      batchSize: 8,
      chunkSize: 64,
      dtype: 'float16',
      totalSamples: 10,
      submittedAt: '2025-01-01T00:00:00.000Z',
    }),
    progress: { total: 10, ok: 0, failed: 0, pending: 10, failures: {}, run: 0, finished: false, ...progress },
    chunks: { total: 2, done: 1, failed: 0, pending: 1 },
    chunkFailures: [],
    engines: [],
    cancelled: false,
    ...overrides,
  };
}

describe('RateMeter', () => {
  it('is 0 with fewer than two points or no elapsed time', () => {
    const meter = new RateMeter();
    expect(meter.rate()).toBe(0);
    meter.add(1_000, 5);
    expect(meter.rate()).toBe(0);
    meter.add(1_000, 9);
    expect(meter.rate()).toBe(0);
  });

  it('is items per second between the oldest and newest point', () => {
    const meter = new RateMeter();
    meter.add(0, 0);
    meter.add(500, 4);
    meter.add(2_000, 10);
    expect(meter.rate()).toBe(5);
  });

  it('forgets points older than the window', () => {
    const meter = new RateMeter(20_000);
    meter.add(0, 0);
    meter.add(10_000, 100);
    meter.add(30_000, 400);
    // (0, 0) fell out of the window: (400 - 100) / 20 s.
    expect(meter.rate()).toBe(15);
  });

  it('keeps two points even when both are older than the window', () => {
    const meter = new RateMeter(1_000);
    meter.add(0, 0);
    meter.add(60_000, 600);
    expect(meter.rate()).toBe(10);
  });
});

describe('formatDuration', () => {
  it.each([
    [0, '0s'],
    [0.4, '0s'],
    [59.4, '59s'],
    [59.5, '1m00s'],
    [61, '1m01s'],
    [3599, '59m59s'],
    [3600, '1h00m'],
    [3661, '1h01m'],
    [90_000, '25h00m'],
  ])('%d s -> %s', (seconds, text) => {
    expect(formatDuration(seconds)).toBe(text);
  });

  it.each([-1, Number.NaN, Number.POSITIVE_INFINITY])('shows %d as --', (seconds) => {
    expect(formatDuration(seconds)).toBe('--');
  });
});

describe('progressLine', () => {
  it('shows the bar, counts, rate and ETA', () => {
    expect(progressLine(status({ ok: 3, failed: 1, pending: 6 }), 2, 10)).toBe('[####------] 4/10 done, 1 failed, 2.0 img/s, ETA 3s (running)');
  });

  it('shows -- for the ETA while the rate is 0', () => {
    expect(progressLine(status({}), 0, 4)).toBe('[----] 0/10 done, 0 failed, 0.0 img/s, ETA -- (running)');
  });

  it('fills the bar for an empty or finished dataset', () => {
    expect(progressLine(status({ total: 0, pending: 0 }, { state: 'done' }), 0, 5)).toBe('[#####] 0/0 done, 0 failed, 0.0 img/s, ETA -- (done)');
    expect(progressLine(status({ ok: 9, failed: 1, pending: 0 }, { state: 'done' }), 12.345, 5)).toBe(
      '[#####] 10/10 done, 1 failed, 12.3 img/s, ETA 0s (done)',
    );
  });

  it('counts the samples of a retry that are not yet run as pending', () => {
    // Run 1 retries 3 samples of 10: 7 ok from run 0, 3 pending.
    expect(progressLine(status({ ok: 7, failed: 0, pending: 3, run: 1 }), 1, 10)).toBe('[#######---] 7/10 done, 0 failed, 1.0 img/s, ETA 3s (running)');
  });
});

describe('formatStatus', () => {
  it('names the engines that compute the dataset, their devices and warnings', () => {
    const text = formatStatus(
      status({}, {
        engines: [
          { engine: 'onnx', backend: 'cpu', device: { kind: 'cpu', description: 'AMD EPYC (2 threads)' }, reason: 'onnx/cpu: cpu ran a test model', warnings: [] },
          { engine: 'tfjs', backend: 'webgpu', device: { kind: 'gpu', description: 'llvmpipe (mesa, software)', software: true }, reason: 'requested', warnings: ['running on a software WebGPU adapter'] },
        ],
      }),
    );
    expect(text).toContain('\nengine    onnx/cpu on AMD EPYC (2 threads)\n          tfjs/webgpu on llvmpipe (mesa, software) (warning: running on a software WebGPU adapter)');
    expect(formatStatus(status({}))).not.toContain('engine ');
  });

  it('summarises counts, chunks, layers, model and output', () => {
    const text = formatStatus(status({ ok: 4, failed: 1, pending: 5, failures: { decode_failed: 1 } }));
    expect(text.split('\n')).toEqual([
      'dataset   cats-0123456789 (run 0, running)',
      'samples   10 total: 4 ok, 1 failed, 5 pending',
      'chunks    2 total: 1 done, 0 failed, 1 pending',
      'layers    features.29 (block5_conv3), fc2',
      'model     vgg16, weights random, seed 3, torchvision preprocessing at 224px, float16 chw',
      'output    s3://bucket/out/cats-0123456789/',
      'failures  by reason:',
      `            ${'decode_failed'.padEnd(20)} 1`,
    ]);
  });

  it('lists failure reasons most frequent first, failed chunks and the cancel hint', () => {
    const text = formatStatus(
      status(
        { ok: 2, failed: 8, pending: 0, failures: { not_found: 1, cancelled: 5, timeout: 2 } },
        {
          state: 'cancelled',
          cancelled: true,
          chunkFailures: [{ chunk: 1, jobId: 'cats-0123456789~r0~c1', reason: 'bad_payload: malformed chunk job' }],
          config: { ...status({}).config, weights: 's3://w/vgg16.h5' },
        },
      ),
    );
    const lines = text.split('\n');
    expect(lines[4]).toBe('model     vgg16, weights s3://w/vgg16.h5, torchvision preprocessing at 224px, float16 chw');
    // Cancelled samples are not broken: counted apart from the failed ones.
    expect(lines[1]).toBe('samples   10 total: 2 ok, 3 failed, 5 cancelled, 0 pending');
    expect(lines.slice(6)).toEqual([
      'failures  by reason:',
      `            ${'cancelled'.padEnd(20)} 5`,
      `            ${'timeout'.padEnd(20)} 2`,
      `            ${'not_found'.padEnd(20)} 1`,
      'chunk 1 failed: bad_payload: malformed chunk job',
      'cancelled: the samples not run are recorded as cancelled (not failed); `layertap retry` runs them',
    ]);
  });
});
