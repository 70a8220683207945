/**
 * Any ONNX model through the whole pipeline: `layertap submit --model squeezenet1_1.onnx` -> BullMQ -> worker
 * (ONNX Runtime, CPU) -> S3, compared with PyTorch forward hooks (test/fixtures/onnx, made by
 * `/usr/bin/python3 test/parity/make_onnx_fixtures.py`: torchvision's squeezenet1_1 with seeded weights,
 * exported by torch.onnx.export, the references from the same module's hooks on two real photos).
 *
 * - features.3, features.12 and logits (three tensors of the graph, one pass) agree within 1e-4 of max |ref|
 *   on both photos; the stored shapes are the probe's; dataset.json records the file's sha256.
 * - The same on ONNX Runtime's WebGPU provider (lavapipe in CI), after its proof run against the CPU.
 * - A hook by node name and `--mean/--std` (the ImageNet values given by hand: the same arrays); the model
 *   file from S3.
 * - Bad requests exit 2 with one line: --weights with a model file, an unknown tensor, external data, two
 *   image inputs, the wrong --image-size for a fixed input.
 * - `layertap layers --model file.onnx --json` lists the graph's tensors with their shapes; `layertap bench`
 *   runs one.
 */
import { createHash } from 'node:crypto';
import { copyFile, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { Harness, REPO } from './support/harness';

const FIXTURES = path.join(REPO, 'test', 'fixtures', 'onnx');
const IMAGES = path.join(REPO, 'test', 'fixtures', 'parity', 'images');

interface Case {
  image: string;
  layers: { name: string; shape: number[]; file: string }[];
}

async function readNpy(file: string): Promise<Float32Array> {
  const bytes = await readFile(file);
  const headerLength = bytes.readUInt16LE(8);
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset + 10 + headerLength, bytes.byteOffset + bytes.length));
}

function relativeError(ours: Float32Array, ref: Float32Array): number {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < ref.length; i++) {
    diff = Math.max(diff, Math.abs((ours[i] as number) - (ref[i] as number)));
    scale = Math.max(scale, Math.abs(ref[i] as number));
  }
  return diff / scale;
}

describe('an ONNX model end to end (submit -> worker -> S3)', () => {
  const h = new Harness('onnx-model');
  const out = 's3://layertap/onnx';
  let cases: Case[];
  let model: string;
  const hooked = ['features.3', 'features.12', 'logits'];

  function submit(datasetId: string, extra: string[], file = model) {
    return h.layertap(['submit', path.join(h.tmp, 'photos.jsonl'), '--output', out, '--dataset-id', datasetId, '--model', file, ...extra]);
  }

  beforeAll(async () => {
    cases = (JSON.parse(await readFile(path.join(FIXTURES, 'index.json'), 'utf8')) as { cases: Case[] }).cases;
    await h.start();
    // A copy: the test owns its path (workers load the model from where submit found it).
    model = path.join(h.tmp, 'squeezenet1_1.onnx');
    await copyFile(path.join(FIXTURES, 'squeezenet1_1.onnx'), model);
    await writeFile(path.join(h.tmp, 'photos.jsonl'), cases.map((c) => JSON.stringify({ uri: path.join(IMAGES, `${c.image}.png`), id: c.image })).join('\n'));
    for (const [id, extra] of [
      ['hooks', ['--layer', hooked.join(',')]],
      ['stats', ['--layer', 'logits,/model/features/features.7/Concat', '--mean', '0.485,0.456,0.406', '--std', '0.229,0.224,0.225']],
      ['from-s3', ['--layer', 'features.12']],
    ] as const) {
      if (id === 'from-s3') {
        await h.s3.send(new PutObjectCommand({ Bucket: 'layertap', Key: 'models/squeezenet1_1.onnx', Body: await readFile(model) }));
      }
      const result = await submit(id, [...extra], id === 'from-s3' ? 's3://layertap/models/squeezenet1_1.onnx' : model);
      if (result.code !== 0) throw new Error(`submit ${id} failed (${result.code}):\n${result.stdout}\n${result.stderr}`);
      if (id === 'hooks') expect(result.stdout).toMatch(/model: .*squeezenet1_1\.onnx \(ONNX, 4\.7 MiB, \d+ nodes, opset 13, weights in the file, sha256 [0-9a-f]{64}\)/);
    }
    await h.runWorker(['--engine', 'onnx', '--backend', 'cpu']);
  }, 600_000);

  afterAll(() => h.close());

  it('matches PyTorch forward hooks on three tensors of the graph, two real photos, one pass', async () => {
    const lines = await h.manifest('layertap', 'onnx', 'hooks');
    expect(lines.map((l) => [l.id, l.status]).sort()).toEqual(cases.map((c) => [c.image, 'ok']).sort());
    const errors: Record<string, number> = {};
    for (const c of cases) {
      for (const layer of c.layers) {
        const npy = await h.npy('layertap', `onnx/hooks/${layer.name}/${c.image}.npy`);
        expect(npy.shape).toEqual(layer.shape);
        errors[`${c.image}/${layer.name}`] = relativeError(npy.data as Float32Array, await readNpy(path.join(FIXTURES, layer.file)));
      }
    }
    process.stdout.write(`onnx squeezenet1_1 end-to-end parity (max|diff|/max|ref|): ${JSON.stringify(errors)}\n`);
    for (const [spec, error] of Object.entries(errors)) expect({ spec, ok: error <= 1e-4 }).toEqual({ spec, ok: true });
    const doc = JSON.parse((await h.getObject('layertap', 'onnx/hooks/dataset.json'))!.toString('utf8'));
    const sha256 = createHash('sha256').update(await readFile(model)).digest('hex');
    expect(doc.model).toMatchObject({ name: 'onnx', onnx: { sha256, input: 'image' }, weights: { sha256 } });
    expect(doc.model.architecture).toContain('squeezenet1_1.onnx');
    expect(doc.layers.map((l: { spec: string; shape: number[] }) => [l.spec, l.shape])).toEqual([
      ['features.3', [128, 55, 55]],
      ['features.12', [512, 13, 13]],
      ['logits', [1000]],
    ]);
  });

  it('takes --mean/--std in place of the preprocessing\'s normalisation', async () => {
    const doc = JSON.parse((await h.getObject('layertap', 'onnx/stats/dataset.json'))!.toString('utf8'));
    expect(doc.preprocessing).toMatchObject({ mode: 'torchvision', mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], normalizedBy: '--mean/--std' });
    for (const c of cases) {
      const npy = await h.npy('layertap', `onnx/stats/logits/${c.image}.npy`);
      const ref = await readNpy(path.join(FIXTURES, c.layers.find((l) => l.name === 'logits')!.file));
      expect(relativeError(npy.data as Float32Array, ref)).toBeLessThan(1e-4);
    }
  });

  it('runs a model file from S3, which workers load and check themselves', async () => {
    for (const c of cases) {
      const layer = c.layers.find((l) => l.name === 'features.12')!;
      const npy = await h.npy('layertap', `onnx/from-s3/features.12/${c.image}.npy`);
      expect(relativeError(npy.data as Float32Array, await readNpy(path.join(FIXTURES, layer.file)))).toBeLessThan(1e-4);
    }
    const doc = JSON.parse((await h.getObject('layertap', 'onnx/from-s3/dataset.json'))!.toString('utf8'));
    expect(doc.model.onnx.source).toBe('s3://layertap/models/squeezenet1_1.onnx');
  });

  it('hooks a tensor by its node name, stored in a folder named after it', async () => {
    const lines = await h.manifest('layertap', 'onnx', 'stats');
    expect(lines[0]?.outputs).toEqual({ logits: expect.any(String), 'model_features_features.7_Concat': expect.any(String) });
    const doc = JSON.parse((await h.getObject('layertap', 'onnx/stats/dataset.json'))!.toString('utf8'));
    expect(doc.layers).toEqual([
      { spec: 'logits', canonical: 'logits', shape: [1000] },
      { spec: 'model_features_features.7_Concat', canonical: 'features.7', shape: [256, 27, 27] },
    ]);
    const byNode = await h.npy('layertap', 'onnx/stats/model_features_features.7_Concat/chelsea-256.npy');
    expect(byNode.shape).toEqual([256, 27, 27]);
  });

  it("runs on ONNX Runtime's WebGPU provider when asked for, after a proof run against the CPU", async () => {
    const result = await submit('on-webgpu', ['--layer', 'features.12,logits']);
    expect(result.code).toBe(0);
    await h.runWorker(['--engine', 'onnx', '--backend', 'webgpu'], { XDG_RUNTIME_DIR: h.tmp });
    const doc = JSON.parse((await h.getObject('layertap', 'onnx/on-webgpu/dataset.json'))!.toString('utf8'));
    expect(doc.counts).toMatchObject({ ok: 2, failed: 0 });
    expect(doc.engines[0]).toMatchObject({ engine: 'onnx', backend: 'webgpu', reason: expect.stringMatching(/proof run on features\.12, logits agreed with onnx\/cpu/) });
    for (const c of cases) {
      for (const layer of c.layers.filter((l) => l.name !== 'features.3')) {
        const npy = await h.npy('layertap', `onnx/on-webgpu/${layer.name}/${c.image}.npy`);
        expect(relativeError(npy.data as Float32Array, await readNpy(path.join(FIXTURES, layer.file)))).toBeLessThan(1e-4);
      }
    }
  });

  it('refuses bad requests with exit 2 and one line', async () => {
    const weights = await submit('bad-1', ['--layer', 'logits', '--weights', 'random']);
    expect(weights.code).toBe(2);
    expect(weights.stderr).toContain('the .onnx file carries its weights; drop --weights');
    const unknown = await submit('bad-2', ['--layer', 'features.33']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/unknown_layer.*features\.33/);
    const external = await submit('bad-3', ['--layer', 'y'], path.join(FIXTURES, 'tiny-external.onnx'));
    expect(external.code).toBe(2);
    expect(external.stderr).toContain('external data');
    const twoInputs = await submit('bad-4', ['--layer', 'y'], path.join(FIXTURES, 'tiny-two-inputs.onnx'));
    expect(twoInputs.code).toBe(2);
    expect(twoInputs.stderr).toMatch(/input/);
    const size = await submit('bad-5', ['--layer', 'logits', '--image-size', '256']);
    expect(size.code).toBe(2);
    expect(size.stderr).toContain('--image-size 224');
    const missing = await submit('bad-6', ['--layer', 'logits'], path.join(h.tmp, 'nope.onnx'));
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('no such file');
    for (const r of [weights, unknown, external, twoInputs, size, missing]) expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('benchmarks an ONNX file: model alone and end to end', async () => {
    const result = await h.layertap(['bench', '--model', model, '--layer', 'features.12', '--engine', 'onnx', '--backend', 'cpu', '--images', '8', '--batch-size', '4', '--json']);
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout) as { settings: { onnxModel: string }; modelOnly: { images: number; imagesPerSecond: number }; endToEnd: { images: number } };
    expect(report.settings.onnxModel).toBe(model);
    expect(report.modelOnly.imagesPerSecond).toBeGreaterThan(0);
    expect(report.endToEnd.images).toBe(8);
    const noLayer = await h.layertap(['bench', '--model', model]);
    expect(noLayer.code).toBe(2);
    expect(noLayer.stderr).toContain('missing --layer: name a tensor of');
  });

  it('lists the tensors of the graph with their shapes', async () => {
    const result = await h.layertap(['layers', '--model', model, '--json']);
    expect(result.code).toBe(0);
    const doc = JSON.parse(result.stdout) as { layers: { name: string; kind: string; shape: number[] }[] };
    const byName = new Map(doc.layers.map((l) => [l.name, l]));
    expect(byName.get('features.3')?.shape).toEqual([128, 55, 55]);
    expect(byName.get('features.12')?.shape).toEqual([512, 13, 13]);
    expect(byName.get('logits')?.shape).toEqual([1000]);
    expect(doc.layers.length).toBeGreaterThan(50);
  });
});
