// Submit reads weights headers only (issue 17): big files over HTTP by a few range requests, published names
// without a request, and every refusal a whole load gives (missing tensor, notop asked for fc1, truncated file,
// a dtype layertap does not read) from the header.
import { randomFillSync } from 'node:crypto';
import { truncate, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ErrorCode, ValidationError } from '@layertap/contracts';
import { getModel } from '../models';
import { VGG16_WEIGHTS } from '../models/vgg16/weight-specs';
import { torchvisionKeyOf } from '../models/vgg16/tensor-names';
import {
  fetchRangeOverHttp,
  rangeFiles,
  rejection,
  safetensorsFile,
  serve,
  staticFiles,
  torchLegacyFile,
  torchZipFile,
  withTempDir,
  type TestServer,
} from '../testing/helpers';
import { checkWeightsHeader } from './check-weights-header';
import { loadWeights } from './load-weights';
import { resolveWeightsRequest } from './resolve-weights';

/** Every VGG16 convolution as torchvision keys and layout, random float32 values: 58.9 MB of tensors. */
function convTensors(): { name: string; shape: number[]; data: Float32Array }[] {
  return VGG16_WEIGHTS.filter((spec) => spec.layer.startsWith('block')).map((spec) => {
    const name = torchvisionKeyOf(spec.name) as string;
    // TF [kh, kw, in, out] -> torch [out, in, kh, kw]; biases as they are.
    const shape = spec.shape.length === 4 ? [spec.shape[3], spec.shape[2], spec.shape[0], spec.shape[1]] as number[] : [...spec.shape];
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    for (let at = 0; at < data.length; at += 16384) randomFillSync(data.subarray(at, Math.min(data.length, at + 16384)));
    return { name, shape, data };
  });
}

const LAYERS = ['block5_pool'];
const MB = 1024 * 1024;
let server: TestServer;
const sent = { bytes: 0, ranges: 0 };
const files = new Map<string, Uint8Array>();

beforeAll(async () => {
  const tensors = convTensors();
  files.set('/big.safetensors', safetensorsFile(tensors));
  files.set('/big.zip.pth', torchZipFile(tensors));
  files.set('/big.legacy.pth', torchLegacyFile(tensors));
  server = await serve(rangeFiles(files, sent));
});
afterAll(() => server.close());

describe('checkWeightsHeader over HTTP', () => {
  it.each([
    ['/big.safetensors', 'safetensors'],
    ['/big.zip.pth', 'pytorch zip'],
    ['/big.legacy.pth', 'pytorch legacy'],
  ])('%s (58.9 MB): checked from under 1 MB of range requests', async (file, format) => {
    expect((files.get(file) as Uint8Array).length).toBeGreaterThan(50 * MB);
    await withTempDir(async (cacheDir) => {
      const before = { ...sent };
      const stats = { requests: 0, bytes: 0 };
      const resolved = await resolveWeightsRequest(`${server.url}${file}`, { layers: LAYERS, seed: 0, cacheDir, fetchRange: fetchRangeOverHttp, stats });
      expect(resolved).toMatchObject({ format: format.split(' ')[0], naming: 'torchvision', preprocess: 'torchvision', read: 'header' });
      expect(resolved.sha256).toBeUndefined();
      expect(resolved.description).toBe(`${server.url}${file} (${format}, torchvision keys; header checked)`);
      const bytes = sent.bytes - before.bytes;
      const ranges = sent.ranges - before.ranges;
      process.stdout.write(`${file}: ${bytes} bytes in ${ranges} range requests\n`);
      expect(bytes).toBeLessThan(1 * MB);
      expect(stats).toEqual({ requests: ranges, bytes });
      // Only range requests: nothing was downloaded whole.
      expect(server.requests.slice(-ranges).every((r) => r.range !== undefined)).toBe(true);
      // A missing tensor is refused as a whole load refuses it.
      const err = await rejection(resolveWeightsRequest(`${server.url}${file}`, { layers: ['fc1'], seed: 0, cacheDir, fetchRange: fetchRangeOverHttp }));
      expect(err).toBeInstanceOf(ValidationError);
      expect(err.message).toContain('has no classifier head (a "notop" file: convolutional layers only), so it cannot compute fc1');
    });
  });

  it('a server that ignores ranges sends the whole file once, which is then read from memory', async () => {
    const plain = await serve(staticFiles(new Map([['/w.safetensors', files.get('/big.safetensors') as Uint8Array]])));
    try {
      const stats = { requests: 0, bytes: 0 };
      const header = await checkWeightsHeader(`${plain.url}/w.safetensors`, { layers: LAYERS, fetchRange: fetchRangeOverHttp, stats, cacheDir: '/nonexistent' });
      expect(header.format).toBe('safetensors');
      expect(stats.requests).toBe(1);
      expect(plain.requests).toHaveLength(1);
    } finally {
      await plain.close();
    }
  });

  it('a truncated file is refused at submit, as a whole load refuses it', async () => {
    for (const [file, message] of [
      ['/big.safetensors', 'runs past the end of the file'],
      ['/big.zip.pth', 'no end-of-central-directory record'],
      ['/big.legacy.pth', 'lies past the end of the file'],
    ] as const) {
      const whole = files.get(file) as Uint8Array;
      files.set(`${file}.cut`, whole.subarray(0, whole.length - 1000));
      const err = await rejection(checkWeightsHeader(`${server.url}${file}.cut`, { layers: LAYERS, fetchRange: fetchRangeOverHttp, cacheDir: '/nonexistent' }));
      expect({ file, code: err.code }).toEqual({ file, code: ErrorCode.InvalidWeights });
      expect(err.message).toContain(message);
    }
  });
});

describe('checkWeightsHeader on local files', () => {
  it('a truncated local .pth or safetensors is refused; the whole file is never read', async () => {
    await withTempDir(async (dir) => {
      for (const name of ['big.safetensors', 'big.zip.pth', 'big.legacy.pth']) {
        const file = path.join(dir, name);
        await writeFile(file, files.get(`/${name}`) as Uint8Array);
        const header = await checkWeightsHeader(file, { layers: LAYERS });
        expect(header).toMatchObject({ read: 'header', naming: 'torchvision' });
        expect(header.description).toMatch(/; header checked\)$/);
        await truncate(file, 30 * MB);
        const err = await rejection(checkWeightsHeader(file, { layers: LAYERS }));
        expect({ name, code: err.code }).toEqual({ name, code: ErrorCode.InvalidWeights });
        // The same refusal as the workers' load.
        const loaded = await rejection(loadWeights(file, { layers: LAYERS }));
        expect(loaded.code).toBe(ErrorCode.InvalidWeights);
      }
    });
  });

  it('refuses a needed tensor in a dtype layertap does not read, and a misshapen one, naming both shapes', async () => {
    await withTempDir(async (dir) => {
      const ints = path.join(dir, 'ints.safetensors');
      const json = Buffer.from(
        JSON.stringify({ 'features.0.weight': { dtype: 'F32', shape: [64, 3, 3, 3], data_offsets: [0, 6912] }, 'features.0.bias': { dtype: 'I32', shape: [64], data_offsets: [6912, 7168] } }),
      );
      const length = Buffer.alloc(8);
      length.writeBigUInt64LE(BigInt(json.length));
      await writeFile(ints, Buffer.concat([length, json, Buffer.alloc(7168)]));
      const int32 = await rejection(checkWeightsHeader(ints, { layers: ['block1_conv1_preact'] }));
      expect(int32.message).toBe(`${ints}: tensor features.0.bias is I32; layertap reads F32, F16, BF16 and F64 weights`);
      expect((await rejection(loadWeights(ints, { layers: ['block1_conv1_preact'] }))).message).toBe(int32.message);
      const bad = path.join(dir, 'bad.safetensors');
      await writeFile(bad, safetensorsFile([{ name: 'features.0.weight', shape: [64, 3, 5, 5], data: new Float32Array(64 * 3 * 25) }, { name: 'features.0.bias', shape: [64], data: new Float32Array(64) }]));
      const err = await rejection(checkWeightsHeader(bad, { layers: ['block1_conv1'] }));
      expect(err.message).toContain('block1_conv1/kernel has shape [5, 5, 3, 64], expected [3, 3, 3, 64] (stored as features.0.weight [64, 3, 5, 5])');
    });
  });

  it('ResNet-50 weights: header only, and a published VGG16 name is refused', async () => {
    const model = getModel('resnet50');
    const stem = model.requiredWeights(['maxpool']).map((spec) => ({ name: spec.name, shape: [...spec.shape], data: new Float32Array(spec.shape.reduce((a, b) => a * b, 1)) }));
    await withTempDir(async (dir) => {
      const file = path.join(dir, 'stem.pth');
      await writeFile(file, torchZipFile(stem));
      const header = await checkWeightsHeader(file, { layers: ['maxpool'], model });
      expect(header).toMatchObject({ read: 'header', format: 'pytorch', naming: 'torchvision' });
      const err = await rejection(checkWeightsHeader(file, { layers: ['layer1'], model }));
      expect(err.message).toContain('is missing');
      const named = await rejection(checkWeightsHeader('torchvision-imagenet', { layers: ['maxpool'], model }));
      expect(named.message).toContain('names VGG16 weights');
    });
  });
});

describe('published names at submit', () => {
  it('need no request: an empty cache and an unreachable mirror still resolve, with the preprocessing they imply', async () => {
    const closed = await serve(staticFiles(new Map()));
    await closed.close();
    await withTempDir(async (cacheDir) => {
      const published = { mirror: closed.url, checksums: {} };
      const tv = await resolveWeightsRequest(undefined, { layers: ['fc2'], seed: 0, cacheDir, published });
      expect(tv).toMatchObject({ weights: 'torchvision-imagenet', format: 'pytorch', naming: 'torchvision', preprocess: 'torchvision', read: 'published' });
      expect(tv.sha256).toBeUndefined();
      expect(tv.description).toBe(
        `torchvision-imagenet: ${closed.url}/models/vgg16-397923af.pth (published pytorch, torchvision keys; not read at submit: workers download it and check sha256 starting 397923af)`,
      );
      const keras = await resolveWeightsRequest('keras-imagenet-notop', { layers: ['block5_pool'], seed: 0, cacheDir, published });
      expect(keras).toMatchObject({ format: 'keras-h5', naming: 'keras', preprocess: 'caffe', read: 'published' });

      // notop has no classifier head: fc1 is still refused at submit, with the message a file gets.
      const err = await rejection(resolveWeightsRequest('keras-imagenet-notop', { layers: ['fc1'], seed: 0, cacheDir, published }));
      expect(err.code).toBe(ErrorCode.InvalidWeights);
      expect(err.message).toContain('keras-imagenet-notop has no classifier head (a "notop" file: convolutional layers only), so it cannot compute fc1');

      // The workers load it: not downloadable there, the chunk's error says how to get the file.
      const load = await rejection(loadWeights('torchvision-imagenet', { layers: ['fc2'], cacheDir, published }));
      expect(load).toBeInstanceOf(ValidationError);
      expect(load.code).toBe(ErrorCode.InvalidWeights);
      expect(load.message).toContain(`--weights torchvision-imagenet: not in the weights cache (${cacheDir}) and the download from ${closed.url}/models/vgg16-397923af.pth failed`);
      expect(load.message).toContain('`layertap weights fetch torchvision-imagenet --to <dir>`');
    });
  });

  it('a bad LAYERTAP_WEIGHTS_MIRROR is still refused at submit, as the download used to refuse it', async () => {
    const saved = process.env.LAYERTAP_WEIGHTS_MIRROR;
    process.env.LAYERTAP_WEIGHTS_MIRROR = 'ftp://mirror.example/weights';
    try {
      const err = await rejection(resolveWeightsRequest('torchvision-imagenet', { layers: LAYERS, seed: 0 }));
      expect(err.code).toBe(ErrorCode.InvalidRequest);
      expect(err.message).toContain('LAYERTAP_WEIGHTS_MIRROR must be an http(s):// base URL');
    } finally {
      if (saved === undefined) delete process.env.LAYERTAP_WEIGHTS_MIRROR;
      else process.env.LAYERTAP_WEIGHTS_MIRROR = saved;
    }
  });
});
