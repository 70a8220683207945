import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { BIN, Harness, SAMPLES } from './support/harness';

/**
 * Inference runs in a child process, so the worker's event loop keeps renewing the job lock however long a
 * batch computes. With a 1 s lock, a 1 s stalled check and a second worker waiting, a batch of several
 * seconds must still run exactly once.
 */
describe('a batch longer than the lock duration', () => {
  const h = new Harness('lock');
  beforeAll(() => h.start(), 60_000);
  afterAll(() => h.close());

  it('completes once, without a stall, while another worker waits', async () => {
    const submit = await h.layertap([
      'submit', SAMPLES, '--weights', 'random', '--layer', 'block3_pool', '--output', 's3://layertap/out', '--image-size', '320',
      '--batch-size', '4', '--chunk-size', '4', '--dataset-id', 'long',
    ]);
    expect(submit.code).toBe(0);
    const args = ['--exit-when-idle', '--lock-duration', '1000'];
    // TF.js on wasm computes a batch of 4 at 320 px for seconds (3 s on a Zen 5): longer than the 1 s lock.
    const slow = { LAYERTAP_ENGINE: 'tfjs', LAYERTAP_BACKEND: 'wasm' };
    const a = h.spawn(BIN.worker, args, slow);
    const b = h.spawn(BIN.worker, args, slow);
    expect(await a.exited).toBe(0);
    expect(await b.exited).toBe(0);
    const logs = a.output() + b.output();
    expect(logs).not.toMatch(/"job stalled"/);

    const redis = new Redis(h.services.redisUrl);
    const chunks = new Queue('chunks', { connection: redis, prefix: h.prefix });
    try {
      for (const c of [0, 1]) {
        const job = await chunks.getJob(`long~r0~c${c}`);
        expect(job).toBeDefined();
        expect(await job!.getState()).toBe('completed');
        expect(job!.attemptsMade).toBe(1);
        expect(job!.stalledCounter).toBe(0);
        // The batch really did compute for longer than the lock lasts.
        if (c === 0) expect(job!.returnvalue.timings.maxBatchMs).toBeGreaterThan(2_000);
      }
    } finally {
      await chunks.close();
      redis.disconnect();
    }
    const started = logs.split('\n').filter((l) => l.includes('"chunk started"'));
    expect(started).toHaveLength(2);
    const manifest = await h.manifest('layertap', 'out', 'long');
    expect(manifest).toHaveLength(7);
    expect(new Set(manifest.map((l) => l.id)).size).toBe(7);
    expect(manifest.every((l) => l.status === 'ok')).toBe(true);
  });
});
