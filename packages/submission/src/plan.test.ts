import { copyFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { S3Client } from '@aws-sdk/client-s3';
import { DatasetConfig, ErrorCode, ValidationError, isSafeId, type Sample } from '@layertap/contracts';
import { datasetConfig } from '@layertap/contracts/testing';
import { openOutput, partKey } from '@layertap/storage';
import { caseCollisionWarning, defaultDatasetId, planLayers, planRun, prepareSubmission, sameSettings, type SubmitOptions } from './plan';
import { TempDir } from './__tests__/temp-dir';

const options = (overrides: Partial<SubmitOptions> = {}): SubmitOptions => ({
  source: '/data/cats/list.txt',
  layers: ['block5_conv3'],
  output: 's3://bucket/out',
  preprocess: 'torchvision',
  imageSize: 224,
  batchSize: 8,
  chunkSize: 64,
  dtype: 'float32',
  layout: 'chw',
  pool: 'none',
  // Random weights are asked for: the default (torchvision-imagenet) is a download.
  weights: 'random',
  seed: 0,
  ...overrides,
});

const FIXTURES = path.resolve(__dirname, '..', '..', '..', 'test', 'fixtures');
const ZIP_PTH = path.join(FIXTURES, 'pth', 'vgg16-blocks1-2-seed11.zip.pth');


describe('defaultDatasetId', () => {
  it('is the source name plus a 10-hex digest, and the same for the same request', () => {
    const id = defaultDatasetId(options());
    expect(id).toMatch(/^list-[0-9a-f]{10}$/);
    expect(defaultDatasetId(options())).toBe(id);
    expect(isSafeId(id)).toBe(true);
  });

  it.each<[string, Partial<SubmitOptions>, Partial<SubmitOptions>]>([
    ['layers', { layers: ['block5_conv3'] }, { layers: ['block5_conv3', 'fc1'] }],
    ['layer order', { layers: ['block5_conv3', 'fc1'] }, { layers: ['fc1', 'block5_conv3'] }],
    ['output', {}, { output: 's3://bucket/other' }],
    ['weights', {}, { weights: 's3://w/vgg16.h5' }],
    ['preprocess', {}, { preprocess: 'caffe' }],
    ['image size', {}, { imageSize: 256 }],
    ['dtype', {}, { dtype: 'float16' }],
    ['layout', {}, { layout: 'hwc' }],
    ['pool', {}, { pool: 'avg' }],
    ['seed', {}, { seed: 1 }],
    ['format', {}, { format: 'shards' }],
  ])('changes when the %s changes, keeping the readable part', (_what, a, b) => {
    const first = defaultDatasetId(options(a));
    const second = defaultDatasetId(options(b));
    expect(second).not.toBe(first);
    expect(second).toMatch(/^list-[0-9a-f]{10}$/);
  });

  it('names the source by its location, not its contents: a grown folder keeps its id; batch and chunk size do not count', () => {
    const id = defaultDatasetId(options());
    expect(defaultDatasetId(options({ source: '/data/cats/list.txt/' }))).toBe(id);
    expect(defaultDatasetId(options({ source: '/data/dogs/list.txt' }))).not.toBe(id);
    // A relative source counts as the absolute path it names.
    expect(defaultDatasetId(options({ source: 'cats/list.txt' }), '/data')).toBe(id);
    expect(defaultDatasetId(options({ batchSize: 1, chunkSize: 1000 }))).toBe(id);
    // npy is the default: saying so keeps the ids datasets had before --format existed.
    expect(defaultDatasetId(options({ format: 'npy' }))).toBe(id);
    expect(defaultDatasetId(options({ exifOrientation: 'ignore' }))).toBe(id);
    expect(defaultDatasetId(options({ exifOrientation: 'apply' }))).not.toBe(id);
  });

  it('does not change with the credentials in URIs: a fresh signature names the same dataset', () => {
    const signed = (sig: string) => ({
      weights: `https://u:${sig}@models.example.com/w.h5?X-Amz-Signature=${sig}`,
      source: `https://u:${sig}@lists.example.com/list.txt?X-Amz-Signature=${sig}`,
    });
    const a = signed('one');
    const b = signed('two');
    expect(defaultDatasetId(options(a))).toBe(defaultDatasetId(options(b)));
    expect(defaultDatasetId(options(a))).not.toBe(defaultDatasetId(options({ ...a, weights: 'https://models.example.com/other.h5' })));
  });

  it.each([
    ['/data/cats/', 'cats'],
    ['s3://bucket/photos/2024/', '2024'],
    ['/data/my photos (v2).csv', 'my_photos__v2_'],
    ['/data/-dashy.jsonl', 'dashy'],
    ['/data/.hidden.txt', '_hidden'],
    ['/', 'dataset'],
    [`/data/${'x'.repeat(100)}.txt`, 'x'.repeat(60)],
  ])('derives the readable part of %j as %j', (source, base) => {
    const id = defaultDatasetId(options({ source }));
    expect(id.slice(0, -11)).toBe(base);
    expect(isSafeId(id)).toBe(true);
  });
});

describe('planLayers', () => {
  it('resolves specs once into canonical names and stored shapes, layout and pooling applied', () => {
    expect(planLayers({ layers: ['features.9', 'fc2'], imageSize: 224, layout: 'chw', pool: 'none' })).toEqual([
      { spec: 'features.9', canonical: 'block2_pool', shape: [128, 56, 56] },
      { spec: 'fc2', canonical: 'fc2', shape: [4096] },
    ]);
    expect(planLayers({ layers: ['block3_pool'], imageSize: 64, layout: 'hwc', pool: 'none' })).toEqual([{ spec: 'block3_pool', canonical: 'block3_pool', shape: [8, 8, 256] }]);
    expect(planLayers({ layers: ['block3_pool'], imageSize: 64, layout: 'hwc', pool: 'avg' })).toEqual([{ spec: 'block3_pool', canonical: 'block3_pool', shape: [256] }]);
  });

  it('refuses two specs of one layer, naming both and the layer', () => {
    expect(() => planLayers({ layers: ['block3_pool', 'features.16'], imageSize: 224, layout: 'chw', pool: 'none' })).toThrow(
      '--layer names one layer twice: block3_pool and features.16 are both block3_pool; name it once',
    );
  });
});

describe('sameSettings', () => {
  const config = (overrides: Partial<DatasetConfig> = {}): DatasetConfig =>
    datasetConfig('ds', {
      layers: [
        { spec: 'block5_conv3', canonical: 'block5_conv3', shape: [512, 14, 14] },
        { spec: 'fc2', canonical: 'fc2', shape: [4096] },
      ],
      imageSize: 224,
      batchSize: 8,
      chunkSize: 64,
      totalSamples: 10,
      submittedAt: '2025-01-01T00:00:00.000Z',
      ...overrides,
    });

  it('compares weights URIs without their credentials, and shows them without', () => {
    const signed = (sig: string) => config({ weights: `https://u:${sig}@models.example.com/w.h5?sig=${sig}` });
    expect(sameSettings(signed('one'), signed('two'))).toBeUndefined();
    expect(sameSettings(signed('one'), config({ weights: 'https://u:one@models.example.com/v2.h5?sig=one' }))).toBe(
      'weights (https://models.example.com/w.h5?sig=*** then https://models.example.com/v2.h5?sig=***)',
    );
  });

  it('accepts changes that do not change the outputs', () => {
    expect(sameSettings(config(), config({ batchSize: 1, chunkSize: 5, totalSamples: 3, run: 2, submittedAt: '2026-01-01T00:00:00Z' }))).toBeUndefined();
  });

  it.each<[Partial<DatasetConfig>, string]>([
    [{ output: 's3://bucket/elsewhere' }, 'output (s3://bucket/out then s3://bucket/elsewhere)'],
    [{ weights: 's3://w/vgg16.h5' }, 'weights (undefined then s3://w/vgg16.h5)'],
    [{ seed: 7 }, 'seed (0 then 7)'],
    [{ preprocess: 'caffe' }, 'preprocess (torchvision then caffe)'],
    [{ imageSize: 448 }, 'imageSize (224 then 448)'],
    [{ dtype: 'float16' }, 'dtype (float32 then float16)'],
    [{ layout: 'hwc' }, 'layout (chw then hwc)'],
    [{ pool: 'max' }, 'pool (none then max)'],
    [{ format: 'shards' }, 'format (npy then shards)'],
    [{ exifOrientation: 'ignore' }, 'exifOrientation (apply then ignore)'],
    [{ layers: [{ spec: 'fc2', canonical: 'fc2', shape: [4096] }, { spec: 'block5_conv3', canonical: 'block5_conv3', shape: [512, 14, 14] }] }, 'layers (block5_conv3,fc2 then fc2,block5_conv3)'],
    [{ layers: [{ spec: 'features.29', canonical: 'block5_conv3', shape: [512, 14, 14] }, { spec: 'fc2', canonical: 'fc2', shape: [4096] }] }, 'layers (block5_conv3,fc2 then features.29,fc2)'],
  ])('names the first setting that differs: %j', (change, reason) => {
    expect(sameSettings(config(), config(change))).toBe(reason);
  });
});

describe('prepareSubmission', () => {
  let tmp: TempDir;
  const s3 = new S3Client({ region: 'us-east-1' }); // never contacted: source and output are local

  beforeEach(async () => {
    tmp = await TempDir.create();
    await tmp.files({ 'imgs/a.jpg': 'x', 'imgs/sub/b.png': 'x', 'imgs/notes.txt': 'x' });
  });
  afterEach(async () => {
    await tmp.remove();
  });
  afterAll(() => s3.destroy());

  it('builds the run-0 configuration from a directory source and a file:// output', async () => {
    const output = `${pathToFileURL(tmp.path('out')).href}/`;
    const submittedAt = new Date('2025-06-01T10:00:00.000Z');
    const request = options({ source: tmp.path('imgs'), output, layers: [' features.29 ', 'fc2'], imageSize: 64 });
    const { config, samples: found } = await prepareSubmission(request, { s3, submittedAt });
    expect(found.map((s) => s.id)).toEqual(['a', 'sub__b']);
    expect(config).toEqual({
      datasetId: defaultDatasetId(request),
      model: 'vgg16',
      output: output.replace(/\/$/, ''),
      layers: [
        { spec: 'features.29', canonical: 'block5_conv3', shape: [512, 4, 4] },
        { spec: 'fc2', canonical: 'fc2', shape: [4096] },
      ],
      seed: 0,
      preprocess: 'torchvision',
      preprocessReason: '--preprocess torchvision given',
      imageSize: 64,
      exifOrientation: 'ignore',
      batchSize: 8,
      chunkSize: 64,
      dtype: 'float32',
      layout: 'chw',
      pool: 'none',
      format: 'npy',
      totalSamples: 2,
      submittedAt: '2025-06-01T10:00:00.000Z',
      run: 0,
    });
    expect(config.datasetId.startsWith('imgs-')).toBe(true);
    // The write check left nothing behind in the output directory.
    expect(await readdir(tmp.path('out'))).toEqual([]);
  });

  it('keeps an explicit dataset id and refuses an unsafe one before reading the source', async () => {
    const output = pathToFileURL(tmp.path('out')).href;
    const { config } = await prepareSubmission(options({ source: tmp.path('imgs'), output, datasetId: 'my-set' }), { s3 });
    expect(config.datasetId).toBe('my-set');

    const err = await prepareSubmission(options({ source: tmp.path('missing'), output, datasetId: 'a/b' }), { s3 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as ValidationError).code).toBe(ErrorCode.InvalidId);
    expect((err as ValidationError).message).toBe('--dataset-id "a/b" contains a path separator');
  });

  it('records --format shards, and refuses chunks whose shard would not fit a worker\'s memory', async () => {
    const output = pathToFileURL(tmp.path('out')).href;
    const { config } = await prepareSubmission(options({ source: tmp.path('imgs'), output, format: 'shards', layers: ['block2_pool'] }), { s3 });
    expect(config.format).toBe('shards');
    // block1_conv1 at 224: 64 x 224 x 224 float32 = 12.25 MiB a sample; 64 of them are 784 MiB, 200 are 2450 MiB.
    const big = options({ source: tmp.path('imgs'), output, format: 'shards', layers: ['block1_conv1'], chunkSize: 200 });
    const err = await prepareSubmission(big, { s3 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as ValidationError).message).toBe(
      '--format shards: a chunk of 200 samples makes a 2450 MiB shard, over the 2 GiB a worker holds in memory: use --chunk-size 167 or less',
    );
    expect((await prepareSubmission({ ...big, chunkSize: 167 }, { s3 })).config.chunkSize).toBe(167);
    expect((await prepareSubmission({ ...big, pool: 'avg' }, { s3 })).config.pool).toBe('avg');
    expect((await prepareSubmission({ ...big, format: 'npy' }, { s3 })).config.format).toBe('npy');
  });

  it('refuses a request whose one sample needs more than the memory limit, and says when workers will run smaller batches', async () => {
    const output = pathToFileURL(tmp.path('out')).href;
    const request = options({ source: tmp.path('imgs'), output, layers: ['block1_conv1', 'features.4'], imageSize: 224, batchSize: 16 });
    // block1_conv1 (64x224x224) and block1_pool: input 150528 + two convs 2*3211264 + 8*(3211264 + 802816) values.
    const perSample = 4 * (150528 + 2 * 3211264 + 8 * (3211264 + 802816));
    expect((await prepareSubmission({ ...request, memoryLimitBytes: perSample * 16 }, { s3 })).warnings).toEqual([]);
    const shrunk = await prepareSubmission({ ...request, memoryLimitBytes: perSample * 5 }, { s3 });
    expect(shrunk.warnings).toEqual([
      '--batch-size 16: 2 layers at 224 px need 147.6 MiB per sample, 2.3 GiB for a batch of 16, over the memory limit of 737.9 MiB a worker gives one batch ' +
        '(LAYERTAP_MEMORY_BUDGET_MB): workers with that budget run batches of 5',
    ]);
    const err = await prepareSubmission({ ...request, memoryLimitBytes: perSample - 1 }, { s3 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as ValidationError).code).toBe(ErrorCode.InvalidRequest);
    expect((err as ValidationError).message).toBe(
      '2 layers (block1_conv1 64x224x224, features.4 64x112x112) at 224 px need 147.6 MiB per sample, 2.3 GiB for a batch of 16: over the memory limit of ' +
        '147.6 MiB a worker gives one batch (LAYERTAP_MEMORY_BUDGET_MB); even a batch of 1 does not fit: ask for fewer or smaller layers, or a smaller --image-size',
    );
    // auto: only one sample has to fit.
    expect((await prepareSubmission({ ...request, batchSize: 'auto', memoryLimitBytes: perSample }, { s3 })).warnings).toEqual([]);
    // The default limit is the most a worker's budget defaults to, 8 GiB: block 1's four outputs at 1024 px do not fit.
    const block1 = ['block1_conv1_preact', 'block1_conv1', 'block1_conv2_preact', 'block1_conv2'];
    const huge = await prepareSubmission({ ...request, layers: block1, imageSize: 1024, batchSize: 1 }, { s3 }).catch((e: unknown) => e);
    expect((huge as ValidationError).message).toMatch(/^4 layers \(block1_conv1_preact 64x1024x1024, .*\) at 1024 px need 8\.5 GiB per sample, .* over the memory limit of 8 GiB/);
  });

  it('warns about sample ids that differ only by case when the output is file:// (s3://: the e2e test)', async () => {
    await tmp.files({ 'cased/Cat.jpg': 'x', 'cased/cat.png': 'x', 'cased/dog.jpg': 'x' });
    const onDisk = await prepareSubmission(options({ source: tmp.path('cased'), output: pathToFileURL(tmp.path('out')).href }), { s3 });
    expect(onDisk.warnings).toEqual([expect.stringMatching(/^2 sample ids differ from another only by case \(Cat = cat\): their files collide on a case-insensitive file system/)]);
    // A few groups are named, each with a few of its ids.
    expect(caseCollisionWarning([['A', 'a'], ['Bb', 'bb', 'BB', 'bB'], ['C', 'c'], ['D', 'd'], ['E', 'e'], ['F', 'f']])).toMatch(
      /^14 sample ids differ from another only by case \(A = a, Bb = bb = BB = \.\.\., C = c, D = d, and 2 more groups\): /,
    );
  });

  it('refuses an unknown layer with UnknownLayer', async () => {
    const err = await prepareSubmission(options({ source: tmp.path('imgs'), output: pathToFileURL(tmp.path('out')).href, layers: ['conv9_9'] }), { s3 }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as ValidationError).code).toBe(ErrorCode.UnknownLayer);
    expect((err as ValidationError).message).toContain('unknown VGG16 layer "conv9_9"');
  });

  describe('weights and the preprocessing they imply', () => {
    const base = () => options({ source: tmp.path('imgs'), output: pathToFileURL(tmp.path('out')).href, layers: ['block1_conv1'], preprocess: undefined });
    const submittedAt = new Date('2025-06-01T10:00:00.000Z');

    /** Keras-style weights (block1_conv1 in TF layout) as safetensors: Keras weights by content. */
    async function kerasWeights(): Promise<string> {
      const tensors = { 'block1_conv1/kernel': [3, 3, 3, 64], 'block1_conv1/bias': [64] };
      const header: Record<string, unknown> = {};
      let offset = 0;
      for (const [name, shape] of Object.entries(tensors)) {
        const bytes = shape.reduce((a, b) => a * b, 1) * 4;
        header[name] = { dtype: 'F32', shape, data_offsets: [offset, offset + bytes] };
        offset += bytes;
      }
      const json = Buffer.from(JSON.stringify(header).padEnd(8 * Math.ceil(JSON.stringify(header).length / 8)));
      const length = Buffer.alloc(8);
      length.writeBigUInt64LE(BigInt(json.length));
      const file = tmp.path('keras.safetensors');
      await writeFile(file, Buffer.concat([length, json, Buffer.alloc(offset)]));
      return file;
    }

    it('random weights: no weights in the config, torchvision preprocessing, seeded', async () => {
      const named = await prepareSubmission(base(), { s3, submittedAt });
      expect(named.config.weights).toBeUndefined();
      expect(named.config).toMatchObject({ seed: 0, preprocess: 'torchvision', preprocessReason: 'random weights have no training to follow: torchvision, the default' });
      expect(named.weightsDescription).toBe('random, seed 0');
      const reseeded = await prepareSubmission({ ...base(), seed: 5 }, { s3, submittedAt });
      expect(reseeded.weightsDescription).toBe('random, seed 5');
      expect(reseeded.config.datasetId).not.toBe(named.config.datasetId);
    });

    it('Keras weights without --preprocess run caffe; a torchvision .pth runs torchvision; each says why', async () => {
      const file = await kerasWeights();
      const keras = await prepareSubmission({ ...base(), weights: file }, { s3 });
      expect(keras.config).toMatchObject({ weights: pathToFileURL(file).href, preprocess: 'caffe' });
      expect(keras.config.preprocessReason).toContain("keras-applications' VGG16 is the original Caffe training");
      expect(keras.warnings).toEqual([]);
      const torch = await prepareSubmission({ ...base(), weights: ZIP_PTH }, { s3 });
      expect(torch.config).toMatchObject({ weights: pathToFileURL(ZIP_PTH).href, preprocess: 'torchvision' });
      expect(torch.config.preprocessReason).toContain('torchvision state_dict keys');
      // The header only: submit no longer claims a sha256 it did not compute (the workers report the file's).
      expect(torch.weightsDescription).toBe(`${ZIP_PTH} (pytorch zip, torchvision keys; header checked)`);
      expect(torch.config.datasetId).not.toBe(keras.config.datasetId);
    });

    it('an explicit --preprocess that contradicts the weights runs, with a one-line warning', async () => {
      const prepared = await prepareSubmission({ ...base(), weights: await kerasWeights(), preprocess: 'torchvision' }, { s3 });
      expect(prepared.config.preprocess).toBe('torchvision');
      expect(prepared.config.preprocessReason).toMatch(/^--preprocess torchvision given, although the weights expect caffe/);
      expect(prepared.warnings).toEqual([expect.stringMatching(/^--preprocess torchvision contradicts the weights, which were trained with caffe preprocessing/)]);
      expect(prepared.warnings[0]).not.toContain('\n');
    });

    it('a file called like a name is reached with a path', async () => {
      await copyFile(ZIP_PTH, tmp.path('random'));
      const prepared = await prepareSubmission({ ...base(), weights: `${tmp.path('random')}` }, { s3 });
      expect(prepared.config.weights).toBe(pathToFileURL(tmp.path('random')).href);
      expect(prepared.config.preprocess).toBe('torchvision');
    });
  });
});

describe('planRun', () => {
  let tmp: TempDir;
  beforeEach(async () => {
    tmp = await TempDir.create();
  });
  afterEach(async () => {
    await tmp.remove();
  });

  const line = (id: string, status: 'ok' | 'failed') =>
    JSON.stringify({
      id,
      uri: `file:///src/${id}.jpg`,
      status,
      ...(status === 'failed' ? { error: { code: 'decode_failed', message: 'bad' } } : {}),
      outputs: status === 'ok' ? { conv1_1: `ds/conv1_1/${id}.npy` } : {},
      shape: status === 'ok' ? { conv1_1: [64, 224, 224] } : {},
      dtype: 'float32',
    });
  const sample = (id: string): Sample => ({ id, uri: `file:///src/${id}.jpg` });

  async function grownDataset() {
    // Run 0 stored a and b, failed c; d was removed from the source since; e and f are new.
    await tmp.write(`out/${partKey('ds', 0, 0)}`, [line('a', 'ok'), line('b', 'ok'), line('c', 'failed'), line('d', 'ok')].join('\n') + '\n');
    const config = datasetConfig('ds', { output: pathToFileURL(tmp.path('out')).href });
    return { writer: openOutput(config.output), config, samples: ['a', 'b', 'c', 'e', 'f'].map(sample) };
  }

  it('a finished dataset grows: only the new samples run, counted with the stored, failed and removed ones', async () => {
    const { writer, config, samples } = await grownDataset();
    const plan = await planRun(writer, config, samples, [config], { rerunFailed: false });
    expect(plan.samples.map((s) => s.id)).toEqual(['e', 'f']);
    expect(plan).toMatchObject({ alreadyDone: 2, added: 2, failedEarlier: 1, removed: 1 });
    expect(plan.config).toMatchObject({ run: 1, totalSamples: 2, earlier: { ok: 3, failed: 1, failures: { decode_failed: 1 } } });
  });

  it('a run that stopped resumes: the failed samples run again with the new ones', async () => {
    const { writer, config, samples } = await grownDataset();
    const plan = await planRun(writer, config, samples, [config]);
    expect(plan.samples.map((s) => s.id)).toEqual(['c', 'e', 'f']);
    expect(plan).toMatchObject({ alreadyDone: 2, added: 2, failedEarlier: 0, removed: 1 });
    expect(plan.config).toMatchObject({ run: 1, totalSamples: 3, earlier: { ok: 3, failed: 0 } });
  });

  it('a first run takes every sample as new', async () => {
    const config = datasetConfig('fresh', { output: pathToFileURL(tmp.path('out')).href });
    const plan = await planRun(openOutput(config.output), config, [sample('a')], []);
    expect(plan).toMatchObject({ samples: [sample('a')], alreadyDone: 0, added: 1, failedEarlier: 0, removed: 0, config: { run: 0 } });
  });
});
