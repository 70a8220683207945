/**
 * One worker run, three things checked on it: `--format shards` (one safetensors file per chunk, equal to
 * the .npy files of the same dataset), the sample index in Redis (lookup by id or URI, failure examples,
 * throughput), and the worker's Prometheus endpoint while it runs.
 */
import { copyFile, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import path from 'node:path';
import { Redis } from 'ioredis';
import { findFreePort } from '@layertap/devservices';
import { LayertapQueues } from '@layertap/queue';
import type { ChunkJob, DatasetConfig } from '@layertap/contracts';
import { decodeSafetensors, parseOutputRef } from '@layertap/storage';
import { BIN, Harness, SAMPLES } from './support/harness';

function scrape(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port, path: '/metrics' }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`HTTP ${res.statusCode}: ${body}`))));
    })
      .on('error', reject)
      .end();
  });
}

/** The value of one series (`name{labels}`) in Prometheus text. */
function metric(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('shards, sample index and metrics, on one worker run', () => {
  const h = new Harness('shards');
  let redis: Redis;
  let queues: LayertapQueues;
  let metricsText = '';
  let workerLog = '';

  beforeAll(async () => {
    await h.start();
    for (const name of ['chelsea.jpg', 'camera.jpg', 'rocket.jpg', 'coffee.jpg']) await copyFile(path.join(SAMPLES, name), path.join(h.tmp, name));
    await writeFile(path.join(h.tmp, 'broken.jpg'), 'not an image');
    const list = path.join(h.tmp, 'images.txt');
    await writeFile(list, ['chelsea.jpg', 'broken.jpg', 'camera.jpg', 'rocket.jpg', 'coffee.jpg'].join('\n'));
    redis = new Redis(h.services.redisUrl);
    queues = new LayertapQueues({ connection: redis, prefix: h.prefix });

    const common = ['--layer', 'features.9,block3_pool', '--output', 's3://layertap/out', '--image-size', '32', '--batch-size', '2', '--chunk-size', '2'];
    for (const [id, extra] of [
      ['npy32', []],
      ['npy16', ['--dtype', 'float16', '--layout', 'hwc']],
    ] as const) {
      const r = await h.layertap(['submit', list, '--weights', 'random', ...common, '--dataset-id', id, ...extra]);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
    }
    // The shard datasets: the same samples and settings with format 'shards', enqueued through the queue API
    // (what `layertap submit --format shards` does once bin.ts passes the option).
    const waiting = await queues.chunks.getJobs(['waiting']);
    for (const [from, to] of [['npy32', 'shards32'], ['npy16', 'shards16']] as const) {
      const config = (await queues.store.runs(from))[0]!;
      const samples = waiting
        .map((j) => j.data as ChunkJob)
        .filter((d) => d.dataset.datasetId === from)
        .sort((a, b) => a.chunk - b.chunk)
        .flatMap((d) => d.samples);
      const shardConfig: DatasetConfig = { ...config, datasetId: to, format: 'shards' };
      await queues.submit(shardConfig, samples);
    }

    // One worker with its metrics endpoint, scraped once every dataset is finished.
    const port = await findFreePort('127.0.0.1');
    const worker = h.spawn(BIN.worker, [], { LAYERTAP_METRICS_PORT: String(port), LAYERTAP_METRICS_HOST: '127.0.0.1' });
    await h.waitForOutput(worker.output, /"worker started"/, 60_000);
    const ids = ['npy32', 'npy16', 'shards32', 'shards16'];
    const deadline = Date.now() + 240_000;
    while (!(await Promise.all(ids.map((id) => queues.store.progress(id)))).every((p) => p?.finished)) {
      if (Date.now() > deadline) throw new Error(`datasets did not finish:\n${worker.output()}`);
      await new Promise((r) => setTimeout(r, 250));
    }
    metricsText = await scrape(port);
    worker.child.kill('SIGTERM');
    expect(await worker.exited).toBe(0);
    workerLog = worker.output();
  }, 300_000);

  afterAll(async () => {
    await queues?.close();
    redis?.disconnect();
    await h.close();
  });

  describe('--format shards', () => {
    it('writes one safetensors file per chunk holding every ok sample, equal to the .npy files', async () => {
      const keys = await h.listKeys('layertap', 'out/shards32/');
      expect(keys.filter((k) => k.includes('/shards/'))).toEqual([
        'out/shards32/shards/000000-000000000.safetensors',
        'out/shards32/shards/000000-000000001.safetensors',
        'out/shards32/shards/000000-000000002.safetensors',
      ]);
      expect(keys.filter((k) => k.endsWith('.npy'))).toEqual([]);

      const manifest = await h.manifest('layertap', 'out', 'shards32');
      expect(manifest.map((l) => [l.id, l.status])).toEqual([
        ['chelsea', 'ok'],
        ['broken', 'failed'],
        ['camera', 'ok'],
        ['rocket', 'ok'],
        ['coffee', 'ok'],
      ]);
      const camera = manifest.find((l) => l.id === 'camera')!;
      expect(camera.outputs).toEqual({
        'features.9': 'shards32/shards/000000-000000001.safetensors#camera/features.9',
        block3_pool: 'shards32/shards/000000-000000001.safetensors#camera/block3_pool',
      });
      expect(camera.shape).toEqual({ 'features.9': [128, 8, 8], block3_pool: [256, 4, 4] });

      // Chunk 0 holds chelsea only (broken failed): no gap, no tensor for the failed sample.
      const shard0 = decodeSafetensors((await h.getObject('layertap', 'out/shards32/shards/000000-000000000.safetensors'))!);
      expect(shard0.tensors.map((t) => [t.name, t.dtype, t.shape])).toEqual([
        ['chelsea/features.9', 'F32', [128, 8, 8]],
        ['chelsea/block3_pool', 'F32', [256, 4, 4]],
      ]);
      expect(shard0.metadata).toMatchObject({
        format: 'layertap-shard/1',
        datasetId: 'shards32',
        run: '0',
        chunk: '0',
        dtype: 'float32',
        layout: 'chw',
        pool: 'none',
        imageSize: '32',
        weights: 'random, seed 0',
        model: 'vgg16',
      });
      expect(JSON.parse(shard0.metadata.layers!)).toEqual([
        { spec: 'features.9', canonical: 'block2_pool', shape: [128, 8, 8] },
        { spec: 'block3_pool', canonical: 'block3_pool', shape: [256, 4, 4] },
      ]);
      expect(JSON.parse(shard0.metadata.preprocessing!)).toMatchObject({ mode: 'torchvision', imageSize: 32 });
      expect(shard0.metadata.layertapVersion).toMatch(/^\d+\.\d+\.\d+/);

      // Every tensor equals the .npy of the same sample in the npy dataset, bit for bit.
      let compared = 0;
      for (const line of manifest.filter((l) => l.status === 'ok')) {
        for (const [layer, ref] of Object.entries(line.outputs)) {
          const { key, tensor } = parseOutputRef(ref);
          const shard = decodeSafetensors((await h.getObject('layertap', `out/${key}`))!);
          const t = shard.tensors.find((x) => x.name === tensor)!;
          const npy = await h.npy('layertap', `out/npy32/${layer}/${line.id}.npy`);
          expect(t.shape).toEqual(npy.shape);
          expect(Buffer.from(t.data.buffer).equals(Buffer.from(npy.data.buffer))).toBe(true);
          compared++;
        }
      }
      expect(compared).toBe(8);

      const provenance = JSON.parse((await h.getObject('layertap', 'out/shards32/dataset.json'))!.toString());
      expect(provenance).toMatchObject({
        format: 'shards',
        files: { shards: 'shards/<run>-<chunk>.safetensors', outputs: '<shard key>#<tensor name>' },
        counts: { total: 5, ok: 4, failed: 1, failures: { decode_failed: 1 } },
      });
    });

    it('stores float16 hwc shards as F16 with the .npy bits', async () => {
      const manifest = await h.manifest('layertap', 'out', 'shards16');
      const rocket = manifest.find((l) => l.id === 'rocket')!;
      const { key, tensor } = parseOutputRef(rocket.outputs.block3_pool!);
      const shard = decodeSafetensors((await h.getObject('layertap', `out/${key}`))!);
      expect(shard.metadata).toMatchObject({ dtype: 'float16', layout: 'hwc' });
      const t = shard.tensors.find((x) => x.name === tensor)!;
      expect([t.dtype, t.shape]).toEqual(['F16', [4, 4, 256]]);
      const npy = await h.npy('layertap', 'out/npy16/block3_pool/rocket.npy');
      expect(npy.dtype).toBe('float16');
      expect([...t.data]).toEqual([...npy.data]);
    });
  });

  describe('sample index', () => {
    it('finds a sample by id or URI, in one dataset or in all, without reading any manifest', async () => {
      const byId = await queues.store.findSample('shards32', 'camera');
      expect(byId).toMatchObject({
        datasetId: 'shards32',
        id: 'camera',
        status: 'ok',
        run: 0,
        chunk: 1,
        outputs: { 'features.9': 'shards32/shards/000000-000000001.safetensors#camera/features.9' },
      });
      expect(byId?.uri).toMatch(/^file:\/\/.*\/camera\.jpg$/);
      expect(await queues.store.findSample('npy32', byId!.uri)).toMatchObject({ id: 'camera', outputs: { 'features.9': 'npy32/features.9/camera.npy' } });

      const everywhere = await queues.store.findSampleAnywhere('broken');
      expect(everywhere.map((f) => f.datasetId).sort()).toEqual(['npy16', 'npy32', 'shards16', 'shards32']);
      expect(everywhere.every((f) => f.status === 'failed' && f.code === 'decode_failed' && f.chunk === 0)).toBe(true);
      expect(await queues.store.findSampleAnywhere('nobody')).toEqual([]);
    });

    it('keeps failure examples and a throughput point per chunk', async () => {
      const examples = await queues.store.failureExamples('npy32');
      expect(Object.keys(examples)).toEqual(['decode_failed']);
      expect(examples.decode_failed).toEqual([
        expect.objectContaining({ id: 'broken', chunk: 0, run: 0, uri: expect.stringMatching(/broken\.jpg$/), message: expect.any(String) }),
      ]);
      const points = await queues.store.throughput('npy32');
      expect(points.map((p) => [p.chunk, p.ok, p.failed]).sort()).toEqual([
        [0, 1, 1],
        [1, 2, 0],
        [2, 1, 0],
      ]);
    });
  });

  describe('worker metrics and logs', () => {
    it('serves counters, stage histograms, memory and queue gauges on /metrics', () => {
      const m = (series: string) => metric(metricsText, series);
      // 4 datasets x 5 samples: 4 ok and 1 decode failure each.
      expect(m('layertap_samples_processed_total{status="ok"}')).toBe(16);
      expect(m('layertap_samples_processed_total{status="failed"}')).toBe(4);
      expect(m('layertap_sample_failures_total{reason="decode_failed"}')).toBe(4);
      expect(m('layertap_chunks_total{result="done"}')).toBe(12);
      // 16 ok samples x 2 layers as .npy (half of them), 6 shards, 12 parts, 4 manifests + 4 dataset.json.
      expect(m('layertap_output_bytes_total{kind="array"}')).toBeGreaterThan(8 * (128 * 64 + 256 * 16) * 2);
      expect(m('layertap_output_bytes_total{kind="shard"}')).toBeGreaterThan(8 * (128 * 64 + 256 * 16) * 2);
      expect(m('layertap_output_bytes_total{kind="part"}')).toBeGreaterThan(0);
      expect(m('layertap_output_bytes_total{kind="manifest"}')).toBeGreaterThan(0);
      // Every sample is fetched and decoded (the 4 bad ones fail at decode); the 16 good ones are preprocessed.
      expect(m('layertap_stage_seconds_count{stage="fetch"}')).toBe(20);
      expect(m('layertap_stage_seconds_count{stage="decode"}')).toBe(20);
      expect(m('layertap_stage_seconds_count{stage="preprocess"}')).toBe(16);
      expect(m('layertap_stage_seconds_count{stage="transfer"}')).toBe(m('layertap_batch_seconds_count'));
      expect(m('layertap_stage_seconds_count{stage="inference"}')).toBe(m('layertap_batch_seconds_count'));
      expect(m('layertap_batch_samples_total')).toBe(16);
      // write: one per .npy (16), shard (6) and part (12).
      expect(m('layertap_stage_seconds_count{stage="write"}')).toBe(16 + 6 + 12);
      // Tensors alive after a batch: the model's weights on tfjs, none on ONNX Runtime (it counts what a run
      // left behind); the bytes include the weights either way.
      expect(m('layertap_inference_tensors{slot="0"}')).toBeGreaterThanOrEqual(0);
      expect(m('layertap_inference_tensor_bytes{slot="0"}')).toBeGreaterThan(1e6);
      expect(metricsText).toMatch(/^layertap_inference_backend_info\{slot="0",backend="(tfjs|onnx):[a-z]+"\} 1$/m);
      expect(m('layertap_inference_rss_bytes{slot="0"}')).toBeGreaterThan(50e6);
      expect(m('layertap_worker_rss_bytes')).toBeGreaterThan(50e6);
      expect(m('layertap_queue_metrics_up')).toBe(1);
      expect(m('layertap_queue_jobs{queue="chunks",state="completed"}')).toBe(12);
      expect(m('layertap_queue_jobs{queue="chunks",state="waiting"}')).toBe(0);
      expect(m('layertap_datasets_in_progress')).toBe(0);
      expect(metricsText).toContain('process_cpu_seconds_total');
    });

    it('logs each failed sample with its dataset, chunk, sample id and code', () => {
      const failures = workerLog
        .split('\n')
        .filter((l) => l.includes('"sample failed"'))
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(failures.map((f) => f.datasetId).sort()).toEqual(['npy16', 'npy32', 'shards16', 'shards32']);
      for (const f of failures) expect(f).toMatchObject({ chunk: 0, sampleId: 'broken', code: 'decode_failed', level: 30 });
    });
  });
});
