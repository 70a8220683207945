/**
 * ResNet-50 through the whole pipeline: `layertap submit --model resnet50` -> BullMQ -> worker (ONNX Runtime,
 * CPU) -> S3, compared with torchvision (test/fixtures/parity/resnet50, made by
 * `/usr/bin/python3 test/parity/make_resnet50_fixtures.py`): seeded weights (seed 5 on both sides), the real
 * photo decoded and preprocessed by layertap.
 *
 * - layer1, layer3, layer4.2.relu and avgpool of chelsea-256 agree within 1e-4 of max |ref|, with the V1
 *   preprocessing (`torchvision`) and the V2 one (`torchvision-v2`: Resize(232)); dataset.json names the model
 *   and its architecture.
 * - A torchvision-keyed safetensors (the stem, written here) serves `maxpool`; dataset.json records its sha256.
 * - Bad requests exit 2 with one line: a VGG16 layer name, a folded conv, no --weights.
 * - `layertap layers --model resnet50 --json` lists the nodes with their shapes.
 */
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Harness, REPO } from './support/harness';

const FIXTURES = path.join(REPO, 'test', 'fixtures', 'parity', 'resnet50');
const PHOTO = path.join(REPO, 'test', 'fixtures', 'parity', 'images', 'chelsea-256.png');

interface Layer {
  node: string;
  file: string;
  shape: number[];
  channelStride: number;
  spatialStride: number;
}

async function readNpy(file: string): Promise<Float32Array> {
  const bytes = await readFile(file);
  const headerLength = bytes.readUInt16LE(8);
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset + 10 + headerLength, bytes.byteOffset + bytes.length));
}

/** max |ours - ref| / max |ref| at the reference's stored positions of a (C,H,W) or (C,) output. */
function relativeError(ours: Float32Array, layer: Layer, ref: Float32Array): number {
  const [C = 0, H = 1, W = 1] = layer.shape;
  const ss = layer.spatialStride;
  const [h, w] = layer.shape.length === 3 ? [Math.ceil(H / ss), Math.ceil(W / ss)] : [1, 1];
  let diff = 0;
  let scale = 0;
  let i = 0;
  for (let c = 0; c < C; c += layer.channelStride)
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++) {
        const expected = ref[i++]!;
        diff = Math.max(diff, Math.abs(ours[(c * H + y * ss) * W + x * ss]! - expected));
        scale = Math.max(scale, Math.abs(expected));
      }
  return diff / scale;
}

/** A safetensors file of float32 tensors, written from the format's definition. */
function safetensors(tensors: { name: string; shape: number[]; data: Float32Array }[]): Buffer {
  let offset = 0;
  const header: Record<string, unknown> = {};
  for (const t of tensors) {
    header[t.name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const size = Buffer.alloc(8);
  size.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([size, Buffer.from(json), ...tensors.map((t) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength))]);
}

describe('ResNet-50 end to end (submit -> worker -> S3)', () => {
  const h = new Harness('resnet50');
  const out = 's3://layertap/resnet50';
  let index: { seed: number; cases: { preprocess: string; layers: Layer[] }[] };
  let stemFile: string;
  const hooked = ['layer1', 'layer3', 'layer4.2.relu', 'avgpool'];

  async function submit(datasetId: string, extra: string[]) {
    return h.layertap(['submit', path.join(h.tmp, 'photos.jsonl'), '--output', out, '--dataset-id', datasetId, '--model', 'resnet50', ...extra]);
  }

  beforeAll(async () => {
    index = JSON.parse(await readFile(path.join(FIXTURES, 'index.json'), 'utf8'));
    await h.start();
    await writeFile(path.join(h.tmp, 'photos.jsonl'), JSON.stringify({ uri: PHOTO, id: 'chelsea' }));
    // The stem (conv1 + bn1) in torchvision keys: a constant conv and an identity BatchNorm, so maxpool is
    // easy to compute here: max over 3x3 of the per-pixel channel sum after ReLU.
    stemFile = path.join(h.tmp, 'stem.safetensors');
    const ones = (n: number, v: number) => new Float32Array(n).fill(v);
    await writeFile(
      stemFile,
      safetensors([
        { name: 'conv1.weight', shape: [64, 3, 7, 7], data: ones(64 * 3 * 49, 0.01) },
        { name: 'bn1.weight', shape: [64], data: ones(64, 1) },
        { name: 'bn1.bias', shape: [64], data: ones(64, 0) },
        { name: 'bn1.running_mean', shape: [64], data: ones(64, 0) },
        { name: 'bn1.running_var', shape: [64], data: ones(64, 1 - 1e-5) },
      ]),
    );
    for (const [id, extra] of [
      ['seeded', ['--weights', 'random', '--seed', String(index.seed), '--layer', hooked.join(',')]],
      ['seeded-v2', ['--weights', 'random', '--seed', String(index.seed), '--layer', hooked.join(','), '--preprocess', 'torchvision-v2']],
      ['stem', ['--weights', stemFile, '--layer', 'maxpool']],
    ] as const) {
      const result = await submit(id, [...extra]);
      if (result.code !== 0) throw new Error(`submit ${id} failed (${result.code}):\n${result.stdout}\n${result.stderr}`);
    }
    await h.runWorker(['--engine', 'onnx', '--backend', 'cpu']);
  }, 600_000);

  afterAll(() => h.close());

  it.each([
    ['v1', 'seeded', 'torchvision'],
    ['v2', 'seeded-v2', 'torchvision-v2'],
  ])('matches torchvision on every hooked layer of a real photo (%s preprocessing), and records the model', async (preprocess, id, mode) => {
    const lines = await h.manifest('layertap', 'resnet50', id);
    expect(lines.map((l) => [l.id, l.status])).toEqual([['chelsea', 'ok']]);
    const testCase = index.cases.find((c) => c.preprocess === preprocess)!;
    const errors: Record<string, number> = {};
    for (const spec of hooked) {
      const layer = testCase.layers.find((l) => l.node === spec)!;
      const npy = await h.npy('layertap', `resnet50/${id}/${spec}/chelsea.npy`);
      expect(npy.shape).toEqual(layer.shape);
      errors[spec] = relativeError(npy.data as Float32Array, layer, await readNpy(path.join(FIXTURES, layer.file)));
    }
    process.stdout.write(`resnet50 ${preprocess} end-to-end parity (max|diff|/max|ref|): ${JSON.stringify(errors)}\n`);
    for (const [spec, error] of Object.entries(errors)) expect({ spec, ok: error <= 1e-4 }).toEqual({ spec, ok: true });
    const doc = JSON.parse((await h.getObject('layertap', `resnet50/${id}/dataset.json`))!.toString('utf8'));
    expect(doc.model).toMatchObject({ name: 'resnet50', architecture: expect.stringContaining('torchvision.models.resnet50') });
    expect(doc.preprocessing).toMatchObject({ mode, resize: { rule: expect.stringContaining(preprocess === 'v1' ? '256 / 224' : '232 / 224') } });
  });

  it('runs torchvision-keyed weights from a safetensors file', async () => {
    const npy = await h.npy('layertap', 'resnet50/stem/maxpool/chelsea.npy');
    expect(npy.shape).toEqual([64, 56, 56]);
    const data = npy.data as Float32Array;
    // Every channel has the same weights: all 64 maps are equal, and non-negative (after the ReLU).
    const plane = 56 * 56;
    expect(data.subarray(63 * plane, 64 * plane)).toEqual(data.subarray(0, plane));
    expect(Math.min(...data.subarray(0, plane))).toBeGreaterThanOrEqual(0);
    expect(Math.max(...data.subarray(0, plane))).toBeGreaterThan(0.1);
    const doc = JSON.parse((await h.getObject('layertap', 'resnet50/stem/dataset.json'))!.toString('utf8'));
    expect(doc.model.weights.sha256).toBe(createHash('sha256').update(await readFile(stemFile)).digest('hex'));
  });

  it('refuses bad requests with exit 2 and one line', async () => {
    const vggName = await submit('bad-1', ['--weights', 'random', '--layer', 'block2_pool']);
    expect(vggName.code).toBe(2);
    expect(vggName.stderr).toMatch(/^layertap: error \[unknown_layer\]: unknown ResNet-50 layer "block2_pool"\. Valid layers: bn1, relu, maxpool/);
    const folded = await submit('bad-2', ['--weights', 'random', '--layer', 'layer2.0.conv2']);
    expect(folded.code).toBe(2);
    expect(folded.stderr).toContain('hook layer2.0.bn2');
    const noWeights = await submit('bad-3', ['--layer', 'layer1']);
    expect(noWeights.code).toBe(2);
    expect(noWeights.stderr).toContain('--model resnet50 needs --weights');
    for (const r of [vggName, folded, noWeights]) expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('lists the layers with their shapes', async () => {
    const result = await h.layertap(['layers', '--model', 'resnet50', '--image-size', '256', '--json']);
    expect(result.code).toBe(0);
    const doc = JSON.parse(result.stdout) as { layers: { name: string; aliases: string[]; shape: number[] }[] };
    const byName = new Map(doc.layers.map((l) => [l.name, l]));
    expect(byName.get('layer4')).toEqual({ name: 'layer4', aliases: ['layer4.2', 'layer4.2.relu_2'], kind: 'relu', shape: [2048, 8, 8] });
    expect(byName.get('fc')?.shape).toEqual([1000]);
    expect(doc.layers).toHaveLength(122);
  });
});
