import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { request } from 'node:http';
import { openOutput } from '@layertap/storage';
import { isGpuBackend, outputKind, WorkerMetrics } from './metrics';
import { MetricsServer, startMetricsServer } from './metrics-server';
import { readMetricsConfig } from './metrics-config';

/** The value of one sample line (`name{labels} value`) in Prometheus text, or undefined. */
function valueOf(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

function get(port: number, path: string): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port, path }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }));
    })
      .on('error', reject)
      .end();
  });
}

describe('WorkerMetrics', () => {
  it('counts samples by status and failures by reason, and times stages and batches', async () => {
    const metrics = new WorkerMetrics({ defaultMetrics: false, concurrency: 3 });
    const slot = metrics.forSlot(0);
    slot.sample('ok');
    slot.sample('ok');
    slot.sample('failed', 'decode_failed');
    slot.sample('failed', 'not_found');
    slot.sample('failed', 'decode_failed');
    slot.skipped(4);
    slot.stage('decode', 0.02);
    slot.stage('inference', 1.5);
    slot.stage('inference', 0.5);
    slot.batch(2.2, 16);
    const text = await metrics.registry.metrics();
    expect(valueOf(text, 'layertap_samples_processed_total{status="ok"}')).toBe(2);
    expect(valueOf(text, 'layertap_samples_processed_total{status="failed"}')).toBe(3);
    expect(valueOf(text, 'layertap_sample_failures_total{reason="decode_failed"}')).toBe(2);
    expect(valueOf(text, 'layertap_sample_failures_total{reason="not_found"}')).toBe(1);
    expect(valueOf(text, 'layertap_samples_skipped_total')).toBe(4);
    expect(valueOf(text, 'layertap_stage_seconds_count{stage="inference"}')).toBe(2);
    expect(valueOf(text, 'layertap_stage_seconds_sum{stage="inference"}')).toBe(2);
    expect(valueOf(text, 'layertap_stage_seconds_bucket{le="1",stage="inference"}')).toBe(1);
    expect(valueOf(text, 'layertap_stage_seconds_count{stage="decode"}')).toBe(1);
    expect(valueOf(text, 'layertap_batch_seconds_count')).toBe(1);
    expect(valueOf(text, 'layertap_batch_samples_total')).toBe(16);
    expect(valueOf(text, 'layertap_worker_concurrency')).toBe(3);
    expect(valueOf(text, 'layertap_worker_rss_bytes')).toBeGreaterThan(10_000_000);
    // No prom-client defaults were asked for, and nothing leaks into prom-client's global registry.
    expect(text).not.toContain('process_cpu_seconds_total');
  });

  it('reports inference memory per slot, and GPU memory only for GPU backends', async () => {
    const metrics = new WorkerMetrics({ defaultMetrics: false });
    metrics.forSlot(0).inferenceMemory({ numTensors: 40, numBytes: 58_000_000, childRssBytes: 400_000_000 }, 'wasm', 'tfjs wasm');
    metrics.forSlot(1).inferenceMemory({ numTensors: 41, numBytes: 60_000_000, childRssBytes: 900_000_000 }, 'webgpu', 'Dawn');
    let text = await metrics.registry.metrics();
    expect(valueOf(text, 'layertap_inference_tensors{slot="0"}')).toBe(40);
    expect(valueOf(text, 'layertap_inference_tensor_bytes{slot="1"}')).toBe(60_000_000);
    expect(valueOf(text, 'layertap_inference_rss_bytes{slot="1"}')).toBe(900_000_000);
    expect(valueOf(text, 'layertap_gpu_memory_bytes{slot="1"}')).toBe(60_000_000);
    expect(valueOf(text, 'layertap_gpu_memory_bytes{slot="0"}')).toBeUndefined();
    expect(valueOf(text, 'layertap_inference_backend_info{slot="1",backend="webgpu"}')).toBe(1);
    // Slot 1 reloads on the CPU: its GPU gauge and old backend go away.
    metrics.forSlot(1).inferenceMemory({ numTensors: 41, numBytes: 1, childRssBytes: 1 }, 'cpu');
    text = await metrics.registry.metrics();
    expect(valueOf(text, 'layertap_gpu_memory_bytes{slot="1"}')).toBeUndefined();
    expect(valueOf(text, 'layertap_inference_backend_info{slot="1",backend="webgpu"}')).toBeUndefined();
    expect(valueOf(text, 'layertap_inference_backend_info{slot="1",backend="cpu"}')).toBe(1);
  });

  it('tells GPU backends and output kinds apart', () => {
    expect(['webgpu', 'cuda', 'onnx:cuda', 'onnx:webgpu', 'tfjs:webgpu', 'onnx/cuda'].map((b) => isGpuBackend(b))).toEqual([true, true, true, true, true, true]);
    expect(['wasm', 'cpu', 'tensorflow', 'onnx:cpu', 'tfjs:wasm', 'tfjs:tensorflow'].map((b) => isGpuBackend(b))).toEqual([false, false, false, false, false, false]);
    expect(isGpuBackend('tensorflow', '@tensorflow/tfjs-node-gpu loaded')).toBe(true);
    expect(isGpuBackend('tfjs:tensorflow', '@tensorflow/tfjs-node-gpu 4.22.0 (CUDA)')).toBe(true);
    expect(['ds/features.9/a.npy', 'ds/shards/000000-000000001.safetensors', 'ds/_parts/000000-000000001.jsonl', 'ds/manifest.jsonl', 'ds/dataset.json'].map(outputKind)).toEqual([
      'array', 'shard', 'part', 'manifest', 'manifest',
    ]);
  });

  it('counts chunk results and the bytes written through a metered writer', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'layertap-metrics-'));
    try {
      const metrics = new WorkerMetrics({ defaultMetrics: false });
      const writer = metrics.meter(openOutput(`file://${dir}`));
      await writer.put('ds/features.9/a.npy', Buffer.alloc(1000));
      await writer.put('ds/features.9/b.npy', Buffer.alloc(24));
      await writer.put('ds/_parts/000000-000000000.jsonl', 'héllo\n');
      expect((await writer.get('ds/features.9/a.npy'))?.length).toBe(1000);
      metrics.chunkStarted();
      metrics.chunkStarted();
      metrics.chunkEnded('done', 12);
      const text = await metrics.registry.metrics();
      expect(valueOf(text, 'layertap_output_bytes_total{kind="array"}')).toBe(1024);
      expect(valueOf(text, 'layertap_output_bytes_total{kind="part"}')).toBe(7);
      expect(valueOf(text, 'layertap_chunks_total{result="done"}')).toBe(1);
      expect(valueOf(text, 'layertap_worker_active_chunks')).toBe(1);
      expect(valueOf(text, 'layertap_chunk_seconds_sum')).toBe(12);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('MetricsServer', () => {
  it('serves /metrics in the Prometheus text format, /healthz, and 404 elsewhere', async () => {
    const metrics = new WorkerMetrics();
    metrics.forSlot(0).sample('ok');
    const server = new MetricsServer({ registry: metrics.registry, port: 0, host: '127.0.0.1' });
    await server.start();
    try {
      const res = await get(server.port!, '/metrics');
      expect(res.status).toBe(200);
      expect(res.type).toBe('text/plain; version=0.0.4; charset=utf-8');
      expect(res.body).toContain('# TYPE layertap_samples_processed_total counter');
      expect(valueOf(res.body, 'layertap_samples_processed_total{status="ok"}')).toBe(1);
      expect(res.body).toContain('process_resident_memory_bytes');
      expect((await get(server.port!, '/healthz')).body).toBe('ok\n');
      expect((await get(server.port!, '/nope')).status).toBe(404);
    } finally {
      await server.close();
    }
  });

  it('rejects when the port is taken', async () => {
    const a = new MetricsServer({ registry: new WorkerMetrics({ defaultMetrics: false }).registry, port: 0, host: '127.0.0.1' });
    await a.start();
    const b = new MetricsServer({ registry: new WorkerMetrics({ defaultMetrics: false }).registry, port: a.port!, host: '127.0.0.1' });
    await expect(b.start()).rejects.toThrow(/EADDRINUSE/);
    await a.close();
    await b.close();
  });
});

describe('readMetricsConfig', () => {
  it('defaults to port 9464 on the loopback interface; flags beat LAYERTAP_METRICS_PORT and _HOST; 0 is off', () => {
    expect(readMetricsConfig({}, {})).toEqual({ port: 9464, host: '127.0.0.1', portChosen: false });
    expect(readMetricsConfig({}, { LAYERTAP_METRICS_PORT: '9100', LAYERTAP_METRICS_HOST: '0.0.0.0' })).toEqual({ port: 9100, host: '0.0.0.0', portChosen: true });
    expect(readMetricsConfig({ metricsHost: '0.0.0.0', metricsPort: 9200 }, { LAYERTAP_METRICS_HOST: '::1' })).toEqual({ port: 9200, host: '0.0.0.0', portChosen: true });
    expect(readMetricsConfig({ metricsPort: 0 }, { LAYERTAP_METRICS_PORT: '9100' }).port).toBe(0);
    expect(() => readMetricsConfig({}, { LAYERTAP_METRICS_PORT: '70000' })).toThrow(/LAYERTAP_METRICS_PORT/);
  });
});

describe('startMetricsServer', () => {
  const log = () => {
    const lines: Array<{ level: string; obj: object; msg: string }> = [];
    return { lines, info: (obj: object, msg: string) => lines.push({ level: 'info', obj, msg }), warn: (obj: object, msg: string) => lines.push({ level: 'warn', obj, msg }) };
  };

  it('moves to a free port when the default one is taken (a second worker on the host), and says so', async () => {
    const first = new MetricsServer({ registry: new WorkerMetrics({ defaultMetrics: false }).registry, port: 0, host: '127.0.0.1' });
    await first.start();
    const l = log();
    const second = await startMetricsServer(new WorkerMetrics({ defaultMetrics: false }).registry, { port: first.port!, host: '127.0.0.1', portChosen: false }, l);
    try {
      expect(second).toBeDefined();
      expect(second!.port).not.toBe(first.port);
      expect((await get(second!.port!, '/healthz')).body).toBe('ok\n');
      expect(l.lines.map((x) => x.msg)).toEqual([
        `metrics: port ${first.port} is taken (another worker on this host?): serving on ${second!.port}`,
        'metrics endpoint started',
      ]);
    } finally {
      await second?.close();
      await first.close();
    }
  });

  it('a chosen port that is taken leaves the worker without metrics, with a warning', async () => {
    const first = new MetricsServer({ registry: new WorkerMetrics({ defaultMetrics: false }).registry, port: 0, host: '127.0.0.1' });
    await first.start();
    const l = log();
    const second = await startMetricsServer(new WorkerMetrics({ defaultMetrics: false }).registry, { port: first.port!, host: '127.0.0.1', portChosen: true }, l);
    await first.close();
    expect(second).toBeUndefined();
    expect(l.lines).toEqual([expect.objectContaining({ level: 'warn', msg: expect.stringMatching(/^metrics endpoint not started/) })]);
  });
});
