import path from 'node:path';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import type { ChunkResult } from '@layertap/contracts';
import { Harness, SAMPLES } from './support/harness';
import { makeVariants } from './support/images';

const CHUNK_SIZE = 200;
/** 2,000 by default; LAYERTAP_SOAK_SAMPLES (a multiple of 200) runs a longer soak by hand. */
const SAMPLES_COUNT = Number(process.env.LAYERTAP_SOAK_SAMPLES ?? 2_000);
const MB = 1024 * 1024;
/**
 * Largest RSS growth accepted between the end of the first chunk and the end of the last, for each process
 * (the worker's main process and its inference child). After the first chunk the model, the wasm kernels,
 * the S3 and Redis connection pools and V8's heap have reached their working size; what keeps growing over
 * the 1,800 samples after it is a leak. Measured on the 2-core development machine (wasm backend, S3
 * output), ten runs: the worker grew 3 to 43 MB, the inference process 0.5 to 14 MB; in one 10,000-sample run
 * the worker's RSS went up and down between +0 and +58 MB (GC and allocator timing) and ended +17 MB, the
 * inference process stayed within 124-148 MB. 100 MB stays clear of that noise and still catches a leak of
 * 56 KB or more per sample (one forgotten 64x16x16 float32 activation, or an encoded `.npy` kept by the
 * upload path, is 64 KB: 115 MB over 1,800 samples).
 */
const MAX_RSS_GROWTH_MB = 100;

/**
 * A soak of 2,000 samples through one worker: the number of live tensors in the inference process is the
 * same after every chunk, and the RSS of both processes stays bounded. Small images (64x48, 32 px input) and
 * a shallow layer keep it under a minute. The output is S3 (s3rver), the production path, where the AWS
 * SDK's sockets and buffers live in the worker's main process; file:// would save about 15 s here but leave
 * that path out of the soak.
 */
describe(`soak: ${SAMPLES_COUNT} samples through one worker`, () => {
  const h = new Harness('soak');
  let images: string;
  beforeAll(async () => {
    await h.start();
    images = path.join(h.tmp, 'images');
    const sources = ['astronaut', 'camera', 'chelsea', 'coffee', 'hubble_deep_field', 'motorcycle_left', 'rocket'].map((n) => path.join(SAMPLES, `${n}.jpg`));
    const started = Date.now();
    await makeVariants(sources, images, SAMPLES_COUNT, 64, 48);
    process.stdout.write(`soak: made ${SAMPLES_COUNT} JPEGs (64x48) in ${Date.now() - started} ms\n`);
  }, 600_000);
  afterAll(() => h.close());

  it('keeps numTensors constant after every chunk and RSS growth bounded', async () => {
    const submit = await h.layertap([
      'submit', images, '--weights', 'random', '--layer', 'block1_pool', '--output', 's3://layertap/soak', '--image-size', '32',
      '--batch-size', '16', '--chunk-size', String(CHUNK_SIZE), '--dataset-id', 'soak',
    ]);
    expect(submit.stderr).toBe('');
    expect(submit.stdout).toContain(`submitted dataset soak: ${SAMPLES_COUNT} samples in ${SAMPLES_COUNT / CHUNK_SIZE} chunks`);

    const started = Date.now();
    // The TF.js engine: the soak watches TF.js tensors (tf.memory) and both processes' RSS.
    await h.runWorker(['--concurrency', '1', '--engine', 'tfjs']);
    const workerMs = Date.now() - started;

    const redis = new Redis(h.services.redisUrl);
    const chunks = new Queue('chunks', { connection: redis, prefix: h.prefix });
    let results: ChunkResult[];
    try {
      const jobs = await chunks.getJobs(['completed'], 0, -1);
      results = jobs.map((j) => j.returnvalue as ChunkResult).sort((a, b) => a.startedAt.localeCompare(b.startedAt));
      expect(await chunks.getJobCountByTypes('failed', 'waiting', 'active', 'delayed')).toBe(0);
    } finally {
      await chunks.close();
      redis.disconnect();
    }
    expect(results.map((r) => r.chunk).sort((a, b) => a - b)).toEqual([...Array(SAMPLES_COUNT / CHUNK_SIZE).keys()]);
    expect(results.every((r) => r.ok === CHUNK_SIZE && r.failed === 0)).toBe(true);
    expect(results.every((r) => r.timings?.batches === Math.ceil(CHUNK_SIZE / 16))).toBe(true);

    const rows = results.map((r) => ({
      chunk: r.chunk,
      ms: r.durationMs,
      inferenceMs: Math.round(r.timings!.inferenceMs),
      numTensors: r.memory!.numTensors,
      numBytes: r.memory!.numBytes,
      workerRssMB: +(r.memory!.rssBytes / MB).toFixed(1),
      childRssMB: +(r.memory!.childRssBytes / MB).toFixed(1),
    }));
    const first = results[0]!.memory!;
    const last = results[results.length - 1]!.memory!;
    const growth = { worker: (last.rssBytes - first.rssBytes) / MB, child: (last.childRssBytes - first.childRssBytes) / MB };
    process.stdout.write(
      [
        `soak: ${SAMPLES_COUNT} samples in ${workerMs} ms (worker start to exit), backend ${results[0]!.backend}`,
        ...rows.map((r) => `  chunk ${String(r.chunk).padStart(2)}: ${r.ms} ms, inference ${r.inferenceMs} ms, tensors ${r.numTensors} (${r.numBytes} B), worker RSS ${r.workerRssMB} MB, inference RSS ${r.childRssMB} MB`),
        `  RSS growth first -> last chunk: worker ${growth.worker.toFixed(1)} MB (${(first.rssBytes / MB).toFixed(1)} -> ${(last.rssBytes / MB).toFixed(1)}), ` +
          `inference ${growth.child.toFixed(1)} MB (${(first.childRssBytes / MB).toFixed(1)} -> ${(last.childRssBytes / MB).toFixed(1)}); bound ${MAX_RSS_GROWTH_MB} MB each`,
      ].join('\n') + '\n',
    );

    // The same live tensors (the model's weights) after every chunk: nothing accumulates per batch.
    expect(new Set(rows.map((r) => r.numTensors)).size).toBe(1);
    expect(new Set(rows.map((r) => r.numBytes)).size).toBe(1);
    expect(rows[0]!.numTensors).toBeGreaterThan(0);
    expect(growth.worker).toBeLessThan(MAX_RSS_GROWTH_MB);
    expect(growth.child).toBeLessThan(MAX_RSS_GROWTH_MB);

    // And the output is complete: one line and one array per sample.
    const manifest = await h.manifest('layertap', 'soak', 'soak');
    expect(manifest).toHaveLength(SAMPLES_COUNT);
    expect(new Set(manifest.map((l) => l.id)).size).toBe(SAMPLES_COUNT);
    expect(manifest.every((l) => l.status === 'ok')).toBe(true);
    const keys = await h.listKeys('layertap', 'soak/soak/block1_pool/');
    expect(keys.filter((k) => k.endsWith('.npy'))).toHaveLength(SAMPLES_COUNT);
    expect((await h.npy('layertap', keys[keys.length - 1]!)).shape).toEqual([64, 16, 16]);
  }, Math.max(300_000, SAMPLES_COUNT * 150));
});
