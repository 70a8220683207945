import { Job, Queue } from 'bullmq';
import type { ManifestLine } from '@layertap/contracts';
import { Harness, SAMPLES } from './support/harness';

/**
 * Chunk jobs that disappear from Redis (issue 18: Bull Board's "Empty" on the chunks queue, or one waiting
 * chunk job removed) lose no samples: the dataset is not `done`, `status` names the missing chunks, idle
 * workers still exit, and `retry` runs their samples. Real redis-server, s3rver and worker processes; the null
 * engine keeps the runs short.
 */
describe('missing chunk jobs', () => {
  const h = new Harness('missing');
  const engine = { LAYERTAP_ENGINE: 'null', LAYERTAP_BACKEND: 'auto' };
  let chunks: Queue;

  beforeAll(async () => {
    await h.start();
    chunks = new Queue('chunks', { connection: h.redis, prefix: h.prefix });
  }, 60_000);
  afterAll(async () => {
    await chunks?.close();
    await h.close();
  });

  const submit = (id: string) =>
    h.layertap(['submit', SAMPLES, '--weights', 'random', '--layer', 'block1_pool', '--output', 's3://layertap/missing', '--image-size', '32', '--chunk-size', '3', '--dataset-id', id]);
  const statusOf = async (id: string) => {
    const res = await h.layertap(['status', id, '--json']);
    expect(res.code).toBe(0);
    return JSON.parse(res.stdout) as { state: string; reason?: string; missingChunks?: number[]; next?: string; progress: { ok: number; failed: number; pending: number } };
  };
  const manifest = (id: string) => h.manifest('layertap', 'missing', id);

  it('one waiting chunk job removed: the run is not done, status names the chunk, retry runs its samples', async () => {
    expect((await submit('one')).code).toBe(0);
    const job = await Job.fromId(chunks, 'one~r0~c1');
    expect(job).toBeDefined();
    await job!.remove();

    await h.runWorker([], engine);
    const status = await statusOf('one');
    expect(status.state).toBe('failed');
    expect(status.reason).toContain('chunk jobs 0/1 (run/chunk; 3 samples) disappeared from Redis before they ran');
    expect(status.next).toContain('layertap retry one');
    expect(status.progress.ok).toBe(4);

    const retry = await h.layertap(['retry', 'one']);
    expect(retry.code).toBe(0);
    await h.runWorker([], engine);
    const after = await statusOf('one');
    expect(after.state).toBe('done');
    const lines: ManifestLine[] = await manifest('one');
    expect(lines.map((l) => l.status)).toEqual(new Array(7).fill('ok'));
  }, 180_000);

  it("the chunks queue emptied (Bull Board's Empty): the dataset fails naming every chunk, and retry runs all samples", async () => {
    expect((await submit('emptied')).code).toBe(0);
    await chunks.drain();

    await h.runWorker([], engine);
    const status = await statusOf('emptied');
    expect(status.state).toBe('failed');
    expect(status.reason).toContain('chunk jobs 0/0, 0/1, 0/2 (run/chunk; 7 samples) disappeared from Redis before they ran');
    expect(status.progress.ok).toBe(0);

    expect((await h.layertap(['retry', 'emptied'])).code).toBe(0);
    await h.runWorker([], engine);
    expect((await statusOf('emptied')).state).toBe('done');
    const lines: ManifestLine[] = await manifest('emptied');
    expect(lines).toHaveLength(7);
    expect(lines.every((l) => l.status === 'ok')).toBe(true);
  }, 180_000);

  it('chunk jobs Redis lost behind BullMQ: idle workers exit, status says unknown naming the chunks, retry runs them', async () => {
    expect((await submit('lost')).code).toBe(0);
    // What BullMQ's bookkeeping never sees: the job hashes deleted, the wait list emptied; the parent still
    // lists them as its dependencies.
    for (const chunk of [0, 1, 2]) {
      await h.redis.del(`${h.prefix}:chunks:lost~r0~c${chunk}`);
      await h.redis.lrem(`${h.prefix}:chunks:wait`, 0, `lost~r0~c${chunk}`);
    }
    const status = await statusOf('lost');
    expect(status.state).toBe('unknown');
    expect(status.missingChunks).toEqual([0, 1, 2]);
    expect(status.reason).toContain('chunks 0, 1, 2 of run 0 disappeared from Redis before they ran');
    expect(status.next).toContain('layertap retry lost');
    // The orphaned parent is no work: an --exit-when-idle worker exits (before: it waited forever).
    const output = await h.runWorker([], engine);
    expect(output).toContain('waits only for chunk jobs that were removed');

    expect((await h.layertap(['retry', 'lost'])).code).toBe(0);
    await h.runWorker([], engine);
    expect((await statusOf('lost')).state).toBe('done');
    const lines: ManifestLine[] = await manifest('lost');
    expect(lines).toHaveLength(7);
    expect(lines.every((l) => l.status === 'ok')).toBe(true);
  }, 180_000);
});
