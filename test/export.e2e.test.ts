/**
 * `layertap export`: real datasets made by the real worker (npy and shards, S3 and local, float32 and float16)
 * stacked into one array per layer, checked bit for bit against the per-sample outputs; the README's numpy
 * snippet run on the result; an export by output URI with Redis stopped; and a 10,000-sample dataset exported
 * with the export process's peak RSS measured.
 */
import { spawn } from 'node:child_process';
import { copyFile, mkdir, open, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { DatasetConfig, type ManifestLine } from '@layertap/contracts';
import { datasetDocument, globalPool } from '@layertap/datasets';
import {
  datasetKey,
  decodeNpy,
  decodeSafetensors,
  encodeNpy,
  float16BitsToFloat32,
  float32ToFloat16Bits,
  manifestKey,
  openOutput,
  parseOutputRef,
  sampleKey,
} from '@layertap/storage';
import { BIN, Harness, REPO, SAMPLES, type RunResult } from './support/harness';

/** The data bytes of a .npy file (after its header). */
const npyData = (file: Buffer) => file.subarray(10 + file.readUInt16LE(8));

/** The `ok` lines of a manifest, in order. */
const okLines = (manifest: ManifestLine[]) => manifest.filter((l) => l.status === 'ok');

/** A stored array's bytes as a dataset holds them: a .npy file's data, or a tensor of a safetensors shard. */
async function storedBytes(get: (key: string) => Promise<Buffer | undefined>, ref: string): Promise<Buffer> {
  const { key, tensor } = parseOutputRef(ref);
  const body = await get(key);
  if (!body) throw new Error(`missing ${key}`);
  if (tensor === undefined) return Buffer.from(npyData(body));
  const found = decodeSafetensors(body).tensors.find((t) => t.name === tensor);
  if (!found) throw new Error(`missing tensor ${tensor} in ${key}`);
  return Buffer.from(found.data.buffer, found.data.byteOffset, found.data.byteLength);
}

/** The README's first ```python block that loads the stacked file (the numpy one). */
async function readmeNumpySnippet(): Promise<string> {
  const readme = await readFile(path.join(REPO, 'README.md'), 'utf8');
  const block = [...readme.matchAll(/```python\n([\s\S]*?)```/g)].map((m) => m[1]!).find((b) => b.includes('np.load("acts.npy")'));
  if (!block) throw new Error('README.md has no ```python block loading acts.npy');
  return block;
}

function python(script: string, cwd: string): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('/usr/bin/python3', ['-c', script], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('layertap export: datasets made by the real worker', () => {
  const h = new Harness('export');
  let local: string;
  const exported = (name: string) => path.join(h.tmp, name);
  const fromS3 = (key: string) => h.getObject('layertap', `out/${key}`);
  const fromLocal = (key: string) => openOutput(local).get(key);
  const exportJson = async (args: string[]) => {
    const res = await h.layertap(['export', ...args, '--json']);
    expect(res.stderr).toBe('');
    expect(res.code).toBe(0);
    return JSON.parse(res.stdout) as { path: string; idsPath: string; shape: number[]; dtype: string; layer: string; source: string };
  };

  beforeAll(async () => {
    await h.start();
    local = pathToFileURL(path.join(h.tmp, 'local')).href;
    const images = path.join(h.tmp, 'images');
    await mkdir(images);
    for (const name of ['rocket.jpg', 'chelsea.jpg', 'camera.jpg', 'coffee.jpg', 'astronaut.jpg']) await copyFile(path.join(SAMPLES, name), path.join(images, name));
    await writeFile(path.join(images, 'broken.jpg'), 'this is not a JPEG');
    const list = path.join(h.tmp, 'images.txt');
    await writeFile(list, ['rocket', 'broken', 'chelsea', 'camera', 'coffee', 'astronaut'].map((n) => path.join(images, `${n}.jpg`)).join('\n'));
    // Small images keep the worker quick; block2_pool at 32 px is (128, 8, 8).
    const common = ['--image-size', '32', '--batch-size', '2', '--chunk-size', '2'];
    for (const [id, layers, extra] of [
      // Named by its torchvision index: the outputs' folder is `features.9`, its canonical name block2_pool.
      ['s3npy', 'features.9,fc2', ['--output', 's3://layertap/out']],
      ['s3shards16', 'block2_pool,fc2', ['--output', 's3://layertap/out', '--format', 'shards', '--dtype', 'float16', '--layout', 'hwc']],
      ['localnpy16', 'block2_pool,fc2', ['--output', local, '--dtype', 'float16']],
      ['localshards', 'block2_pool,fc2', ['--output', local, '--format', 'shards', '--layout', 'hwc']],
    ] as const) {
      const res = await h.layertap(['submit', list, '--weights', 'random', '--layer', layers, ...common, ...extra, '--dataset-id', id]);
      expect(res.stderr).toBe('');
      expect(res.code).toBe(0);
    }
    await h.runWorker();
  }, 300_000);
  afterAll(() => h.close());

  it('stacks a float32 npy dataset on S3 by dataset id: rows equal the per-sample files bit for bit, ids in manifest order, failed left out', async () => {
    const result = await exportJson(['s3npy', '--layer', 'block2_pool', '--to', exported('s3npy.npy')]);
    const ok = okLines(await h.manifest('layertap', 'out', 's3npy'));
    expect(ok.map((l) => l.id)).toEqual(['rocket', 'chelsea', 'camera', 'coffee', 'astronaut']);
    expect(result).toMatchObject({ layer: 'features.9', shape: [5, 128, 8, 8], dtype: 'float32', idsPath: exported('s3npy.ids.txt'), source: 's3://layertap/out/s3npy' });
    expect(await readFile(result.idsPath, 'utf8')).toBe(ok.map((l) => `${l.id}\n`).join(''));
    const file = await readFile(result.path);
    const npy = decodeNpy(file);
    expect({ dtype: npy.dtype, shape: npy.shape }).toEqual({ dtype: 'float32', shape: [5, 128, 8, 8] });
    const rows = npyData(file);
    const rowBytes = 128 * 8 * 8 * 4;
    for (const [i, line] of ok.entries()) {
      expect(rows.subarray(i * rowBytes, (i + 1) * rowBytes).equals(await storedBytes(fromS3, line.outputs['features.9']!))).toBe(true);
    }
    // Real activations, not zeros, and different per sample.
    expect(rows.subarray(0, rowBytes).equals(rows.subarray(rowBytes, 2 * rowBytes))).toBe(false);

    // By the output URI, without Redis being asked: the same file.
    const byUri = await exportJson(['s3://layertap/out/s3npy', '--layer', 'features.9', '--to', exported('s3npy-uri.npy')]);
    expect((await readFile(byUri.path)).equals(file)).toBe(true);
  });

  it('stacks float16 shards on S3 into safetensors (float16 kept) and into float32 .npy on request', async () => {
    const ok = okLines(await h.manifest('layertap', 'out', 's3shards16'));
    expect(ok[0]!.outputs.fc2).toMatch(/^s3shards16\/shards\/000000-\d{9}\.safetensors#rocket\/fc2$/);
    const result = await exportJson(['s3://layertap/out/s3shards16', '--layer', 'fc2', '--to', exported('fc2.safetensors')]);
    expect(result).toMatchObject({ shape: [5, 4096], dtype: 'float16', idsPath: exported('fc2.ids.txt') });
    const file = decodeSafetensors(await readFile(result.path));
    expect(file.metadata).toEqual({ datasetId: 's3shards16', layer: 'fc2', canonical: 'fc2', dtype: 'float16', pool: 'none', layout: 'hwc', ids: '5', idsFile: 'fc2.ids.txt' });
    expect(file.tensors.map((t) => [t.name, t.dtype, t.shape])).toEqual([['fc2', 'F16', [5, 4096]]]);
    const stacked = file.tensors[0]!.data as Uint16Array;
    const stored = await Promise.all(ok.map((l) => storedBytes(fromS3, l.outputs.fc2!)));
    expect(Buffer.from(stacked.buffer, stacked.byteOffset, stacked.byteLength).equals(Buffer.concat(stored))).toBe(true);
    expect(await readFile(result.idsPath, 'utf8')).toBe(ok.map((l) => `${l.id}\n`).join(''));

    const f32 = await exportJson(['s3://layertap/out/s3shards16', '--layer', 'block2_pool', '--dtype', 'float32', '--to', exported('b2-f32.npy')]);
    expect(f32).toMatchObject({ shape: [5, 8, 8, 128], dtype: 'float32' });
    const values = decodeNpy(await readFile(f32.path)).data as Float32Array;
    const halves = Buffer.concat(await Promise.all(ok.map((l) => storedBytes(fromS3, l.outputs.block2_pool!))));
    expect(values).toEqual(float16BitsToFloat32(new Uint16Array(halves.buffer, halves.byteOffset, halves.byteLength / 2)));
  });

  it('pools local datasets to (C,) per sample in their layout: avg of float16 .npy files, max of float32 hwc shards', async () => {
    const manifest16 = await openOutput(local).get(manifestKey('localnpy16'));
    const ok16 = okLines(manifest16!.toString('utf8').trim().split('\n').map((l) => JSON.parse(l) as ManifestLine));
    const folder = path.join(h.tmp, 'local', 'localnpy16');
    const avg = await exportJson([folder, '--layer', 'block2_pool', '--pool', 'avg', '--to', exported('avg.npy')]);
    expect(avg).toMatchObject({ shape: [5, 128], dtype: 'float16', source: `${local}/localnpy16` });
    const pooled = decodeNpy(await readFile(avg.path));
    for (const [i, line] of ok16.entries()) {
      // Computed here on its own: the mean of each channel's 8x8 map, in float64, stored as float32 then float16.
      const halves = await storedBytes(fromLocal, line.outputs.block2_pool!);
      const maps = float16BitsToFloat32(new Uint16Array(halves.buffer, halves.byteOffset, halves.length / 2));
      const means = Float32Array.from({ length: 128 }, (_, c) => maps.subarray(c * 64, (c + 1) * 64).reduce((s, v) => s + v, 0) / 64);
      expect(pooled.data.subarray(i * 128, (i + 1) * 128)).toEqual(float32ToFloat16Bits(means));
    }

    const manifest = await openOutput(local).get(manifestKey('localshards'));
    const ok = okLines(manifest!.toString('utf8').trim().split('\n').map((l) => JSON.parse(l) as ManifestLine));
    const max = await exportJson([`${local}/localshards`, '--layer', 'block2_pool', '--pool', 'max', '--to', exported('max.npy')]);
    expect(max).toMatchObject({ shape: [5, 128], dtype: 'float32' });
    const maxed = decodeNpy(await readFile(max.path)).data as Float32Array;
    for (const [i, line] of ok.entries()) {
      const bytes = await storedBytes(fromLocal, line.outputs.block2_pool!);
      const hwc = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4);
      const expected = Float32Array.from({ length: 128 }, (_, c) => Math.max(...Array.from({ length: 64 }, (_, p) => hwc[p * 128 + c]!)));
      expect(maxed.subarray(i * 128, (i + 1) * 128)).toEqual(expected);
      expect(expected).toEqual(globalPool(hwc, [8, 8, 128], 'hwc', 'max').data);
    }
  });

  it("loads the export with the README's numpy snippet (np.load of the stacked file, mmap of one sample)", async () => {
    const dir = path.join(h.tmp, 'python');
    await mkdir(dir);
    await exportJson([`${local}/localnpy16`, '--layer', 'block2_pool', '--to', path.join(dir, 'acts.npy')]);
    const snippet = (await readmeNumpySnippet()).replaceAll('out/my-dataset', path.join(h.tmp, 'local', 'localnpy16')).replaceAll('features.9', 'block2_pool');
    const check = `${snippet}\nimport json\nprint(json.dumps({"shape": list(acts.shape), "dtype": str(acts.dtype), "ids": ids, "same": bool((row == one).all()), "one": list(one.shape)}))\n`;
    const res = await python(check, dir);
    expect(res.stderr).toBe('');
    expect(res.code).toBe(0);
    expect(JSON.parse(res.stdout)).toEqual({ shape: [5, 128, 8, 8], dtype: 'float16', ids: ['rocket', 'chelsea', 'camera', 'coffee', 'astronaut'], same: true, one: [128, 8, 8] });
  });

  it('refuses an unknown layer listing the dataset\'s layers, and a --to that is neither .npy nor .safetensors (exit 2)', async () => {
    const layer = await h.layertap(['export', 's3://layertap/out/s3npy', '--layer', 'block5_pool', '--to', exported('x.npy')]);
    expect(layer.code).toBe(2);
    expect(layer.stderr).toBe('layertap: error [unknown_layer]: dataset s3npy has no layer "block5_pool"; it has features.9 (block2_pool), fc2\n');
    const to = await h.layertap(['export', 's3npy', '--layer', 'fc2', '--to', exported('x.pt')]);
    expect(to.code).toBe(2);
    expect(to.stderr).toContain(`--to "${exported('x.pt')}": give a .npy or .safetensors file`);
    const missing = await h.layertap(['export', 's3://layertap/out/nothing-here', '--layer', 'fc2', '--to', exported('x.npy')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('s3://layertap/out/nothing-here has no dataset.json: not a finished layertap dataset folder');
  });

  it('exports by output URI with Redis stopped; by dataset id it says Redis is unreachable', async () => {
    const before = await readFile(exported('s3npy.npy'));
    await h.services.redisServer.stop();
    const result = await exportJson(['s3://layertap/out/s3npy', '--layer', 'features.9', '--to', exported('no-redis.npy')]);
    expect((await readFile(result.path)).equals(before)).toBe(true);
    expect(await readFile(result.idsPath, 'utf8')).toBe(await readFile(exported('s3npy.ids.txt'), 'utf8'));
    const byId = await h.layertap(['export', 's3npy', '--layer', 'features.9', '--to', exported('by-id.npy')]);
    expect(byId.code).toBe(1);
    expect(byId.stderr).toContain('layertap: error [service_unavailable]: cannot connect to Redis at');
  });
});

describe('layertap export: 10,000 samples in bounded memory', () => {
  const h = new Harness('export-10k');
  const N = 10_000;
  const shape = [128, 8, 8]; // block2_pool at 32 px: 32 KiB a row, 328 MB stacked: more than the RSS allowed
  const rowValues = shape.reduce((a, b) => a * b, 1);
  /** Sample i's values: distinct per sample and position. */
  const values = (i: number) => {
    const out = new Float32Array(rowValues);
    let x = i * 2654435761;
    for (let j = 0; j < rowValues; j++) {
      x = (Math.imul(x, 1103515245) + 12345) | 0;
      out[j] = (x >> 8) / 65536;
    }
    return out;
  };
  const failed = (i: number) => i % 97 === 13;
  let dir: string;

  beforeAll(async () => {
    await h.start();
    dir = path.join(h.tmp, 'out');
    // The outputs are written directly with the storage package's writer, laid out as the worker lays out a
    // real dataset (a .npy per sample, manifest.jsonl, and dataset.json from the finalizer's own function),
    // instead of running 10,000 inferences.
    const writer = openOutput(pathToFileURL(dir).href);
    const config = DatasetConfig.parse({
      datasetId: 'big',
      output: writer.uri,
      layers: [{ spec: 'block2_pool', canonical: 'block2_pool', shape: [128, 8, 8] }],
      seed: 0,
      preprocess: 'torchvision',
      imageSize: 32,
      batchSize: 16,
      chunkSize: 64,
      dtype: 'float32',
      layout: 'chw',
      totalSamples: N,
      submittedAt: new Date().toISOString(),
      run: 0,
    });
    const lines: string[] = [];
    for (let i = 0; i < N; i++) {
      const id = `img-${String(i).padStart(5, '0')}`;
      const uri = `s3://images/big/${id}.jpg`;
      if (failed(i)) {
        lines.push(JSON.stringify({ id, uri, status: 'failed', error: { code: 'decode_failed', message: 'not an image' }, outputs: {}, shape: {}, dtype: 'float32' }));
        continue;
      }
      const key = sampleKey('big', 'block2_pool', id);
      await writer.put(key, encodeNpy(values(i), shape, 'float32'));
      lines.push(JSON.stringify({ id, uri, status: 'ok', outputs: { block2_pool: key }, shape: { block2_pool: shape }, dtype: 'float32' }));
    }
    await writer.put(manifestKey('big'), `${lines.join('\n')}\n`);
    const failures = Array.from({ length: N }, (_, i) => i).filter(failed).length;
    const doc = datasetDocument(config, [config], [], { ok: N - failures, failed: failures, failures: { decode_failed: failures } }, 'test');
    await writer.put(datasetKey('big'), JSON.stringify(doc, null, 2));
  }, 300_000);
  afterAll(() => h.close());

  it('stays under 300 MB of RSS and its rows equal the per-sample files', async () => {
    const to = path.join(h.tmp, 'big.npy');
    const started = Date.now();
    const child = spawn(process.execPath, [BIN.layertap, 'export', `file://${dir}/big`, '--layer', 'block2_pool', '--to', to, '--json'], { env: h.env(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    // The kernel's high-water mark of the process's resident set, read until it exits.
    let peakKb = 0;
    let running = true;
    void exited.then(() => (running = false));
    while (running) {
      const status = await readFile(`/proc/${child.pid}/status`, 'utf8').catch(() => '');
      const hwm = /VmHWM:\s+(\d+) kB/.exec(status);
      if (hwm) peakKb = Math.max(peakKb, Number(hwm[1]));
      await new Promise((r) => setTimeout(r, 20));
    }
    const code = await exited;
    const seconds = (Date.now() - started) / 1000;
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const kept = Array.from({ length: N }, (_, i) => i).filter((i) => !failed(i));
    const result = JSON.parse(stdout) as { shape: number[]; bytes: number };
    expect(result.shape).toEqual([kept.length, ...shape]);
    console.log(`export of ${kept.length} samples (${(result.bytes / 1e6).toFixed(0)} MB stacked): peak RSS ${(peakKb / 1024).toFixed(0)} MiB, ${seconds.toFixed(1)} s`);
    expect(peakKb).toBeGreaterThan(0);
    expect(peakKb * 1024).toBeLessThan(300 * 1024 * 1024);

    // Row by row against the per-sample files (never the whole stacked file in memory here either).
    const handle = await open(to, 'r');
    try {
      const header = Buffer.alloc(10);
      await handle.read(header, 0, 10, 0);
      const start = 10 + header.readUInt16LE(8);
      const row = Buffer.alloc(rowValues * 4);
      for (const [r, i] of kept.entries()) {
        await handle.read(row, 0, row.length, start + r * row.length);
        const stored = await readFile(path.join(dir, 'big', 'block2_pool', `img-${String(i).padStart(5, '0')}.npy`));
        if (!row.equals(npyData(stored))) throw new Error(`row ${r} (sample ${i}) differs from its .npy`);
      }
    } finally {
      await handle.close();
    }
    const ids = (await readFile(path.join(h.tmp, 'big.ids.txt'), 'utf8')).trimEnd().split('\n');
    expect(ids).toEqual(kept.map((i) => `img-${String(i).padStart(5, '0')}`));
  });
});
