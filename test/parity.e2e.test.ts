/**
 * Parity with torchvision, through the whole pipeline: `layertap submit` -> BullMQ -> worker (decode,
 * preprocess, TF.js VGG16) -> .npy files in S3, compared with the references of test/fixtures/parity (made by
 * `/usr/bin/python3 test/parity/make_fixtures.py` with torchvision's own VGG16 and the same seeded weights).
 *
 * - The 256x256 photo in torchvision mode and the 224x224 one in caffe mode need no resize: every layer must
 *   match within max |ours - ref| <= 1e-4 * max |ref|.
 * - The seed-11 weight files (Keras .h5 and torchvision safetensors) must give the seed-11 reference, not the
 *   seed-7 one, and dataset.json must record the file's sha256.
 * - Photos that need a resize (up and down) go through layertap's own bilinear resize: their activations
 *   must have cosine similarity >= 0.999 with torchvision's, and layertap's preprocessed input must be within
 *   2/255 of torchvision's on average.
 */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Harness, REPO } from './support/harness';

const FIXTURES = path.join(REPO, 'test', 'fixtures', 'parity');
/** torchvision's Normalize std (RGB): turns a normalised difference back into [0, 1] pixel units. */
const TORCHVISION_STD = [0.229, 0.224, 0.225];
const LAYERS = ['features.0', 'features.9', 'features.16', 'features.29', 'block5_pool', 'fc2', 'predictions'];

interface Reference {
  spec: string;
  shape: number[];
  stride: number;
  storedShape: number[];
  file: string;
}
interface Case {
  id: string;
  image: string;
  preprocess: 'torchvision' | 'caffe';
  imageSize: number;
  weights: { seed?: number; files?: string[] };
  check: 'maxAbsRelative' | 'cosine';
  input: { file: string; shape: number[] };
  references: Reference[];
}
interface Index {
  seed: number;
  tolerances: { maxAbsRelative: number; cosine: number; preprocessMeanAbs: number };
  images: Record<string, { file: string; width: number; height: number }>;
  weights: Record<'keras-h5' | 'safetensors', { file: string; sha256: string }>;
  cases: Case[];
}

/** A float32 .npy from the fixtures (C order, little-endian), read independently of layertap's code. */
async function readNpy(file: string): Promise<{ shape: number[]; data: Float32Array }> {
  const bytes = await readFile(path.join(FIXTURES, file));
  const headerLength = bytes.readUInt16LE(8);
  const header = bytes.subarray(10, 10 + headerLength).toString('latin1');
  if (!header.includes("'<f4'")) throw new Error(`${file}: expected <f4, got ${header}`);
  const shape = (/'shape': \(([^)]*)\)/.exec(header)?.[1] ?? '').split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  return { shape, data: new Float32Array(bytes.buffer.slice(bytes.byteOffset + 10 + headerLength, bytes.byteOffset + bytes.length)) };
}

/** The values of a (C,H,W) output at the reference's stored positions, (C, h, w) C order. */
function atStoredPositions(data: Float32Array, ref: Reference): Float32Array {
  if (ref.shape.length === 1) return data;
  const [, H = 1, W = 1] = ref.shape;
  const [C = 0, h = 1, w = 1] = ref.storedShape;
  const out = new Float32Array(C * h * w);
  for (let c = 0; c < C; c++)
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) out[(c * h + y) * w + x] = data[(c * H + y * ref.stride) * W + x * ref.stride]!;
  return out;
}

function maxAbsRelative(ours: Float32Array, ref: Float32Array): { maxAbs: number; scale: number; relative: number } {
  let maxAbs = 0;
  let scale = 0;
  for (let i = 0; i < ref.length; i++) {
    maxAbs = Math.max(maxAbs, Math.abs(ours[i]! - ref[i]!));
    scale = Math.max(scale, Math.abs(ref[i]!));
  }
  return { maxAbs, scale, relative: maxAbs / scale };
}

function cosine(a: Float32Array, b: Float32Array): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i]! * b[i]!;
    na += a[i]! * a[i]!;
    nb += b[i]! * b[i]!;
  }
  return dot / Math.sqrt(na * nb);
}

/** One figure per compared output, kept for the failure message (and printed once at the end). */
const figures: string[] = [];

describe('parity with torchvision VGG16, end to end (submit -> worker -> S3)', () => {
  const h = new Harness('parity');
  let index: Index;
  const out = 's3://layertap/parity';

  async function manifestFor(entries: { id: string; image: string }[], name: string): Promise<string> {
    const file = path.join(h.tmp, `${name}.jsonl`);
    await writeFile(file, entries.map((e) => JSON.stringify({ uri: path.join(FIXTURES, index.images[e.image]!.file), id: e.id })).join('\n'));
    return file;
  }

  async function submit(datasetId: string, source: string, extra: string[]): Promise<void> {
    const result = await h.layertap(['submit', source, '--weights', 'random', '--output', out, '--dataset-id', datasetId, '--image-size', '224', ...extra]);
    if (result.code !== 0) throw new Error(`submit ${datasetId} failed (${result.code}):\n${result.stdout}\n${result.stderr}`);
  }

  async function output(datasetId: string, spec: string, sampleId: string): Promise<Float32Array> {
    const npy = await h.npy('layertap', `parity/${datasetId}/${spec}/${sampleId}.npy`);
    if (npy.dtype !== 'float32') throw new Error(`expected float32, got ${npy.dtype}`);
    return npy.data;
  }

  beforeAll(async () => {
    index = JSON.parse(await readFile(path.join(FIXTURES, 'index.json'), 'utf8')) as Index;
    await h.start();
    const seeded = index.cases.filter((c) => c.weights.seed === index.seed);
    const torchvision = seeded.filter((c) => c.preprocess === 'torchvision').map((c) => ({ id: c.image, image: c.image }));
    const caffe = seeded.filter((c) => c.preprocess === 'caffe').map((c) => ({ id: c.image, image: c.image }));
    const fileCase = index.cases.find((c) => c.weights.files)!;
    const layers = ['--layer', LAYERS.join(',')];
    await submit('tv-seed7', await manifestFor(torchvision, 'torchvision'), [...layers, '--seed', String(index.seed)]);
    await submit('caffe-seed7', await manifestFor(caffe, 'caffe'), [...layers, '--seed', String(index.seed), '--preprocess', 'caffe']);
    const one = await manifestFor([{ id: fileCase.image, image: fileCase.image }], 'file');
    // The reference is torchvision-preprocessed: the Keras file (caffe by its training) is asked for torchvision.
    await submit('h5-seed11', one, ['--layer', 'features.9', '--weights', path.join(FIXTURES, index.weights['keras-h5'].file), '--preprocess', 'torchvision']);
    await submit('st-seed11', one, ['--layer', 'features.9', '--weights', path.join(FIXTURES, index.weights.safetensors.file)]);
    await h.runWorker();
  }, 600_000);

  afterAll(async () => {
    await h.close();
    if (figures.length > 0) process.stdout.write(`parity figures:\n  ${figures.join('\n  ')}\n`);
  });

  it('writes every sample of every dataset', async () => {
    for (const id of ['tv-seed7', 'caffe-seed7', 'h5-seed11', 'st-seed11']) {
      const manifest = await h.manifest('layertap', 'parity', id);
      expect({ id, failed: manifest.filter((l) => l.status !== 'ok').map((l) => `${l.id}: ${l.error?.code} ${l.error?.message}`) }).toEqual({ id, failed: [] });
    }
  });

  it.each([
    ['tv-seed7', 'chelsea-256.torchvision.seed7'],
    ['caffe-seed7', 'coffee-224.caffe.seed7'],
  ])('%s: every layer of %s within max |diff| <= 1e-4 * max |ref|', async (datasetId, caseId) => {
    const c = index.cases.find((x) => x.id === caseId)!;
    expect(c.references.map((r) => r.spec)).toEqual(LAYERS);
    const results = [];
    for (const ref of c.references) {
      const ours = await output(datasetId, ref.spec, c.image);
      expect(ours).toHaveLength(ref.shape.reduce((a, b) => a * b, 1));
      const stored = await readNpy(ref.file);
      const m = maxAbsRelative(atStoredPositions(ours, ref), stored.data);
      figures.push(`${caseId} ${ref.spec}: max|diff| ${m.maxAbs.toExponential(2)}, max|ref| ${m.scale.toPrecision(3)}, ratio ${m.relative.toExponential(2)}`);
      results.push({ layer: ref.spec, relative: m.relative, ok: m.relative <= index.tolerances.maxAbsRelative });
    }
    expect(results.filter((r) => !r.ok)).toEqual([]);
  });

  it('uses the weight files, not the seed: .h5 and torchvision safetensors both give the seed-11 reference', async () => {
    const c = index.cases.find((x) => x.weights.files)!;
    const ref = c.references.find((r) => r.spec === 'features.9')!;
    const stored = await readNpy(ref.file);
    const seed7 = await readNpy(index.cases.find((x) => x.id === 'chelsea-256.torchvision.seed7')!.references.find((r) => r.spec === 'features.9')!.file);
    for (const [datasetId, key] of [['h5-seed11', 'keras-h5'], ['st-seed11', 'safetensors']] as const) {
      const ours = atStoredPositions(await output(datasetId, 'features.9', c.image), ref);
      const m = maxAbsRelative(ours, stored.data);
      figures.push(`${datasetId} features.9: max|diff| ${m.maxAbs.toExponential(2)}, max|ref| ${m.scale.toPrecision(3)}, ratio ${m.relative.toExponential(2)}`);
      expect({ datasetId, ok: m.relative <= index.tolerances.maxAbsRelative }).toEqual({ datasetId, ok: true });
      expect(maxAbsRelative(ours, seed7.data).relative).toBeGreaterThan(0.1);
      const doc = JSON.parse((await h.getObject('layertap', `parity/${datasetId}/dataset.json`))!.toString('utf8'));
      expect(doc.model.weights).toMatchObject({ source: pathToFileURL(path.join(FIXTURES, index.weights[key].file)).href, sha256: index.weights[key].sha256 });
    }
  });

  it('photos that need a resize: activations with cosine >= 0.999', async () => {
    const cases = index.cases.filter((c) => c.check === 'cosine');
    expect(cases.length).toBeGreaterThanOrEqual(2);
    const results = [];
    for (const c of cases) {
      for (const ref of c.references) {
        const ours = atStoredPositions(await output('tv-seed7', ref.spec, c.image), ref);
        const stored = (await readNpy(ref.file)).data;
        const cos = cosine(ours, stored);
        const m = maxAbsRelative(ours, stored);
        figures.push(`${c.id} ${ref.spec}: cosine ${cos.toFixed(9)} (1 - cos ${(1 - cos).toExponential(2)}), max|diff|/max|ref| ${m.relative.toExponential(2)}`);
        results.push({ id: c.id, layer: ref.spec, cosine: cos, ok: cos >= index.tolerances.cosine });
      }
    }
    expect(results.filter((r) => !r.ok)).toEqual([]);
  });

  it("photos that need a resize: layertap's preprocessing within 2/255 of torchvision's on average", async () => {
    // @layertap/imaging is what the worker preprocesses with.
    const imaging = await import('@layertap/imaging');
    const results = [];
    for (const c of index.cases.filter((x) => x.check === 'cosine')) {
      const bytes = await readFile(path.join(FIXTURES, index.images[c.image]!.file));
      const ours = await imaging.preprocessImage(bytes, { mode: c.preprocess, imageSize: c.imageSize });
      const ref = await readNpy(c.input.file);
      const [C = 3, H = 0, W = 0] = ref.shape;
      expect([ours.height, ours.width]).toEqual([H, W]);
      // Compared on the [0, 1] pixel scale: a normalised difference times the channel's std.
      let sum = 0;
      let max = 0;
      for (let k = 0; k < C; k++)
        for (let y = 0; y < H; y++)
          for (let x = 0; x < W; x++) {
            const d = Math.abs(ours.data[(y * W + x) * C + k]! - ref.data[(k * H + y) * W + x]!) * TORCHVISION_STD[k]!;
            sum += d;
            max = Math.max(max, d);
          }
      const mean = sum / ref.data.length;
      figures.push(`${c.image} preprocessing: mean |diff| ${mean.toExponential(2)} of [0,1] pixel scale (limit ${index.tolerances.preprocessMeanAbs.toExponential(2)}), max ${max.toExponential(2)} (${(max * 255).toFixed(2)}/255)`);
      results.push({ image: c.image, mean, ok: mean <= index.tolerances.preprocessMeanAbs });
    }
    expect(results.filter((r) => !r.ok)).toEqual([]);
  });
});
