import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { decodeNpy } from '@layertap/storage';
import { BIN, Harness, SAMPLES } from './support/harness';

/**
 * Faults with real processes: workers killed with SIGKILL or stopped with SIGTERM mid-batch, Redis
 * restarted, S3 away for a while or for good. Whatever happens, every sample ends with exactly one
 * manifest line, and no sample is `ok` without its whole arrays stored.
 */
describe('faults', () => {
  // AOF on, so a Redis restart keeps the queues (as a production Redis with persistence would).
  const h = new Harness('faults', { redis: { persistent: true } });
  // Batches must compute for a while so that faults land inside them: TF.js on wasm (one thread) at 320 px
  // takes seconds for a batch of 4 on any machine of this kind (about 1.6 s on a Zen 5, 4 s on a Zen 3).
  const slow = { LAYERTAP_ENGINE: 'tfjs', LAYERTAP_BACKEND: 'wasm' };
  beforeAll(() => h.start(), 60_000);
  afterAll(() => h.close());

  /** 7 photos at 320 px, chunks of 4, one batch per chunk: each batch computes for seconds on wasm. */
  const submit = (id: string, extra: string[] = [], env: Record<string, string> = {}) =>
    h.layertap(['submit', SAMPLES, '--weights', 'random', '--layer', 'block2_pool', '--output', 's3://layertap/faults', '--image-size', '320', '--batch-size', '4', '--chunk-size', '4', '--dataset-id', id, ...extra], env);

  async function expectComplete(id: string) {
    const manifest = await h.manifest('layertap', 'faults', id);
    expect(manifest).toHaveLength(7);
    expect(new Set(manifest.map((l) => l.id)).size).toBe(7);
    expect(manifest.filter((l) => l.status !== 'ok')).toEqual([]);
    for (const line of manifest) {
      const npy = decodeNpy((await h.getObject('layertap', `faults/${line.outputs['block2_pool']}`))!);
      expect(npy.shape).toEqual([128, 80, 80]);
    }
    const provenance = JSON.parse((await h.getObject('layertap', `faults/${id}/dataset.json`))!.toString());
    expect(provenance.counts).toMatchObject({ total: 7, ok: 7, failed: 0 });
  }

  it('kill -9 of a worker in the middle of a batch: the other worker finishes its chunk, once per sample', async () => {
    expect((await submit('killed')).code).toBe(0);
    const args = ['--exit-when-idle', '--lock-duration', '2000'];
    const victim = h.spawn(BIN.worker, args, slow);
    // Once the model is loaded the chunk's batch computes for seconds: this lands inside inference.
    await h.waitForOutput(victim.output, /"model loaded"/);
    await new Promise((r) => setTimeout(r, 400));
    expect(victim.output()).not.toMatch(/"chunk done"/);
    victim.child.kill('SIGKILL');
    expect(await victim.exited).toBeNull();
    const survivor = h.spawn(BIN.worker, args, slow);
    expect(await survivor.exited).toBe(0);
    expect(survivor.output()).toMatch(/"chunk done"/);
    await expectComplete('killed');
  });

  it('SIGTERM during a batch: the chunk is released, the process exits in bounded time, nothing partial is stored', async () => {
    expect((await submit('termed')).code).toBe(0);
    const worker = h.spawn(BIN.worker, ['--exit-when-idle'], { ...slow, LAYERTAP_SHUTDOWN_TIMEOUT_MS: '500' });
    await h.waitForOutput(worker.output, /"model loaded"/);
    await new Promise((r) => setTimeout(r, 400));
    const sent = Date.now();
    worker.child.kill('SIGTERM');
    expect(await worker.exited).toBe(0);
    const exitMs = Date.now() - sent;
    process.stdout.write(`SIGTERM -> exit: ${exitMs} ms\n`);
    expect(exitMs).toBeLessThan(15_000);
    expect(worker.output()).toMatch(/chunk released|chunk done/);

    const redis = new Redis(h.services.redisUrl);
    const chunks = new Queue('chunks', { connection: redis, prefix: h.prefix });
    try {
      const job = await chunks.getJob('termed~r0~c0');
      const state = await job!.getState();
      expect(['delayed', 'waiting', 'completed']).toContain(state);
      if (state !== 'completed') expect(job!.attemptsMade).toBe(0); // released, not failed
    } finally {
      await chunks.close();
      redis.disconnect();
    }
    // Whatever was stored is whole.
    for (const key of (await h.listKeys('layertap', 'faults/termed/')).filter((k) => k.endsWith('.npy'))) {
      expect(decodeNpy((await h.getObject('layertap', key))!).shape).toEqual([128, 56, 56]);
    }
    await h.runWorker([], slow);
    await expectComplete('termed');
  });

  it('SIGTERM before the images are in: the chunk is released, not failed sample by sample', async () => {
    expect((await submit('termed-early')).code).toBe(0);
    const worker = h.spawn(BIN.worker, ['--exit-when-idle'], { ...slow, LAYERTAP_SHUTDOWN_TIMEOUT_MS: '1' });
    await h.waitForOutput(worker.output, /"chunk started"/);
    worker.child.kill('SIGTERM');
    expect(await worker.exited).toBe(0);
    expect(await h.listKeys('layertap', 'faults/termed-early/_parts/')).toEqual([]);
    await h.runWorker([], slow);
    await expectComplete('termed-early');
  });

  it('Redis stopped and restarted mid-dataset: the worker and the waiting CLI reconnect, the dataset completes', async () => {
    expect((await submit('redis-restart', ['--chunk-size', '2', '--batch-size', '2'])).code).toBe(0);
    const cli = h.spawn(BIN.layertap, ['submit', SAMPLES, '--weights', 'random', '--layer', 'block2_pool', '--output', 's3://layertap/faults', '--image-size', '320', '--batch-size', '2', '--chunk-size', '2', '--dataset-id', 'redis-restart', '--wait']);
    const worker = h.spawn(BIN.worker, ['--exit-when-idle'], slow);
    await h.waitForOutput(worker.output, /"chunk done"/);
    await h.services.redisServer.stop();
    await new Promise((r) => setTimeout(r, 3_000));
    await h.services.redisServer.start();
    expect(await worker.exited).toBe(0);
    expect(await cli.exited).toBe(0);
    expect(cli.output()).toContain('dataset   redis-restart (run 0, done)');
    await expectComplete('redis-restart');
  });

  it('S3 unreachable for a while: uploads and chunks retry with backoff, and the dataset completes', async () => {
    expect((await submit('s3-blip', [], { LAYERTAP_CHUNK_BACKOFF_MS: '1000' })).code).toBe(0);
    const worker = h.spawn(BIN.worker, ['--exit-when-idle'], slow);
    await h.waitForOutput(worker.output, /"chunk started"/);
    await h.services.s3Server.stop();
    await new Promise((r) => setTimeout(r, 6_000));
    await h.services.s3Server.start();
    expect(await worker.exited).toBe(0);
    await expectComplete('s3-blip');
  });

  it('S3 down for good: the chunks fail after their attempts, visibly, and no sample is recorded ok', async () => {
    expect((await submit('s3-gone', [], { LAYERTAP_CHUNK_ATTEMPTS: '2', LAYERTAP_CHUNK_BACKOFF_MS: '200' })).code).toBe(0);
    await h.services.s3Server.stop();
    try {
      const worker = h.spawn(BIN.worker, ['--exit-when-idle'], { ...slow, LAYERTAP_CHUNK_ATTEMPTS: '2' });
      expect(await worker.exited).toBe(0);
      const status = await h.layertap(['status', 's3-gone', '--json']);
      const parsed = JSON.parse(status.stdout);
      expect(parsed.progress.ok).toBe(0);
      expect(parsed.chunks).toMatchObject({ total: 2, failed: 2 });
      expect(parsed.chunkFailures).toHaveLength(2);
      expect(parsed.chunkFailures[0].reason).toMatch(/upload|S3|ECONNREFUSED|connect/i);
      expect(parsed.state).toBe('failed');
      const human = await h.layertap(['status', 's3-gone']);
      expect(human.stdout).toMatch(/chunk 0 failed: .+/);
    } finally {
      await h.services.s3Server.start();
    }
    expect(await h.listKeys('layertap', 'faults/s3-gone/')).toEqual([]);
  });
});
