/**
 * The README says `dataset.json` lists every run, even runs Redis has lost. A dataset grows by a second run;
 * Redis then loses the first run (its config, plan and chunk progress, as after an eviction or a restore from
 * an older dump) before the second finishes: the new `dataset.json` still lists the first run, taken from the
 * `dataset.json` stored before (issue 18).
 */
import { copyFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { Harness, SAMPLES } from './support/harness';

interface RunEntry {
  run: number;
  submittedAt: string;
  samples: number;
}

describe('a run Redis lost', () => {
  const h = new Harness('lostrun');
  beforeAll(() => h.start(), 60_000);
  afterAll(() => h.close());

  const dir = () => path.join(h.tmp, 'photos');
  async function add(...names: string[]): Promise<void> {
    await mkdir(dir(), { recursive: true });
    for (const n of names) await copyFile(path.join(SAMPLES, `${n}.jpg`), path.join(dir(), `${n}.jpg`));
  }
  const submit = () => h.layertap(['submit', dir(), '--dataset-id', 'grown', '--weights', 'random', '--layer', 'block1_pool', '--image-size', '32', '--output', 's3://layertap/lost', '--chunk-size', '2']);
  const document = async () => JSON.parse((await h.getObject('layertap', 'lost/grown/dataset.json'))!.toString()) as { runs: RunEntry[]; counts: Record<string, number> };

  it('is still listed in dataset.json after the next run finishes', async () => {
    await add('astronaut', 'camera', 'chelsea');
    expect((await submit()).code).toBe(0);
    await h.runWorker();
    const first = (await document()).runs;
    expect(first).toEqual([{ run: 0, submittedAt: expect.any(String), samples: 3 }]);

    await add('coffee', 'rocket');
    expect((await submit()).code).toBe(0);
    // Redis loses run 0: its config, chunk plan, chunk progress and start time.
    const key = (part: string) => `${h.prefix}:ds:grown:${part}`;
    expect(await h.redis.hdel(key('runs'), '0')).toBe(1);
    for (const part of ['plan', 'chunks']) {
      const fields = (await h.redis.hkeys(key(part))).filter((f) => f.startsWith('0:'));
      if (fields.length) await h.redis.hdel(key(part), ...fields);
    }
    await h.redis.hdel(key('times'), 'started:0');
    expect(Object.keys(await h.redis.hgetall(key('runs')))).toEqual(['1']);

    await h.runWorker();
    const after = await document();
    expect(after.runs).toEqual([first[0], { run: 1, submittedAt: expect.any(String), samples: 2 }]);
    expect(after.counts).toMatchObject({ total: 5, ok: 5, failed: 0 });
  });
});
