import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Harness, SAMPLES } from './support/harness';

/** Re-submitting a dataset whose jobs are gone from Redis resumes from what the output holds. */
describe('resume after the jobs are gone from Redis', () => {
  const h = new Harness('resume');
  const names = ['astronaut', 'camera', 'chelsea', 'coffee', 'hubble_deep_field', 'motorcycle_left', 'rocket'];
  beforeAll(async () => {
    await h.start();
  }, 60_000);
  afterAll(async () => {
    await h.close();
  });

  async function list(file: string, count: number): Promise<string> {
    const target = path.join(h.tmp, file);
    await writeFile(target, names.slice(0, count).map((n) => path.join(SAMPLES, `${n}.jpg`)).join('\n') + '\n');
    return target;
  }
  const submit = (source: string) =>
    h.layertap(['submit', source, '--weights', 'random', '--layer', 'block1_pool', '--output', 's3://layertap/resume', '--image-size', '64', '--chunk-size', '2', '--dataset-id', 'ds']);

  it('runs only the samples not stored yet, and a finished dataset runs nothing again', async () => {
    // A first, interrupted life: only 3 of the 7 samples were processed, then Redis lost everything.
    expect((await submit(await list('first.txt', 3))).code).toBe(0);
    await h.runWorker();
    const firstBytes = await h.getObject('layertap', 'resume/ds/block1_pool/astronaut.npy');
    await h.redis.flushall();

    const all = await list('all.txt', 7);
    const resumed = await submit(all);
    expect(resumed.code).toBe(0);
    expect(resumed.stdout).toContain('resuming dataset ds as run 1: 3 samples already stored, 4 to run in 2 chunks');
    const log = await h.runWorker();
    expect(log.match(/"chunk started"/g)).toHaveLength(2);
    let manifest = await h.manifest('layertap', 'resume', 'ds');
    expect(manifest.map((l) => l.id).sort()).toEqual(names);
    expect(manifest.every((l) => l.status === 'ok')).toBe(true);
    // Stored samples were not recomputed.
    expect(await h.getObject('layertap', 'resume/ds/block1_pool/astronaut.npy')).toEqual(firstBytes);

    // Finished, and forgotten by Redis again: nothing runs, the manifest is merged again, identical.
    await h.redis.flushall();
    const again = await submit(all);
    expect(again.stdout).toContain('7 samples already stored, 0 to run in 0 chunks');
    const idle = await h.runWorker();
    expect(idle).not.toMatch(/"chunk started"/);
    manifest = await h.manifest('layertap', 'resume', 'ds');
    expect(manifest).toHaveLength(7);
    const provenance = JSON.parse((await h.getObject('layertap', 'resume/ds/dataset.json'))!.toString());
    expect(provenance.counts).toMatchObject({ total: 7, ok: 7, failed: 0 });
    const status = JSON.parse((await h.layertap(['status', 'ds', '--json'])).stdout);
    expect(status.state).toBe('done');
  });
});
