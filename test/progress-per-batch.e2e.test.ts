import { QueueEvents } from 'bullmq';
import { QueueName } from '@layertap/contracts';
import { BIN, Harness, SAMPLES } from './support/harness';

/**
 * Issue 19: `submit --wait` progress moved in chunk-sized steps. A worker reports a chunk's progress after
 * every batch it has written (BullMQ progress events and the chunk's counts in Redis, which `--wait`,
 * `status --watch` and the dashboard read), so one chunk of 7 samples run in batches of 2 is seen part-done
 * before it ends, not only at 7. Real redis-server, s3rver and worker; ONNX Runtime on the CPU at 32 px.
 */
describe('progress per batch', () => {
  const h = new Harness('progress-batch');
  let events: QueueEvents;

  beforeAll(async () => {
    await h.start();
    events = new QueueEvents(QueueName.Chunks, { connection: { url: h.env().REDIS_URL }, prefix: h.prefix });
    await events.waitUntilReady();
  }, 60_000);
  afterAll(async () => {
    await events?.close();
    await h.close();
  });

  it('one chunk of 7 samples in batches of 2 reports its progress after each batch, not only once the chunk is done', async () => {
    const seen: number[] = [];
    events.on('progress', ({ data }) => {
      const ok = (data as { ok?: number }).ok;
      if (typeof ok === 'number') seen.push(ok);
    });
    const submitted = await h.layertap([
      'submit', SAMPLES, '--weights', 'random', '--layer', 'block1_pool', '--output', 's3://layertap/progress',
      '--image-size', '32', '--chunk-size', '8', '--batch-size', '2', '--dataset-id', 'per-batch',
    ]);
    expect(submitted.code).toBe(0);
    const worker = h.spawn(BIN.worker, ['--exit-when-idle', '1'], { LAYERTAP_ENGINE: 'onnx', LAYERTAP_BACKEND: 'cpu', LAYERTAP_THREADS: '1' });
    expect(await worker.exited).toBe(0);
    // Events are read from a Redis stream: give the reader a moment to deliver the last ones.
    for (let i = 0; i < 50 && !seen.includes(7); i++) await new Promise((r) => setTimeout(r, 100));
    // One report per batch (4 batches); two batches are in flight, so a report may already count the next
    // batch's samples (e.g. 4, 4, 7, 7): never backwards, and the chunk is seen part-done before it ends.
    expect(seen).toHaveLength(4);
    expect(seen.every((n, i) => i === 0 || n >= seen[i - 1]!)).toBe(true);
    expect(seen.some((n) => n > 0 && n < 7)).toBe(true);
    expect(seen.at(-1)).toBe(7);
    const status = await h.layertap(['status', 'per-batch']);
    expect(status.stdout).toContain('per-batch');
  }, 180_000);
});
