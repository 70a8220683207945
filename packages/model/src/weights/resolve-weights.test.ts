// `--weights` resolution: random, published names (not read at submit; the workers' load is served by a local
// server under the published paths, as this machine has no internet) and files, with the preprocessing each implies.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { ErrorCode, ValidationError } from '@layertap/contracts';
import { PARITY, PTH, parityIndex, rejection, serve, staticFiles, withTempDir, type TestServer } from '../testing/helpers';
import { loadWeights } from './load-weights';
import { DEFAULT_WEIGHTS, parseWeightsRequest, resolveWeightsRequest } from './resolve-weights';

const LAYERS = ['features.9'];
let server: TestServer;
let pth: Buffer;
let h5: Buffer;

beforeAll(async () => {
  pth = await readFile(path.join(PTH, 'vgg16-blocks1-2-seed11.zip.pth'));
  h5 = await readFile(path.join(PARITY, (await parityIndex()).weights['keras-h5'].file));
  server = await serve(
    staticFiles(
      new Map([
        ['/models/vgg16-397923af.pth', pth],
        ['/tensorflow/keras-applications/vgg16/vgg16_weights_tf_dim_ordering_tf_kernels.h5', h5],
      ]),
    ),
  );
});
afterAll(() => server.close());

describe('parseWeightsRequest', () => {
  it('reads random, published names (and old aliases) and treats anything else as a path or URI', () => {
    // Pretrained by default, as torchvision's models.vgg16(weights=...) users expect; random is asked for.
    expect(DEFAULT_WEIGHTS).toBe('torchvision-imagenet');
    expect(parseWeightsRequest(undefined)).toEqual({ kind: 'published', name: 'torchvision-imagenet' });
    expect(parseWeightsRequest('random')).toEqual({ kind: 'random' });
    expect(parseWeightsRequest('torchvision-imagenet')).toEqual({ kind: 'published', name: 'torchvision-imagenet' });
    expect(parseWeightsRequest('keras-vgg16-notop')).toEqual({ kind: 'published', name: 'keras-imagenet-notop' });
    expect(parseWeightsRequest('./random')).toEqual({ kind: 'uri', uri: './random' });
    expect(parseWeightsRequest('s3://b/vgg16.pth')).toEqual({ kind: 'uri', uri: 's3://b/vgg16.pth' });
    expect(() => parseWeightsRequest(' ')).toThrow('--weights is empty');
  });
});

describe('resolveWeightsRequest', () => {
  it('random weights: nothing to load, torchvision preprocessing', async () => {
    const resolved = await resolveWeightsRequest('random', { layers: LAYERS, seed: 3 });
    expect(resolved).toEqual({
      request: { kind: 'random' },
      description: 'random, seed 3',
      preprocess: 'torchvision',
      preprocessReason: 'random weights have no training to follow: torchvision, the default',
    });
    expect((await resolveWeightsRequest('random', { layers: LAYERS, seed: 3, preprocess: 'caffe' })).preprocess).toBe('caffe');
  });

  it('torchvision-imagenet, the default: not read at submit; the workers\' load downloads it once from (a mirror of) the published URL, hash prefix checked, then finds it in the cache', async () => {
    await withTempDir(async (cacheDir) => {
      const published = { mirror: server.url };
      const before = server.requests.length;
      // No --weights: the default is the published torchvision checkpoint, known without a request.
      const resolved = await resolveWeightsRequest(undefined, { layers: LAYERS, seed: 0, cacheDir, published });
      expect(resolved).toMatchObject({
        weights: 'torchvision-imagenet',
        format: 'pytorch',
        naming: 'torchvision',
        preprocess: 'torchvision',
        read: 'published',
        description: `torchvision-imagenet: ${server.url}/models/vgg16-397923af.pth (published pytorch, torchvision keys; not read at submit: workers download it and check sha256 starting 397923af)`,
      });
      expect(resolved.sha256).toBeUndefined();
      expect(resolved.preprocessReason).toContain('torchvision state_dict keys');
      expect(resolved.warning).toBeUndefined();
      const again = await resolveWeightsRequest('torchvision-imagenet', { layers: LAYERS, seed: 0, cacheDir, published, preprocess: 'caffe' });
      expect(again.preprocess).toBe('caffe');
      expect(again.warning).toContain('--preprocess caffe contradicts the weights, which were trained with torchvision preprocessing');
      expect(server.requests.length).toBe(before);

      // What a worker does with the name: download once, check, cache; the sha256 it reports is the file's.
      const sha256 = createHash('sha256').update(pth).digest('hex');
      const loaded = await loadWeights('torchvision-imagenet', { layers: LAYERS, cacheDir, published });
      expect(loaded).toMatchObject({ sha256, description: `torchvision-imagenet: ${server.url}/models/vgg16-397923af.pth (pytorch zip, torchvision keys, sha256 ${sha256})` });
      expect(server.requests.slice(before)).toEqual([{ path: '/models/vgg16-397923af.pth' }]);
      expect((await loadWeights('torchvision-imagenet', { layers: LAYERS, cacheDir, published })).sha256).toBe(sha256);
      expect(server.requests.length).toBe(before + 1);
    });
  });

  it('keras-imagenet: caffe preprocessing from the table; the workers check the mirror\'s own checksums', async () => {
    await withTempDir(async (cacheDir) => {
      const checksums = { 'keras-imagenet': { size: h5.length, md5: createHash('md5').update(h5).digest('hex') } };
      const before = server.requests.length;
      const resolved = await resolveWeightsRequest('keras-imagenet', { layers: LAYERS, seed: 0, cacheDir, published: { mirror: server.url, checksums } });
      expect(resolved).toMatchObject({ weights: 'keras-imagenet', format: 'keras-h5', naming: 'keras', preprocess: 'caffe', read: 'published' });
      expect(resolved.preprocessReason).toContain("keras-applications' VGG16 is the original Caffe training");
      expect(resolved.description).toContain(`check ${h5.length.toLocaleString('en-US')} bytes, MD5 ${checksums['keras-imagenet'].md5})`);
      expect(server.requests.length).toBe(before);
      expect((await loadWeights('keras-imagenet', { layers: LAYERS, cacheDir, published: { mirror: server.url, checksums } })).format).toBe('keras-h5');

      // Without the mirror's checksums the published MD5 applies, and this copy fails it (in the worker).
      const err = await rejection(loadWeights('keras-imagenet', { layers: LAYERS, cacheDir, published: { mirror: server.url, checksums: {} } }));
      expect(err.code).toBe(ErrorCode.InvalidWeights);
      expect(err.message).toContain('expected 553,467,096 bytes, MD5 64373286793e3c8b2b4e3219cbf3544b');
    });
  });

  it('a name neither cached nor downloadable passes submit; the workers\' load fails at once, saying how to get the file onto the machine', async () => {
    await withTempDir(async (cacheDir) => {
      const closed = await serve(staticFiles(new Map()));
      await closed.close();
      // No --weights, offline: submit needs nothing of the file.
      expect((await resolveWeightsRequest(undefined, { layers: LAYERS, seed: 0, cacheDir, published: { mirror: closed.url } })).read).toBe('published');
      const started = Date.now();
      const err = await rejection(loadWeights('torchvision-imagenet', { layers: LAYERS, cacheDir, published: { mirror: closed.url } }));
      expect(Date.now() - started).toBeLessThan(5_000);
      expect(err).toBeInstanceOf(ValidationError);
      expect(err.code).toBe(ErrorCode.InvalidWeights);
      expect(err.message).toContain(`--weights torchvision-imagenet: not in the weights cache (${cacheDir}) and the download from ${closed.url}/models/vgg16-397923af.pth failed`);
      expect(err.message).toContain('ECONNREFUSED');
      expect(err.message).toContain('`layertap weights fetch torchvision-imagenet --to <dir>`');
      expect(err.message).toContain('--weights /path/to/vgg16-397923af.pth');
      expect(err.message).toContain('--weights random');

      const missing = await rejection(loadWeights('keras-imagenet-notop', { layers: LAYERS, cacheDir, published: { mirror: server.url } }));
      expect(missing.message).toContain('HTTP 404');
      expect(missing.message).toContain('--weights random');
    });
  });

  it('a .pth path: torchvision preprocessing without --preprocess', async () => {
    const resolved = await resolveWeightsRequest(path.join(PTH, 'vgg16-blocks1-2-seed11.legacy.pth'), { layers: LAYERS, seed: 0 });
    expect(resolved).toMatchObject({ format: 'pytorch', naming: 'torchvision', preprocess: 'torchvision', read: 'header', weights: path.join(PTH, 'vgg16-blocks1-2-seed11.legacy.pth') });
    expect(resolved.description).toBe(`${path.join(PTH, 'vgg16-blocks1-2-seed11.legacy.pth')} (pytorch legacy, torchvision keys; header checked)`);
  });

  it('a Keras .h5 path is loaded whole, as before (its description keeps the sha256 it computed)', async () => {
    const file = path.join(PARITY, (await parityIndex()).weights['keras-h5'].file);
    const resolved = await resolveWeightsRequest(file, { layers: LAYERS, seed: 0 });
    expect(resolved).toMatchObject({ format: 'keras-h5', naming: 'keras', preprocess: 'caffe', read: 'whole', sha256: createHash('sha256').update(h5).digest('hex') });
  });
});
