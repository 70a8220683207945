import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { ManifestLine } from '@layertap/contracts';
import { Harness, SAMPLES } from './support/harness';

const NAMES = ['astronaut', 'camera', 'chelsea', 'coffee', 'hubble_deep_field', 'motorcycle_left', 'rocket'];

/**
 * No dataset gets stuck: whatever stopped it (a chunk that failed for good, a manifest that could not be
 * written, Redis losing its jobs), `status` says why and what next, and `retry`, a resubmit or `cancel` moves
 * it on. Real redis-server, s3rver and worker processes; the null engine (zeros of the right shapes) keeps
 * the runs short, as computing is not what is tested.
 */
describe('no dataset gets stuck', () => {
  const h = new Harness('stuck');
  const engine = { LAYERTAP_ENGINE: 'null', LAYERTAP_BACKEND: 'auto' };
  // One attempt per job, so that failing for good takes a second, not minutes of backoff.
  const once = { LAYERTAP_CHUNK_ATTEMPTS: '1', LAYERTAP_CHUNK_BACKOFF_MS: '100' };
  // A worker whose S3 key is not one the server knows: every S3 call is refused (403), for good.
  const noCredentials = { ...engine, AWS_ACCESS_KEY_ID: 'not-a-known-key' };

  beforeAll(async () => {
    await h.start();
  }, 60_000);
  afterAll(async () => {
    await h.close();
  });

  const submitArgs = (id: string, source = SAMPLES, output = 's3://layertap/stuck') => [
    'submit', source, '--weights', 'random', '--layer', 'block1_pool', '--output', output, '--image-size', '32', '--chunk-size', '4', '--dataset-id', id,
  ];
  const statusOf = async (id: string) => {
    const res = await h.layertap(['status', id, '--json']);
    expect(res.code).toBe(0);
    return JSON.parse(res.stdout);
  };

  /** Submits 7 samples and runs a worker without valid S3 credentials: both chunks fail for good, then the manifest cannot be written. */
  async function failWithoutCredentials(id: string) {
    expect((await h.layertap(submitArgs(id), once)).code).toBe(0);
    const log = await h.runWorker([], noCredentials);
    expect(log).toMatch(/"chunk failed permanently"|"job failed"/);
  }

  it('a worker without S3 credentials: status says failed with the reasons and the next step; retry runs every sample', async () => {
    await failWithoutCredentials('no-creds');
    const status = await statusOf('no-creds');
    expect(status.state).toBe('failed');
    // The samples of the failed chunks count as failed, not pending for ever.
    expect(status.progress).toMatchObject({ total: 7, ok: 0, failed: 7, pending: 0, failures: { chunk_failed: 7 } });
    expect(status.chunkFailures).toHaveLength(2);
    expect(status.chunkFailures[0].reason).toMatch(/not-a-known-key|access|denied|credentials|403/i);
    expect(status.reason).toMatch(/^writing the manifest failed: .+/);
    expect(status.next).toContain('layertap retry no-creds');
    const human = await h.layertap(['status', 'no-creds']);
    expect(human.stdout).toMatch(/^dataset   no-creds \(run 0, failed\)$/m);
    expect(human.stdout).toMatch(/^stopped   writing the manifest failed: .+$/m);
    expect(human.stdout).toMatch(/^chunk 0 failed: .+$/m);
    expect(human.stdout).toMatch(/^next      fix the cause above, then `layertap retry no-creds` runs the 7 samples/m);

    const retry = await h.layertap(['retry', 'no-creds', '--json']);
    expect(retry.stderr).toBe('');
    expect(retry.code).toBe(0);
    expect(JSON.parse(retry.stdout)).toMatchObject({ datasetId: 'no-creds', run: 1, retried: 7, chunks: 2 });
    await h.runWorker([], engine);
    const manifest = await h.manifest('layertap', 'stuck', 'no-creds');
    expect(manifest.map((l) => l.id).sort()).toEqual(NAMES);
    expect(manifest.every((l) => l.status === 'ok')).toBe(true);
    expect(await statusOf('no-creds')).toMatchObject({ state: 'done', progress: { total: 7, ok: 7, failed: 0, pending: 0 } });
    const provenance = JSON.parse((await h.getObject('layertap', 'stuck/no-creds/dataset.json'))!.toString());
    expect(provenance.counts).toMatchObject({ total: 7, ok: 7, failed: 0 });
    expect(provenance.runs.map((r: { run: number; samples: number }) => [r.run, r.samples])).toEqual([[0, 7], [1, 7]]);
  });

  it('submitting a failed dataset again resumes it instead of adding nothing', async () => {
    await failWithoutCredentials('resubmitted');
    const again = await h.layertap(submitArgs('resubmitted'));
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('resuming dataset resubmitted as run 1: 0 samples already stored, 7 to run in 2 chunks');
    await h.runWorker([], engine);
    expect(await statusOf('resubmitted')).toMatchObject({ state: 'done', progress: { total: 7, ok: 7, failed: 0 } });
  });

  it('cancel on a failed dataset records what never ran as cancelled and writes the manifest; retry then runs them', async () => {
    await failWithoutCredentials('given-up');
    const cancel = await h.layertap(['cancel', 'given-up']);
    expect(cancel.code).toBe(0);
    expect(cancel.stdout).toContain('recorded the 7 samples that never ran to the end as cancelled and wrote the manifest: 0 ok, 7 failed');
    const manifest = await h.manifest('layertap', 'stuck', 'given-up');
    expect(manifest.map((l) => l.id).sort()).toEqual(NAMES);
    expect(new Set(manifest.map((l) => l.error?.code))).toEqual(new Set(['cancelled']));
    // The chunk's own failure is kept in the message.
    expect(manifest[0]!.error!.message).toMatch(/^cancelled; chunk \d failed after its retries: .+/);
    const status = await statusOf('given-up');
    expect(status).toMatchObject({ state: 'done', progress: { total: 7, ok: 0, failed: 7, pending: 0, failures: { cancelled: 7 } } });
    expect(status.next).toContain('layertap retry given-up');
    // The sample index knows them too.
    const record = JSON.parse((await h.redis.hget(`${h.prefix}:ds:given-up:samples`, 'rocket'))!);
    expect(record).toMatchObject({ status: 'failed', code: 'cancelled' });

    const retry = await h.layertap(['retry', 'given-up', '--json']);
    expect(JSON.parse(retry.stdout)).toMatchObject({ run: 1, retried: 7 });
    await h.runWorker([], engine);
    expect((await h.manifest('layertap', 'stuck', 'given-up')).every((l) => l.status === 'ok')).toBe(true);
  });

  it('the manifest write fails at the end: status prints the reason, and retry writes it once the cause is gone', async () => {
    // A directory where manifest.jsonl goes makes its write fail for good, as a full disk (ENOSPC) would.
    const out = path.join(h.tmp, 'out');
    const blocker = path.join(out, 'blocked', 'manifest.jsonl');
    await mkdir(path.join(blocker, 'in-the-way'), { recursive: true });
    const output = pathToFileURL(out).href;
    expect((await h.layertap(submitArgs('blocked', SAMPLES, output), once)).code).toBe(0);
    await h.runWorker([], engine);
    const status = await statusOf('blocked');
    expect(status.state).toBe('failed');
    expect(status.progress).toMatchObject({ ok: 7, failed: 0 });
    expect(status.reason).toMatch(/writing the manifest failed: cannot write .*blocked\/manifest\.jsonl: it is a directory \(EISDIR\)/);
    const human = await h.layertap(['status', 'blocked']);
    expect(human.stdout).toMatch(/^stopped   writing the manifest failed: cannot write .*manifest\.jsonl: it is a directory \(EISDIR\)$/m);
    expect(human.stdout).toMatch(/^next      fix the cause above, then `layertap retry blocked` writes the manifest/m);

    await rm(blocker, { recursive: true });
    const retry = await h.layertap(['retry', 'blocked', '--json']);
    expect(retry.code).toBe(0);
    expect(JSON.parse(retry.stdout)).toMatchObject({ run: 1, retried: 0, chunks: 0, finalizeOnly: true });
    const log = await h.runWorker([], engine);
    expect(log).not.toMatch(/"chunk started"/);
    const manifest = (await readFile(path.join(out, 'blocked', 'manifest.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as ManifestLine);
    expect(manifest.map((l) => l.id).sort()).toEqual(NAMES);
    expect(manifest.every((l) => l.status === 'ok')).toBe(true);
    expect(await statusOf('blocked')).toMatchObject({ state: 'done', progress: { total: 7, ok: 7, failed: 0, pending: 0 } });
    const provenance = JSON.parse(await readFile(path.join(out, 'blocked', 'dataset.json'), 'utf8'));
    expect(provenance.runs.map((r: { run: number; samples: number }) => [r.run, r.samples])).toEqual([[0, 7], [1, 0]]);
    expect(provenance.counts).toMatchObject({ total: 7, ok: 7 });
  });

  it('counts and runs stay consistent when Redis lost a run and the dataset is submitted again', async () => {
    const first = path.join(h.tmp, 'first.txt');
    const all = path.join(h.tmp, 'all.txt');
    await writeFile(first, NAMES.slice(0, 3).map((n) => path.join(SAMPLES, `${n}.jpg`)).join('\n') + '\n');
    await writeFile(all, NAMES.map((n) => path.join(SAMPLES, `${n}.jpg`)).join('\n') + '\n');
    const submit = (source: string) => h.layertap(submitArgs('lost', source));
    expect((await submit(first)).code).toBe(0);
    await h.runWorker([], engine);
    // Redis loses everything layertap keeps about the dataset: runs, results and jobs.
    const keys = await h.redis.keys(`${h.prefix}:*lost*`);
    expect(keys.length).toBeGreaterThan(0);
    await h.redis.del(...keys);

    const resumed = await submit(all);
    expect(resumed.stdout).toContain('resuming dataset lost as run 1: 3 samples already stored, 4 to run in 1 chunks');
    // Before a worker runs it: the whole dataset, with the 3 stored samples ok.
    expect((await statusOf('lost')).progress).toMatchObject({ total: 7, ok: 3, failed: 0, pending: 4 });
    await h.runWorker([], engine);
    expect((await statusOf('lost')).progress).toMatchObject({ total: 7, ok: 7, failed: 0, pending: 0 });
    const provenance = JSON.parse((await h.getObject('layertap', 'stuck/lost/dataset.json'))!.toString());
    expect(provenance.counts).toMatchObject({ total: 7, ok: 7, failed: 0 });
    expect(provenance.runs.map((r: { run: number; samples: number }) => [r.run, r.samples])).toEqual([[0, 3], [1, 4]]);
  });
});
