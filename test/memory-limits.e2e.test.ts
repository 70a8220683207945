/**
 * Memory under a hostile or careless request. `layertap submit` estimates a batch's activation memory from the
 * plan (layers x shape x batch) and refuses a request whose single sample cannot fit the memory limit, and
 * refuses sources over their limits (manifest size, URI length, sample count), all before Redis is touched.
 * A worker never runs a batch its memory budget cannot hold: it runs smaller batches and says so, and the
 * arrays are the ones a large batch gives.
 */
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Queue } from 'bullmq';
import { sampleMemoryBytes } from '@layertap/model/batch-size';
import { getModel } from '@layertap/model/models';
import { Harness, SAMPLES } from './support/harness';

const MiB = 1024 ** 2;

describe('memory limits: submit refuses what cannot fit, workers shrink batches to their budget', () => {
  const h = new Harness('memory');
  /** Every layer of the model, once each. */
  const ALL = getModel().layers.map((l) => l.name);

  beforeAll(async () => {
    await h.start();
  }, 60_000);
  afterAll(async () => {
    await h.close();
  });

  /** Refusals use a queue prefix of their own: nothing may appear under it. */
  const refusedPrefix = `${h.prefix}-refused`;
  async function expectRefused(args: string[], env: Record<string, string>, message: RegExp) {
    const res = await h.layertap(['submit', '--weights', 'random', ...args], { ...env, LAYERTAP_QUEUE_PREFIX: refusedPrefix });
    expect({ code: res.code, stderr: res.stderr }).toEqual({ code: 2, stderr: expect.stringMatching(message) });
    expect(res.stderr.trim().split('\n')).toHaveLength(1);
    expect(await h.redis.keys(`${refusedPrefix}*`)).toEqual([]);
    return res;
  }

  // First: the refusals below must not leave a dataset behind for this test's workers even when they fail.
  it('a worker with a small budget runs smaller batches than asked, and stores the same arrays as one large batch', async () => {
    const images = path.join(h.tmp, 'images');
    await mkdir(images);
    for (const name of ['astronaut', 'camera', 'chelsea', 'coffee', 'rocket']) await copyFile(path.join(SAMPLES, `${name}.jpg`), path.join(images, `${name}.jpg`));
    const args = [images, '--weights', 'random', '--layer', ALL.join(','), '--image-size', '32', '--batch-size', '8', '--chunk-size', '5', '--output', 's3://layertap/out'];
    // A budget that holds two samples: the worker runs the chunk of five as batches of 2, 2 and 1.
    const perSample = sampleMemoryBytes(ALL, 32);
    const budgetMiB = Math.ceil((2.5 * perSample) / MiB);
    const chunks = new Queue('chunks', { connection: h.redis, prefix: h.prefix });
    try {
      expect((await h.layertap(['submit', ...args, '--dataset-id', 'small'])).code).toBe(0);
      const smallLog = await h.runWorker([], { LAYERTAP_MEMORY_BUDGET_MB: String(budgetMiB) });
      const shrunk = smallLog.split('\n').filter((l) => l.includes('batch size shrunk')).map((l) => JSON.parse(l));
      expect(shrunk).toEqual([expect.objectContaining({ datasetId: 'small', chunk: 0, requested: 8, batchSize: 2, budgetMiB, sampleMiB: Number((perSample / MiB).toFixed(1)) })]);
      expect((await chunks.getJob('small~r0~c0'))?.returnvalue.timings.batches).toBe(3);
      // The same request with room for the batch of 8: one batch, nothing shrunk.
      expect((await h.layertap(['submit', ...args, '--dataset-id', 'whole'])).code).toBe(0);
      const wholeLog = await h.runWorker([], { LAYERTAP_MEMORY_BUDGET_MB: '4096' });
      expect(wholeLog).not.toContain('batch size shrunk');
      expect((await chunks.getJob('whole~r0~c0'))?.returnvalue.timings.batches).toBe(1);
    } finally {
      await chunks.close();
    }
    const small = await h.manifest('layertap', 'out', 'small');
    const whole = await h.manifest('layertap', 'out', 'whole');
    expect(small.map((l) => l.status)).toEqual(['ok', 'ok', 'ok', 'ok', 'ok']);
    expect(whole.map((l) => l.id)).toEqual(small.map((l) => l.id));
    let compared = 0;
    for (const [i, line] of small.entries()) {
      for (const layer of ALL) {
        const a = await h.npy('layertap', `out/${line.outputs[layer]}`);
        const b = await h.npy('layertap', `out/${whole[i]!.outputs[layer]}`);
        expect(a.shape).toEqual(b.shape);
        let worst = 0;
        let scale = 1e-6;
        for (let k = 0; k < a.data.length; k++) {
          worst = Math.max(worst, Math.abs((a.data[k] as number) - (b.data[k] as number)));
          scale = Math.max(scale, Math.abs(b.data[k] as number));
        }
        expect({ layer, relative: worst / scale < 1e-4 }).toEqual({ layer, relative: true });
        compared++;
      }
    }
    expect(compared).toBe(5 * ALL.length);
  });
  it('refuses a request whose one sample needs more than the memory limit, naming layers, shape, batch and the limit', async () => {
    const all = ['--layer', ALL.join(','), '--output', 's3://layertap/out'];
    // Every layer at 1024 px: no worker with the default budget (at most 8 GiB) can hold one sample.
    const huge = await expectRefused(
      [SAMPLES, ...all, '--image-size', '1024', '--batch-size', '4'],
      {},
      /error \[invalid_request\]: 38 layers \(block1_conv1_preact 64x1024x1024, .*\) at 1024 px need [\d.]+ GiB per sample, [\d.]+ GiB for a batch of 4: over the memory limit of 8 GiB a worker gives one batch \(LAYERTAP_MEMORY_BUDGET_MB\); even a batch of 1 does not fit: ask for fewer or smaller layers, or a smaller --image-size/,
    );
    expect(huge.stderr).toContain('predictions 1000');
    // The limit is the producer's LAYERTAP_MEMORY_BUDGET_MB when set.
    await expectRefused([SAMPLES, '--layer', 'block1_conv1', '--output', 's3://layertap/out'], { LAYERTAP_MEMORY_BUDGET_MB: '16' }, /over the memory limit of 16 MiB/);
  });

  it('refuses an oversized manifest, an over-long URI and too many samples, before Redis', async () => {
    const big = path.join(h.tmp, 'big.txt');
    const text = 'https://images.example.com/a.jpg\n'.repeat(40_000);
    await writeFile(big, text);
    const mib = (text.length / MiB).toFixed(1);
    await expectRefused([big, '--layer', 'block2_pool', '--output', 's3://layertap/out'], { LAYERTAP_MAX_SOURCE_MB: '1' }, new RegExp(`big\\.txt is ${mib} MiB, over the limit of 1 MiB for a source \\(LAYERTAP_MAX_SOURCE_MB\\)`));
    const long = path.join(h.tmp, 'long.jsonl');
    const longUri = `https://images.example.com/${'x'.repeat(5000)}.jpg`;
    await writeFile(long, [JSON.stringify({ uri: 'https://images.example.com/a.jpg' }), JSON.stringify({ uri: longUri })].join('\n'));
    await expectRefused([long, '--layer', 'block2_pool', '--output', 's3://layertap/out'], {}, new RegExp(`long\\.jsonl:2: the URI is ${longUri.length} bytes, over the limit of 4096 bytes`));
    const many = path.join(h.tmp, 'many.txt');
    await writeFile(many, ['a.jpg', 'b.jpg', 'c.jpg', 'd.jpg'].join('\n'));
    await expectRefused([many, '--layer', 'block2_pool', '--output', 's3://layertap/out'], { LAYERTAP_MAX_SAMPLES: '3' }, /many\.txt:4: more than 3 samples \(LAYERTAP_MAX_SAMPLES\)/);
    await expectRefused([SAMPLES, '--layer', 'block2_pool', '--output', 's3://layertap/out'], { LAYERTAP_MAX_SAMPLES: '3' }, /more than 3 samples \(LAYERTAP_MAX_SAMPLES\)/);
  });

});
