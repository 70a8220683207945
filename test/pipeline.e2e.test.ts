import { copyFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { Harness, SAMPLES } from './support/harness';

/** float32 -> nearest float16 -> float32, as numpy's astype(float16) does (round half to even). */
function roundToHalf(x: number): number {
  const f32 = new Float32Array([x]);
  const u = new Uint32Array(f32.buffer)[0]!;
  const sign = u >>> 31 ? -1 : 1;
  const abs = Math.abs(x);
  if (!Number.isFinite(abs)) return x;
  if (abs >= 65520) return sign * Infinity;
  const e = Math.max(Math.floor(Math.log2(abs || 1e-45)), -14);
  const step = 2 ** (e - 10);
  const q = abs / step;
  let r = Math.round(q);
  if (Math.abs(q - Math.trunc(q) - 0.5) < 1e-12 && r % 2 === 1) r -= 1;
  return sign * r * step;
}

/** IEEE half-precision bits -> number, written independently of the code under test. */
function halfBitsToNumber(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >> 10) & 0x1f;
  const mant = bits & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 31) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

describe('submit -> worker -> S3, end to end', () => {
  const h = new Harness('pipeline');
  let list: string;

  beforeAll(async () => {
    await h.start();
    // Three real photos (one grayscale) and one file that is not an image.
    for (const name of ['chelsea.jpg', 'camera.jpg', 'rocket.jpg']) await copyFile(path.join(SAMPLES, name), path.join(h.tmp, name));
    await writeFile(path.join(h.tmp, 'broken.jpg'), 'this is not a JPEG');
    list = path.join(h.tmp, 'images.txt');
    await writeFile(list, ['chelsea.jpg', 'camera.jpg', '# a comment', 'broken.jpg', 'rocket.jpg', ''].join('\n'));
  }, 60_000);
  afterAll(() => h.close());

  const submit = (id: string, extra: string[]) =>
    h.layertap(['submit', list, '--weights', 'random', '--layer', 'features.9,block3_pool', '--output', 's3://layertap/out', '--image-size', '64', '--batch-size', '2', '--chunk-size', '2', '--dataset-id', id, ...extra]);

  it('writes two layers from one pass, in chw/float32 and hwc/float16, with a manifest line per sample', async () => {
    const a = await submit('chw32', []);
    expect(a.stderr).toBe('');
    expect(a.code).toBe(0);
    expect(a.stdout).toContain('submitted dataset chw32: 4 samples in 2 chunks');
    expect(a.stdout).toContain('random, seed 0');
    const b = await submit('hwc16', ['--layout', 'hwc', '--dtype', 'float16']);
    expect(b.code).toBe(0);
    expect((await submit('pooled', ['--pool', 'max', '--batch-size', 'auto'])).code).toBe(0);

    const log = await h.runWorker(['--engine', 'onnx', '--backend', 'cpu']);
    expect(log).toMatch(/"engine":"onnx\/cpu","device":"[^"]+\(\d+ threads?\)"/);
    // --batch-size auto: the worker picks the largest batch inside its memory budget (capped at 256).
    expect(log).toMatch(/"batchSize":\d+,"budgetMiB":\d+,"msg":"batch size auto"/);

    for (const id of ['chw32', 'hwc16']) {
      const manifest = await h.manifest('layertap', 'out', id);
      expect(manifest.map((l) => l.id).sort()).toEqual(['broken', 'camera', 'chelsea', 'rocket']);
      const broken = manifest.find((l) => l.id === 'broken')!;
      expect(broken.status).toBe('failed');
      expect(broken.error?.code).toBe('decode_failed');
      expect(broken.outputs).toEqual({});
      for (const line of manifest.filter((l) => l.id !== 'broken')) {
        expect(line.status).toBe('ok');
        expect(line.outputs).toEqual({ 'features.9': `${id}/features.9/${line.id}.npy`, block3_pool: `${id}/block3_pool/${line.id}.npy` });
      }
      const keys = await h.listKeys('layertap', `out/${id}/`);
      expect(keys.filter((k) => k.endsWith('.npy'))).toHaveLength(6);
      expect(keys).toContain(`out/${id}/dataset.json`);
    }

    // Shapes: features.9 = block2_pool, 128 x 16 x 16 at 64 px; block3_pool 256 x 8 x 8.
    const chw = await h.npy('layertap', 'out/chw32/features.9/chelsea.npy');
    expect(chw.dtype).toBe('float32');
    expect(chw.shape).toEqual([128, 16, 16]);
    const hwc = await h.npy('layertap', 'out/hwc16/features.9/chelsea.npy');
    expect(hwc.dtype).toBe('float16');
    expect(hwc.shape).toEqual([16, 16, 128]);
    expect((await h.npy('layertap', 'out/chw32/block3_pool/rocket.npy')).shape).toEqual([256, 8, 8]);
    expect((await h.npy('layertap', 'out/hwc16/block3_pool/rocket.npy')).shape).toEqual([8, 8, 256]);

    // hwc/float16 is chw/float32 transposed and rounded to half precision.
    const [C, H, W] = [128, 16, 16];
    const f32 = chw.data as Float32Array;
    const f16 = Array.from(hwc.data as Uint16Array, halfBitsToNumber);
    let nonZero = 0;
    for (let c = 0; c < C; c++)
      for (let y = 0; y < H; y++)
        for (let x = 0; x < W; x++) {
          const want = roundToHalf(f32[c * H * W + y * W + x]!);
          const got = f16[y * W * C + x * C + c]!;
          if (got !== want) throw new Error(`(${c},${y},${x}): ${got} != ${want}`);
          if (got !== 0) nonZero++;
        }
    expect(nonZero).toBeGreaterThan(1000);

    // --pool max: one value per channel, the maximum over H and W of the unpooled map.
    const pooled = await h.npy('layertap', 'out/pooled/features.9/chelsea.npy');
    expect(pooled.shape).toEqual([128]);
    for (let c = 0; c < C; c++) {
      const max = Math.max(...f32.subarray(c * H * W, (c + 1) * H * W));
      expect((pooled.data as Float32Array)[c]).toBe(max);
    }

    const provenance = JSON.parse((await h.getObject('layertap', 'out/chw32/dataset.json'))!.toString());
    expect(provenance).toMatchObject({
      datasetId: 'chw32',
      model: { name: 'vgg16', weights: { description: 'random, seed 0' } },
      layers: [
        { spec: 'features.9', canonical: 'block2_pool', shape: [128, 16, 16] },
        { spec: 'block3_pool', canonical: 'block3_pool', shape: [256, 8, 8] },
      ],
      preprocessing: { mode: 'torchvision', imageSize: 64 },
      dtype: 'float32',
      layout: 'chw',
      counts: { total: 4, ok: 3, failed: 1, failures: { decode_failed: 1 } },
    });
    expect(provenance.backend).toBe('onnx:cpu');
    expect(provenance.engines).toEqual([
      { engine: 'onnx', backend: 'cpu', device: expect.objectContaining({ kind: 'cpu', cpuModel: expect.any(String) }), reason: expect.stringMatching(/^onnx\/cpu: /), warnings: [] },
    ]);
  });

  it('reports status and does not duplicate work when the same dataset id is submitted again', async () => {
    const status = await h.layertap(['status', 'chw32', '--json']);
    expect(status.code).toBe(0);
    const parsed = JSON.parse(status.stdout);
    expect(parsed.state).toBe('done');
    expect(parsed.progress).toMatchObject({ total: 4, ok: 3, failed: 1, failures: { decode_failed: 1 } });

    const human = await h.layertap(['status', 'chw32']);
    expect(human.stdout).toContain('decode_failed');
    expect(human.stdout).toContain('s3://layertap/out/chw32/');

    const redis = new Redis(h.services.redisUrl);
    const chunks = new Queue('chunks', { connection: redis, prefix: h.prefix });
    try {
      const before = await chunks.getJobCountByTypes('completed', 'waiting', 'active', 'failed', 'delayed');
      const again = await submit('chw32', []);
      expect(again.code).toBe(0);
      expect(again.stdout).toContain('already submitted');
      const after = await chunks.getJobCountByTypes('completed', 'waiting', 'active', 'failed', 'delayed');
      expect(after).toBe(before);
    } finally {
      await chunks.close();
      redis.disconnect();
    }
  });

  it('retry runs only the failed samples again; the manifest keeps one line per sample', async () => {
    // The broken file is replaced by a real photo, as a user would fix a bad input.
    await copyFile(path.join(SAMPLES, 'coffee.jpg'), path.join(h.tmp, 'broken.jpg'));
    const before = await h.npy('layertap', 'out/chw32/features.9/chelsea.npy');
    const retry = await h.layertap(['retry', 'chw32', '--json']);
    expect(retry.code).toBe(0);
    expect(JSON.parse(retry.stdout)).toMatchObject({ datasetId: 'chw32', run: 1, retried: 1, chunks: 1 });
    const log = await h.runWorker();
    expect(log.match(/"chunk started"/g)).toHaveLength(1);

    const manifest = await h.manifest('layertap', 'out', 'chw32');
    expect(manifest).toHaveLength(4);
    expect(new Set(manifest.map((l) => l.id)).size).toBe(4);
    expect(manifest.every((l) => l.status === 'ok')).toBe(true);
    expect((await h.npy('layertap', 'out/chw32/features.9/broken.npy')).shape).toEqual([128, 16, 16]);
    // Samples that were fine were not recomputed (same bytes), and nothing else was retried.
    expect(await h.npy('layertap', 'out/chw32/features.9/chelsea.npy')).toEqual(before);

    const status = JSON.parse((await h.layertap(['status', 'chw32', '--json'])).stdout);
    expect(status.state).toBe('done');
    expect(status.progress).toMatchObject({ total: 4, ok: 4, failed: 0, pending: 0 });
    const provenance = JSON.parse((await h.getObject('layertap', 'out/chw32/dataset.json'))!.toString());
    expect(provenance.counts).toMatchObject({ total: 4, ok: 4, failed: 0 });
    expect(provenance.runs.map((r: { samples: number }) => r.samples)).toEqual([4, 1]);

    const nothing = await h.layertap(['retry', 'chw32']);
    expect(nothing.stdout).toContain('no failed samples');
  });

  it('cancel records samples not yet run as cancelled, and retry runs them', async () => {
    const submitted = await h.layertap(['submit', list, '--weights', 'random', '--layer', 'block1_pool', '--output', 's3://layertap/out', '--image-size', '32', '--chunk-size', '1', '--dataset-id', 'stopped']);
    expect(submitted.code).toBe(0);
    const cancel = await h.layertap(['cancel', 'stopped']);
    expect(cancel.code).toBe(0);
    expect(cancel.stdout).toContain('cancelled stopped');
    await h.runWorker();
    const manifest = await h.manifest('layertap', 'out', 'stopped');
    expect(manifest).toHaveLength(4);
    expect(manifest.map((l) => l.error?.code)).toEqual(['cancelled', 'cancelled', 'cancelled', 'cancelled']);
    const human = await h.layertap(['status', 'stopped']);
    expect(human.stdout).toMatch(/cancelled\s+4/);

    const retry = await h.layertap(['retry', 'stopped', '--json']);
    expect(JSON.parse(retry.stdout)).toMatchObject({ run: 1, retried: 4, chunks: 4 });
    await h.runWorker();
    const after = await h.manifest('layertap', 'out', 'stopped');
    expect(after.map((l) => l.status)).toEqual(['ok', 'ok', 'ok', 'ok']);
  }, 120_000);
});
