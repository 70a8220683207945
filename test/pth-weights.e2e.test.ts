/**
 * PyTorch checkpoints and named weights through the whole pipeline: `layertap submit` -> BullMQ -> worker ->
 * S3, compared with torchvision's own activations (test/fixtures/parity and test/fixtures/pth, made by
 * `/usr/bin/python3 test/parity/make_pth_fixtures.py` with Debian's python3-torch).
 *
 * - `.pth` in both of torch's formats, without `--preprocess`: torchvision preprocessing is chosen from the
 *   file's keys and the seed-11 reference comes out within max |diff| <= 1e-4 * max |ref|.
 * - `--weights torchvision-imagenet` and `--weights keras-imagenet` resolve from a local server publishing files
 *   under the published paths (this machine has no internet; `LAYERTAP_WEIGHTS_MIRROR` points at it). The
 *   torchvision file passes the published sha256-prefix check for real (its zip comment was searched for it);
 *   the Keras copy is checked against the mirror's own checksums. Each is downloaded once, by the worker
 *   (submit reads nothing of a published name), and found in its cache afterwards. keras-imagenet runs caffe preprocessing without being told.
 * - A malicious `.pth` (its pickle calls os.system to touch a marker) is refused at submit with exit 2 naming
 *   the global, and the marker does not exist afterwards.
 * - Without `--weights` the default, torchvision-imagenet, is used; submit knows a published name without its
 *   file (issue 17: no request at submit). Not cached and not downloadable, the worker's chunk fails with
 *   invalid_weights and the ways out.
 */
import { createHash } from 'node:crypto';
import { access, readFile, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Harness, REPO } from './support/harness';

const PARITY = path.join(REPO, 'test', 'fixtures', 'parity');
const PTH = path.join(REPO, 'test', 'fixtures', 'pth');
const TORCHVISION_PATH = '/models/vgg16-397923af.pth';
const KERAS_PATH = '/tensorflow/keras-applications/vgg16/vgg16_weights_tf_dim_ordering_tf_kernels.h5';

interface Reference {
  shape: number[];
  stride: number;
  storedShape: number[];
  file: string;
}

async function readNpy(file: string): Promise<Float32Array> {
  const bytes = await readFile(file);
  const headerLength = bytes.readUInt16LE(8);
  if (!bytes.subarray(10, 10 + headerLength).toString('latin1').includes("'<f4'")) throw new Error(`${file}: expected <f4`);
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset + 10 + headerLength, bytes.byteOffset + bytes.length));
}

/** The values of a (C,H,W) output at the reference's stored positions. */
function atStoredPositions(data: Float32Array, ref: Reference): Float32Array {
  const [, H = 1, W = 1] = ref.shape;
  const [C = 0, h = 1, w = 1] = ref.storedShape;
  const out = new Float32Array(C * h * w);
  for (let c = 0; c < C; c++)
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) out[(c * h + y) * w + x] = data[(c * H + y * ref.stride) * W + x * ref.stride]!;
  return out;
}

function maxAbsRelative(ours: Float32Array, ref: Float32Array): number {
  let maxAbs = 0;
  let scale = 0;
  for (let i = 0; i < ref.length; i++) {
    maxAbs = Math.max(maxAbs, Math.abs(ours[i]! - ref[i]!));
    scale = Math.max(scale, Math.abs(ref[i]!));
  }
  return maxAbs / scale;
}

const exists = (file: string) => access(file).then(() => true, () => false);
const figures: string[] = [];

describe('.pth and named weights, end to end (submit -> worker -> S3)', () => {
  const h = new Harness('pth');
  const out = 's3://layertap/pth';
  let server: Server;
  let serverUrl: string;
  const requests: string[] = [];
  let env: Record<string, string>;
  let pthIndex: {
    weights: Record<'zip' | 'legacy', { file: string; sha256: string }>;
    caffeReference: Reference;
    malicious: { files: Record<'zip' | 'legacy', string> };
  };
  let torchvisionRef: Reference;
  let h5: Buffer;
  const submitted = new Map<string, { stdout: string; stderr: string }>();

  async function manifest(name: string, image: string): Promise<string> {
    const file = path.join(h.tmp, `${name}.jsonl`);
    await writeFile(file, JSON.stringify({ uri: path.join(PARITY, 'images', `${image}.png`), id: image }));
    return file;
  }

  async function submit(datasetId: string, source: string, extra: string[], extraEnv: Record<string, string> = {}): Promise<void> {
    const result = await h.layertap(['submit', source, '--output', out, '--dataset-id', datasetId, '--layer', 'features.9', ...extra], { ...env, ...extraEnv });
    if (result.code !== 0) throw new Error(`submit ${datasetId} failed (${result.code}):\n${result.stdout}\n${result.stderr}`);
    submitted.set(datasetId, result);
  }

  async function output(datasetId: string, image: string): Promise<Float32Array> {
    const npy = await h.npy('layertap', `pth/${datasetId}/features.9/${image}.npy`);
    return npy.data as Float32Array;
  }

  async function datasetJson(datasetId: string) {
    return JSON.parse((await h.getObject('layertap', `pth/${datasetId}/dataset.json`))!.toString('utf8'));
  }

  beforeAll(async () => {
    pthIndex = JSON.parse(await readFile(path.join(PTH, 'index.json'), 'utf8'));
    const parityIndex = JSON.parse(await readFile(path.join(PARITY, 'index.json'), 'utf8'));
    torchvisionRef = parityIndex.cases.find((c: { id: string }) => c.id === 'chelsea-256.torchvision.file-seed11').references[0];
    const pth = await readFile(path.join(PTH, pthIndex.weights.zip.file));
    h5 = await readFile(path.join(PARITY, parityIndex.weights['keras-h5'].file));
    const files = new Map([
      [TORCHVISION_PATH, pth],
      [KERAS_PATH, h5],
    ]);
    server = createServer((req, res) => {
      requests.push(req.url ?? '');
      const body = files.get(req.url ?? '');
      if (!body) res.writeHead(404).end();
      else res.writeHead(200, { 'content-length': body.length }).end(body);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    serverUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

    await h.start();
    env = {
      LAYERTAP_WEIGHTS_CACHE: path.join(h.tmp, 'weights-cache'),
      LAYERTAP_WEIGHTS_MIRROR: serverUrl,
      // The mirror re-hosts another copy of the Keras file (the small fixture): its own checksum.
      LAYERTAP_WEIGHTS_MIRROR_CHECKSUMS: JSON.stringify({ 'keras-imagenet': { size: h5.length, md5: createHash('md5').update(h5).digest('hex') } }),
    };
    const chelsea = await manifest('chelsea', 'chelsea-256');
    const coffee = await manifest('coffee', 'coffee-224');
    await submit('pth-zip', chelsea, ['--weights', path.join(PTH, pthIndex.weights.zip.file)]);
    await submit('pth-legacy', chelsea, ['--weights', path.join(PTH, pthIndex.weights.legacy.file)]);
    // No --weights: torchvision-imagenet is the default.
    await submit('tv-named-1', chelsea, []);
    await submit('tv-named-2', chelsea, ['--weights', 'torchvision-imagenet', '--image-size', '224']);
    await submit('keras-named', coffee, ['--weights', 'keras-imagenet']);
    await submit('pth-caffe', chelsea, ['--weights', path.join(PTH, pthIndex.weights.zip.file), '--preprocess', 'caffe']);
    // The CPU engine: on machines with a Vulkan adapter `auto` picks WebGPU, whose results are not what this
    // test is about.
    await h.runWorker([], { ...env, LAYERTAP_BACKEND: 'wasm' });
  }, 600_000);

  afterAll(async () => {
    await h.close();
    await new Promise((resolve) => server?.close(resolve));
    if (figures.length > 0) process.stdout.write(`pth figures:\n  ${figures.join('\n  ')}\n`);
  });

  it('writes every sample of every dataset', async () => {
    for (const id of submitted.keys()) {
      const lines = await h.manifest('layertap', 'pth', id);
      expect({ id, failed: lines.filter((l) => l.status !== 'ok').map((l) => `${l.id}: ${l.error?.message}`), count: lines.length }).toEqual({ id, failed: [], count: 1 });
    }
  });

  it.each(['zip', 'legacy'] as const)('a %s-format .pth, no --preprocess: torchvision preprocessing and the reference within 1e-4', async (format) => {
    const datasetId = `pth-${format}`;
    expect(submitted.get(datasetId)!.stdout).toContain('preprocessing: torchvision (torchvision state_dict keys (features.0.weight, ...) in a pytorch file');
    const stored = await readNpy(path.join(PARITY, torchvisionRef.file));
    const relative = maxAbsRelative(atStoredPositions(await output(datasetId, 'chelsea-256'), torchvisionRef), stored);
    figures.push(`${datasetId} features.9: max|diff|/max|ref| ${relative.toExponential(2)}`);
    expect(relative).toBeLessThanOrEqual(1e-4);
    const doc = await datasetJson(datasetId);
    expect(doc.model.weights).toMatchObject({ source: pathToFileURL(path.join(PTH, pthIndex.weights[format].file)).href, sha256: pthIndex.weights[format].sha256 });
    expect(doc.model.weights.description).toContain(`pytorch ${format}, torchvision keys`);
    expect(doc.preprocessing).toMatchObject({ mode: 'torchvision', reason: expect.stringContaining('torchvision state_dict keys') });
  });

  it('torchvision-imagenet, by default and by name: not read at submit; fetched once from the mirror by the worker (hash prefix checked), then cached', async () => {
    expect(requests.filter((r) => r === TORCHVISION_PATH)).toHaveLength(1);
    const stored = await readNpy(path.join(PARITY, torchvisionRef.file));
    for (const datasetId of ['tv-named-1', 'tv-named-2']) {
      const relative = maxAbsRelative(atStoredPositions(await output(datasetId, 'chelsea-256'), torchvisionRef), stored);
      figures.push(`${datasetId} features.9: max|diff|/max|ref| ${relative.toExponential(2)}`);
      expect(relative).toBeLessThanOrEqual(1e-4);
      const doc = await datasetJson(datasetId);
      expect(doc.model.weights).toMatchObject({ source: 'torchvision-imagenet', sha256: pthIndex.weights.zip.sha256 });
      expect(doc.model.weights.sha256.startsWith('397923af')).toBe(true);
      // dataset.json: what the worker loaded and hashed (submit did not read the file).
      expect(doc.model.weights.description).toBe(`torchvision-imagenet: ${serverUrl}${TORCHVISION_PATH} (pytorch zip, torchvision keys, sha256 ${pthIndex.weights.zip.sha256})`);
      expect(submitted.get(datasetId)!.stdout).toContain(`weights: torchvision-imagenet: ${serverUrl}${TORCHVISION_PATH} (published pytorch, torchvision keys; not read at submit`);
      expect(doc.preprocessing.mode).toBe('torchvision');
    }
  });

  it('--weights keras-imagenet: fetched once, caffe preprocessing chosen from the file, the caffe reference within 1e-4', async () => {
    expect(requests.filter((r) => r === KERAS_PATH)).toHaveLength(1);
    expect(submitted.get('keras-named')!.stdout).toContain("preprocessing: caffe (Keras weights (keras-h5, block1_conv1/kernel, ...): keras-applications' VGG16 is the original Caffe training");
    const ref = pthIndex.caffeReference;
    const relative = maxAbsRelative(atStoredPositions(await output('keras-named', 'coffee-224'), ref), await readNpy(path.join(PTH, ref.file)));
    figures.push(`keras-named (caffe) features.9: max|diff|/max|ref| ${relative.toExponential(2)}`);
    expect(relative).toBeLessThanOrEqual(1e-4);
    const doc = await datasetJson('keras-named');
    expect(doc.model.weights).toMatchObject({ source: 'keras-imagenet', sha256: createHash('sha256').update(h5).digest('hex') });
    expect(doc.preprocessing).toMatchObject({ mode: 'caffe', reason: expect.stringContaining('original Caffe training') });
  });

  it('an explicit --preprocess that contradicts the weights runs, with one warning line at submit', async () => {
    const { stderr } = submitted.get('pth-caffe')!;
    const warnings = stderr.split('\n').filter((l) => l.includes('warning'));
    expect(warnings).toEqual([expect.stringMatching(/^layertap: warning: --preprocess caffe contradicts the weights, which were trained with torchvision preprocessing/)]);
    const doc = await datasetJson('pth-caffe');
    expect(doc.preprocessing).toMatchObject({ mode: 'caffe', reason: expect.stringMatching(/^--preprocess caffe given, although the weights expect torchvision/) });
    // It ran with caffe: not the torchvision reference.
    const stored = await readNpy(path.join(PARITY, torchvisionRef.file));
    expect(maxAbsRelative(atStoredPositions(await output('pth-caffe', 'chelsea-256'), torchvisionRef), stored)).toBeGreaterThan(0.01);
  });

  it.each(['zip', 'legacy'] as const)('a malicious %s .pth is refused at submit (exit 2, naming posix.system) and runs nothing', async (format) => {
    const marker = path.join(h.tmp, `pickle-ran-${format}`);
    const file = path.join(PTH, pthIndex.malicious.files[format]);
    const result = await h.layertap(['submit', path.join(h.tmp, 'chelsea.jsonl'), '--output', out, '--layer', 'features.9', '--weights', file], {
      ...env,
      LAYERTAP_PICKLE_MARKER: marker,
    });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('error [invalid_weights]');
    expect(result.stderr).toContain('refused: its pickle names the global posix.system');
    expect(await exists(marker)).toBe(false);
  });

  it('weights fetch and inspect take the names: found in the cache, no new request', async () => {
    const before = requests.length;
    const fetched = await h.layertap(['weights', 'fetch', 'torchvision-imagenet', '--json'], env);
    expect(fetched.code).toBe(0);
    expect(JSON.parse(fetched.stdout)).toMatchObject({ name: 'torchvision-imagenet', downloaded: false, cached: true, sha256: pthIndex.weights.zip.sha256 });
    const inspected = await h.layertap(['weights', 'inspect', 'torchvision-imagenet'], env);
    expect(inspected.code).toBe(0);
    expect(inspected.stdout).toContain('format    pytorch (zip format, float32), torchvision keys (converted to TF layout)');
    expect(inspected.stdout).toContain('preproc   torchvision');
    expect(inspected.stdout).toMatch(/serves\s+block1_conv1_preact \.\. block2_pool/);
    expect(requests.length).toBe(before);
  });

  it('without --weights, offline and not cached: submit passes without a request; the chunk fails after its retries with the ways out', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const offline = { ...env, LAYERTAP_WEIGHTS_CACHE: path.join(h.tmp, 'empty-cache'), LAYERTAP_WEIGHTS_MIRROR: `http://127.0.0.1:${port}` };
    const before = requests.length;
    const started = Date.now();
    const result = await h.layertap(['submit', path.join(h.tmp, 'chelsea.jsonl'), '--output', out, '--dataset-id', 'tv-offline', '--layer', 'features.9'], offline);
    expect(Date.now() - started).toBeLessThan(30_000);
    expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 0, stderr: '' });
    // The published name is known without its file: nothing was requested, and no sha256 is claimed.
    expect(result.stdout).toContain(
      `weights: torchvision-imagenet: http://127.0.0.1:${port}/models/vgg16-397923af.pth (published pytorch, torchvision keys; not read at submit: workers download it and check sha256 starting 397923af)\n`,
    );
    expect(requests.length).toBe(before);

    // A worker without the file and without the mirror: the chunk fails after its retries (a mirror that is
    // down may come back), every sample recorded as failed with the ways out (`layertap retry` reruns them).
    await h.runWorker([], { ...offline, LAYERTAP_BACKEND: 'wasm' });
    const lines = await h.manifest('layertap', 'pth', 'tv-offline');
    const message = lines[0]?.error?.message ?? '';
    figures.push(`tv-offline: ${JSON.stringify(lines[0]?.error)}`);
    expect(lines.map((l) => ({ id: l.id, status: l.status, code: l.error?.code }))).toEqual([{ id: 'chelsea-256', status: 'failed', code: 'chunk_failed' }]);
    expect(message).toContain('chunk 0 failed after its retries: --weights torchvision-imagenet: not in the weights cache');
    expect(message).toContain('`layertap weights fetch torchvision-imagenet --to <dir>`');
    expect(message).toContain('--weights random');
  });
});
