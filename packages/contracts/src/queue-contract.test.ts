import { ChunkJob, DatasetConfig, DatasetDocument, ManifestLine, formatIssues } from './queue-contract';

function config(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    datasetId: 'cats-0123456789',
    output: 's3://bucket/activations',
    layers: [{ spec: 'conv5_3', canonical: 'block5_conv3', shape: [512, 14, 14] }],
    seed: 0,
    preprocess: 'torchvision',
    imageSize: 224,
    batchSize: 8,
    chunkSize: 64,
    dtype: 'float32',
    layout: 'chw',
    totalSamples: 3,
    submittedAt: '2025-01-01T00:00:00.000Z',
    run: 0,
    ...overrides,
  };
}

/** The issues of a failed parse as `path: message` pairs. */
function issues(result: { success: boolean; error?: { issues: Array<{ path: PropertyKey[]; message: string }> } }): string[] {
  expect(result.success).toBe(false);
  return (result.error?.issues ?? []).map((i) => `${i.path.join('.')}: ${i.message}`);
}

describe('DatasetConfig', () => {
  it('accepts a complete configuration and defaults pool to none', () => {
    const parsed = DatasetConfig.parse(config());
    expect(parsed.pool).toBe('none');
    expect(parsed.format).toBe('npy');
    expect(parsed.weights).toBeUndefined();
    expect(parsed.layers).toEqual([{ spec: 'conv5_3', canonical: 'block5_conv3', shape: [512, 14, 14] }]);
  });

  it('keeps an explicit pool and weights URI', () => {
    const parsed = DatasetConfig.parse(config({ pool: 'avg', weights: 's3://w/vgg16.h5' }));
    expect(parsed.pool).toBe('avg');
    expect(parsed.weights).toBe('s3://w/vgg16.h5');
    expect(DatasetConfig.parse(config({ format: 'shards' })).format).toBe('shards');
  });

  it('keeps why the preprocessing was chosen, and parses configs written before it existed', () => {
    const reason = 'torchvision state_dict keys (features.0.weight, ...) in a pytorch file';
    expect(DatasetConfig.parse(config({ preprocessReason: reason })).preprocessReason).toBe(reason);
    expect(DatasetConfig.parse(config()).preprocessReason).toBeUndefined();
    expect(DatasetConfig.safeParse(config({ preprocessReason: '' })).success).toBe(false);
  });

  it('refuses an unsafe dataset id with the reason from idProblem', () => {
    const found = issues(DatasetConfig.safeParse(config({ datasetId: '../etc' })));
    expect(found).toEqual(['datasetId: id "../etc" contains a path separator']);
  });

  it.each([
    ['layers', { layers: [] }],
    ['imageSize', { imageSize: 31 }],
    ['imageSize', { imageSize: 1025 }],
    ['imageSize', { imageSize: 224.5 }],
    ['batchSize', { batchSize: 0 }],
    ['chunkSize', { chunkSize: 100_001 }],
    ['seed', { seed: -1 }],
    ['run', { run: -1 }],
    ['dtype', { dtype: 'float64' }],
    ['layout', { layout: 'nchw' }],
    ['preprocess', { preprocess: 'keras' }],
    ['pool', { pool: 'sum' }],
    ['format', { format: 'hdf5' }],
    ['output', { output: '' }],
    ['totalSamples', { totalSamples: undefined }],
  ])('refuses a bad %s', (field, overrides) => {
    const found = issues(DatasetConfig.safeParse(config(overrides)));
    expect(found).toHaveLength(1);
    expect(found[0]?.startsWith(`${field}: `)).toBe(true);
  });

  it('accepts the bounds of the numeric ranges', () => {
    expect(DatasetConfig.safeParse(config({ imageSize: 32, batchSize: 1024, chunkSize: 100_000 })).success).toBe(true);
    expect(DatasetConfig.safeParse(config({ imageSize: 1024, batchSize: 1, chunkSize: 1 })).success).toBe(true);
  });
});

describe('ChunkJob', () => {
  const job = (overrides: Record<string, unknown> = {}) => ({
    kind: 'chunk',
    dataset: config(),
    chunk: 2,
    samples: [
      { id: 'a', uri: 's3://bucket/a.jpg' },
      { id: 'b', uri: 'file:///data/b.png' },
    ],
    ...overrides,
  });

  it('accepts a chunk and applies the dataset defaults inside it', () => {
    const parsed = ChunkJob.parse(job());
    expect(parsed.chunk).toBe(2);
    expect(parsed.samples.map((s) => s.id)).toEqual(['a', 'b']);
    expect(parsed.dataset.pool).toBe('none');
  });

  it.each([
    ['kind', { kind: 'dataset' }],
    ['samples', { samples: [] }],
    ['chunk', { chunk: -1 }],
    ['samples.0.id', { samples: [{ id: 'a/b', uri: 's3://b/x.jpg' }] }],
    ['samples.0.uri', { samples: [{ id: 'a', uri: '' }] }],
    ['samples.0.uri', { samples: [{ id: 'a', uri: `s3://b/${'x'.repeat(8192)}` }] }],
    ['dataset.datasetId', { dataset: config({ datasetId: 'has space' }) }],
  ])('refuses a bad %s', (field, overrides) => {
    const found = issues(ChunkJob.safeParse(job(overrides)));
    expect(found).toHaveLength(1);
    expect(found[0]?.startsWith(`${field}: `)).toBe(true);
  });

  it('accepts a URI of exactly 8192 characters', () => {
    const uri = `s3://b/${'x'.repeat(8192 - 7)}`;
    expect(uri).toHaveLength(8192);
    expect(ChunkJob.safeParse(job({ samples: [{ id: 'a', uri }] })).success).toBe(true);
  });
});

describe('ManifestLine', () => {
  const ok = {
    id: 'cat',
    uri: 's3://b/cat.jpg',
    status: 'ok',
    outputs: { conv5_3: 'cats/conv5_3/cat.npy' },
    shape: { conv5_3: [512, 14, 14] },
    dtype: 'float16',
  };

  it('accepts an ok line and a failed line with its error', () => {
    expect(ManifestLine.parse(ok)).toEqual(ok);
    const failed = { ...ok, status: 'failed', error: { code: 'decode_failed', message: 'not an image' }, outputs: {}, shape: {} };
    expect(ManifestLine.parse(failed).error).toEqual({ code: 'decode_failed', message: 'not an image' });
  });

  it.each([
    ['status', { status: 'skipped' }],
    ['shape.conv5_3.1', { shape: { conv5_3: [512, 14.5, 14] } }],
    ['outputs.conv5_3', { outputs: { conv5_3: 7 } }],
    ['error.code', { error: { message: 'no code' } }],
    ['dtype', { dtype: 'uint8' }],
  ])('refuses a bad %s', (field, overrides) => {
    const found = issues(ManifestLine.safeParse({ ...ok, ...overrides }));
    expect(found).toHaveLength(1);
    expect(found[0]?.startsWith(`${field}: `)).toBe(true);
  });
});

describe('DatasetDocument', () => {
  const doc = {
    layertap: { version: '0.1.0' },
    datasetId: 'cats',
    layers: [{ spec: 'features.9', canonical: 'block2_pool', shape: [128, 56, 56] }],
    preprocessing: { mode: 'torchvision', imageSize: 224, mean: [0.485, 0.456, 0.406] },
    imageSize: 224,
    dtype: 'float16',
    layout: 'chw',
  };

  it('reads what readers need, keeps the rest, and defaults pool and format of older documents', () => {
    const parsed = DatasetDocument.parse(doc);
    expect(parsed).toMatchObject({ datasetId: 'cats', dtype: 'float16', pool: 'none', format: 'npy', layertap: { version: '0.1.0' } });
    expect(parsed.preprocessing).toEqual(doc.preprocessing);
    expect(DatasetDocument.parse({ ...doc, pool: 'avg', format: 'shards' })).toMatchObject({ pool: 'avg', format: 'shards' });
  });

  it('refuses a document without layer shapes or with an unknown layout', () => {
    expect(issues(DatasetDocument.safeParse({ ...doc, layers: [{ spec: 'fc2', canonical: 'fc2' }] }))).toEqual(['layers.0.shape: Invalid input: expected array, received undefined']);
    expect(issues(DatasetDocument.safeParse({ ...doc, layout: 'nchw' }))[0]).toMatch(/^layout: /);
  });
});

describe('formatIssues', () => {
  it('joins one "path: message" per issue with "; "', () => {
    const result = DatasetConfig.safeParse(config({ datasetId: 'a..b', layers: [{ spec: '', canonical: 'block1_conv1', shape: [64, 224, 224] }] }));
    expect(result.success).toBe(false);
    if (result.success) return;
    const text = formatIssues(result.error);
    const parts = text.split('; ');
    expect(parts).toHaveLength(2);
    expect(parts[0]).toBe(`datasetId: id "a..b" contains '..'`);
    expect(parts[1]).toMatch(/^layers\.0\.spec: /);
  });

  it('leaves out the path for a problem with the whole value', () => {
    const result = ChunkJob.safeParse('not an object');
    expect(result.success).toBe(false);
    if (result.success) return;
    expect(result.error.issues).toHaveLength(1);
    expect(result.error.issues[0]?.path).toEqual([]);
    expect(formatIssues(result.error)).toBe(result.error.issues[0]?.message);
    expect(formatIssues(result.error)).toMatch(/expected object/);
  });
});
