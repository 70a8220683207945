import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Redis } from 'ioredis';
import sharp from 'sharp';
import type { ChunkJob } from '@layertap/contracts';
import { LayertapQueues } from '@layertap/queue';
import { Harness, SAMPLES } from './support/harness';

/** Pixel statistics of a PNG: size, variance of all channel values, and distinct RGB colours. */
async function pngStats(file: string) {
  const { data, info } = await sharp(file).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  let sum = 0;
  let sq = 0;
  for (const v of data) {
    sum += v;
    sq += v * v;
  }
  const mean = sum / data.length;
  const colours = new Set<number>();
  for (let i = 0; i < data.length; i += 3) colours.add((data[i]! << 16) | (data[i + 1]! << 8) | data[i + 2]!);
  const at = (x: number, y: number) => Array.from(data.subarray((y * info.width + x) * 3, (y * info.width + x) * 3 + 3));
  return { width: info.width, height: info.height, variance: sq / data.length - mean * mean, colours: colours.size, at };
}

describe('layertap show: a feature-map montage of a real dataset', () => {
  const h = new Harness('show');
  let images: string;

  beforeAll(async () => {
    await h.start();
    images = path.join(h.tmp, 'images');
    await mkdir(images);
    for (const name of ['chelsea.jpg', 'coffee.jpg']) await copyFile(path.join(SAMPLES, name), path.join(images, name));
    await writeFile(path.join(images, 'broken.jpg'), 'this is not a JPEG');
    const common = ['--output', 's3://layertap/out', '--image-size', '64', '--batch-size', '2', '--chunk-size', '2'];
    expect((await h.layertap(['submit', images, '--weights', 'random', '--layer', 'block1_pool,block3_pool', ...common, '--dataset-id', 'maps'])).code).toBe(0);
    expect((await h.layertap(['submit', images, '--weights', 'random', '--layer', 'block3_pool', '--pool', 'avg', ...common, '--dataset-id', 'pooled'])).code).toBe(0);
    // The same samples stored as safetensors shards, enqueued through the queue API (as `submit --format
    // shards` does).
    const redis = new Redis(h.services.redisUrl);
    const queues = new LayertapQueues({ connection: redis, prefix: h.prefix });
    try {
      const config = (await queues.store.runs('maps'))[0]!;
      const samples = (await queues.chunks.getJobs(['waiting']))
        .map((j) => j.data as ChunkJob)
        .filter((d) => d.dataset.datasetId === 'maps')
        .sort((a, b) => a.chunk - b.chunk)
        .flatMap((d) => d.samples);
      await queues.submit({ ...config, datasetId: 'sharded', format: 'shards' }, samples);
    } finally {
      await queues.close();
      redis.disconnect();
    }
    await h.runWorker();
  }, 300_000);
  afterAll(() => h.close());

  it('writes a PNG of the input beside the 16 most active channels, each on its own 0-255 scale', async () => {
    const out = path.join(h.tmp, 'chelsea.png');
    const res = await h.layertap(['show', 'maps', '--sample', 'chelsea', '--layer', 'block1_pool', '--out', out]);
    expect(res.stderr).toBe('');
    expect(res.code).toBe(0);
    expect(res.stdout).toBe(`${out}\n`);

    const png = await pngStats(out);
    // 16 tiles of 96 px in a 4x4 grid with 4 px gaps (396 px), the 64x64 crop scaled to 396 px beside it,
    // 8 px padding, a 22 px title line.
    expect({ width: png.width, height: png.height }).toEqual({ width: 8 + 396 + 16 + 396 + 8, height: 8 + 22 + 396 + 8 });
    expect(png.variance).toBeGreaterThan(1000);
    expect(png.colours).toBeGreaterThan(1000);

    // The first tile is the channel with the highest mean, normalised on its own range: check its
    // bottom-right pixel (block1_pool at 64 px is 32x32, scaled x3) against the stored array.
    const npy = await h.npy('layertap', 'out/maps/block1_pool/chelsea.npy');
    expect(npy.shape).toEqual([64, 32, 32]);
    const data = npy.data as Float32Array;
    const plane = 32 * 32;
    const means = Array.from({ length: 64 }, (_, c) => data.subarray(c * plane, (c + 1) * plane).reduce((s, v) => s + v, 0) / plane);
    const top = means.indexOf(Math.max(...means));
    const channel = data.subarray(top * plane, (top + 1) * plane);
    const min = Math.min(...channel);
    const max = Math.max(...channel);
    const expected = Math.round(((channel[plane - 1]! - min) / (max - min)) * 255);
    const tile = { x: 8 + 396 + 16, y: 8 + 22 };
    expect(png.at(tile.x + 95, tile.y + 95)).toEqual([expected, expected, expected]);
  });

  it('picks the first successful sample and the first layer by default, and finds a sample by URI', async () => {
    const out = path.join(h.tmp, 'default.png');
    const res = await h.layertap(['show', 'maps', '--out', out, '--json', '--channels', '4', '--size', '32']);
    expect(res.code).toBe(0);
    const printed = JSON.parse(res.stdout) as { sample: string; layer: string; shape: number[]; path: string };
    expect(printed).toMatchObject({ layer: 'block1_pool', shape: [64, 32, 32], path: out });
    expect(['chelsea', 'coffee']).toContain(printed.sample);

    const byUri = path.join(h.tmp, 'by-uri.png');
    const manifest = await h.manifest('layertap', 'out', 'maps');
    const coffee = manifest.find((l) => l.id === 'coffee')!;
    const viaUri = await h.layertap(['show', 'maps', '--sample', coffee.uri, '--layer', 'block3_pool', '--out', byUri, '--json']);
    expect(viaUri.code).toBe(0);
    expect(JSON.parse(viaUri.stdout)).toMatchObject({ sample: 'coffee', layer: 'block3_pool', shape: [256, 8, 8] });
    expect((await pngStats(byUri)).colours).toBeGreaterThan(500);

    // A plain local path finds the file:// URI that submit recorded.
    const viaPath = await h.layertap(['show', 'maps', '--sample', path.join(images, 'chelsea.jpg'), '--out', byUri, '--json']);
    expect(viaPath.code).toBe(0);
    expect(JSON.parse(viaPath.stdout)).toMatchObject({ sample: 'chelsea', layer: 'block1_pool' });
  });

  it('reads the array out of a safetensors shard: the same montage as from the .npy', async () => {
    const coffee = (await h.manifest('layertap', 'out', 'sharded')).find((l) => l.id === 'coffee')!;
    expect(coffee.outputs.block3_pool).toMatch(/^sharded\/shards\/\d{6}-\d{9}\.safetensors#coffee\/block3_pool$/);
    const fromNpy = path.join(h.tmp, 'npy.png');
    const fromShard = path.join(h.tmp, 'shard.png');
    expect((await h.layertap(['show', 'maps', '--sample', 'coffee', '--layer', 'block3_pool', '--out', fromNpy])).code).toBe(0);
    const res = await h.layertap(['show', 'sharded', '--sample', 'coffee', '--layer', 'block3_pool', '--out', fromShard, '--json']);
    expect(res.stderr).toBe('');
    expect(JSON.parse(res.stdout)).toMatchObject({ sample: 'coffee', shape: [256, 8, 8] });
    const [a, b] = await Promise.all([fromNpy, fromShard].map((f) => sharp(f).removeAlpha().raw().toBuffer({ resolveWithObject: true })));
    expect(b!.info.width).toBe(a!.info.width);
    // Only the title (the dataset's name, in the first 30 rows) differs.
    const below = (x: typeof a) => x!.data.subarray(30 * x!.info.width * 3);
    expect(below(b).equals(below(a))).toBe(true);
  });

  it('draws a pooled (C,) layer as a bar strip', async () => {
    const out = path.join(h.tmp, 'pooled.png');
    const res = await h.layertap(['show', 'pooled', '--sample', 'coffee', '--out', out]);
    expect(res.code).toBe(0);
    const png = await pngStats(out);
    // 256 values -> a strip of max(4 x 96, 256) = 384 by 192 px; the input fits in 192 px beside it.
    expect({ width: png.width, height: png.height }).toEqual({ width: 8 + 192 + 16 + 384 + 8, height: 8 + 22 + 192 + 8 });
    expect(png.variance).toBeGreaterThan(500);
  });

  it('refuses a failed sample, an unknown layer and an unknown dataset clearly', async () => {
    const failed = await h.layertap(['show', 'maps', '--sample', 'broken']);
    expect(failed.code).toBe(2);
    expect(failed.stderr).toContain('error [invalid_request]: sample broken failed (decode_failed: ');
    expect(failed.stderr).toContain('it has no activations to show');

    const layer = await h.layertap(['show', 'maps', '--layer', 'fc2']);
    expect(layer.code).toBe(2);
    expect(layer.stderr).toContain('dataset maps has no layer "fc2"; it has block1_pool, block3_pool');

    const missing = await h.layertap(['show', 'maps', '--sample', 'nobody']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('dataset maps has no sample with id or URI "nobody"');

    const unknown = await h.layertap(['show', 'nope']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('no dataset "nope" in Redis');
  });

  it('works from the output folder with Redis stopped: samples from the manifest, layers and preprocessing from dataset.json', async () => {
    const byId = path.join(h.tmp, 'coffee-by-id.png');
    expect((await h.layertap(['show', 'maps', '--sample', 'coffee', '--layer', 'block3_pool', '--out', byId])).code).toBe(0);
    await h.services.redisServer.stop();

    const byUri = path.join(h.tmp, 'coffee-by-uri.png');
    const res = await h.layertap(['show', 's3://layertap/out/maps', '--sample', 'coffee', '--layer', 'block3_pool', '--out', byUri, '--json']);
    expect(res.stderr).toBe('');
    expect(res.code).toBe(0);
    expect(JSON.parse(res.stdout)).toEqual({ datasetId: 'maps', sample: 'coffee', layer: 'block3_pool', shape: [256, 8, 8], path: byUri });
    // The same picture as through Redis: the same array, input crop and title.
    const [a, b] = await Promise.all([byId, byUri].map((f) => sharp(f).raw().toBuffer()));
    expect(b!.equals(a!)).toBe(true);

    // Defaults (the manifest's first ok sample, the first layer) and a sample by its file path, from shards.
    const first = (await h.manifest('layertap', 'out', 'sharded')).find((l) => l.status === 'ok')!;
    const shardDefault = await h.layertap(['show', 's3://layertap/out/sharded', '--out', path.join(h.tmp, 'shard-default.png'), '--json']);
    expect(shardDefault.code).toBe(0);
    expect(JSON.parse(shardDefault.stdout)).toMatchObject({ datasetId: 'sharded', sample: first.id, layer: 'block1_pool', shape: [64, 32, 32] });
    const byPath = await h.layertap(['show', 's3://layertap/out/pooled', '--sample', path.join(images, 'chelsea.jpg'), '--out', path.join(h.tmp, 'p.png'), '--json']);
    expect(JSON.parse(byPath.stdout)).toMatchObject({ sample: 'chelsea', layer: 'block3_pool', shape: [256] });

    const failed = await h.layertap(['show', 's3://layertap/out/maps', '--sample', 'broken']);
    expect(failed.code).toBe(2);
    expect(failed.stderr).toContain('error [invalid_request]: sample broken failed (decode_failed: ');
    const layer = await h.layertap(['show', 's3://layertap/out/maps', '--layer', 'fc2']);
    expect(layer.code).toBe(2);
    expect(layer.stderr).toContain('dataset maps has no layer "fc2"; it has block1_pool, block3_pool');
    const notDataset = await h.layertap(['show', 's3://layertap/out/nope']);
    expect(notDataset.code).toBe(2);
    expect(notDataset.stderr).toContain('s3://layertap/out/nope has no dataset.json: not a finished layertap dataset folder');
    // By id it needs Redis, and says so.
    const unreachable = await h.layertap(['show', 'maps']);
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toContain('cannot connect to Redis');
  });
});
