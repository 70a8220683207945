import { randomBytes } from 'node:crypto';
import { RedisServer } from '@layertap/devservices';
import type { DatasetConfig, DatasetResult } from '@layertap/contracts';
import { datasetConfig } from '@layertap/contracts/testing';
import { LayertapQueues, connectRedis, type Redis } from '@layertap/queue';
import { watchDataset, waitForDataset } from './progress';

/** A stream that keeps what is written, optionally claiming to be a terminal. */
function sink(isTTY: boolean) {
  const chunks: string[] = [];
  return { isTTY, chunks, write: (text: string) => chunks.push(text) > 0, text: () => chunks.join('') } as unknown as NodeJS.WritableStream & {
    isTTY: boolean;
    chunks: string[];
    text(): string;
  };
}

describe('waitForDataset (real redis-server)', () => {
  let server: RedisServer;
  let redis: Redis;
  let prefix: string;
  let queues: LayertapQueues;

  const config = (datasetId: string): DatasetConfig =>
    datasetConfig(datasetId, { layers: [{ spec: 'fc2', canonical: 'fc2', shape: [4096] }], totalSamples: 4, submittedAt: '2025-01-01T00:00:00.000Z' });
  const samples = (n: number) => Array.from({ length: n }, (_, i) => ({ id: `s${i}`, uri: `s3://bucket/s${i}.jpg` }));
  const result = (datasetId: string, ok: number, failed: number): DatasetResult => ({
    datasetId,
    ok,
    failed,
    failures: failed ? { timeout: failed } : {},
    manifestKey: `${datasetId}/manifest.jsonl`,
  });

  beforeAll(async () => {
    server = new RedisServer();
    await server.start();
    redis = await connectRedis(server.url);
  });
  afterAll(async () => {
    await redis?.quit();
    await server?.close();
  });
  beforeEach(() => {
    prefix = `lt-test-wait-${randomBytes(4).toString('hex')}`;
    queues = new LayertapQueues({ connection: redis, prefix });
  });
  afterEach(async () => {
    await queues.close();
    const keys = await redis.keys(`${prefix}:*`);
    if (keys.length) await redis.del(...keys);
  });

  it('reports progress lines while running and returns the final status once done', async () => {
    await queues.submit(config('w1'), samples(4));
    const lines: string[] = [];
    let reported = 0;
    const waiting = waitForDataset(queues, 'w1', {
      intervalMs: 10,
      onProgress: (_status, line) => {
        lines.push(line);
        reported++;
      },
    });
    while (reported < 2) await new Promise((r) => setTimeout(r, 5));
    await queues.store.setChunkProgress('w1', { run: 0, chunk: 0, ok: 2, failed: 0, failures: {}, final: true });
    const seen = reported;
    while (reported < seen + 2) await new Promise((r) => setTimeout(r, 5));
    // The finalizer wrote the manifest; the completed jobs have since been removed from Redis.
    await queues.store.setResult('w1', 0, result('w1', 3, 1));
    await (await queues.datasetJob('w1'))!.remove();

    const final = await waiting;
    expect(final.state).toBe('done');
    expect(final.progress).toMatchObject({ total: 4, ok: 3, failed: 1, pending: 0, finished: true });
    // No worker is connected in this test (it reports progress itself): the line says so.
    expect(lines[0]).toMatch(/^\[-+\] 0\/4 done, 0 failed, 0\.0 img\/s, ETA -- \(running\): no worker connected: start `layertap-worker`/);
    expect(lines).toContainEqual(expect.stringMatching(/^\[#{15}-{15}\] 2\/4 done, 0 failed, [\d.]+ img\/s, ETA .+ \(running\)(: no worker connected: .*)?$/));
    expect(lines.at(-1)).toMatch(/ 4\/4 done, 1 failed, .*\(done\)$/);
  });

  it('keeps polling through errors and reports them', async () => {
    // A run record that does not parse: every poll fails until it is fixed.
    await redis.hset(`${prefix}:ds:w2:runs`, '0', '{"not":"a config"}');
    const errors: Error[] = [];
    const waiting = waitForDataset(queues, 'w2', { intervalMs: 10, onError: (err) => errors.push(err) });
    while (errors.length < 2) await new Promise((r) => setTimeout(r, 5));
    await queues.store.saveRun(config('w2'));
    await queues.store.setResult('w2', 0, result('w2', 4, 0));
    const final = await waiting;
    expect(final.state).toBe('done');
    expect(final.progress).toMatchObject({ ok: 4, failed: 0, finished: true });
    expect(errors[0]?.name).toBe('ZodError');
  });

  /** Runs `watchDataset` while chunk 0 reports and the run then finishes; returns what it wrote. */
  async function watchWhileRunning(id: string, options: { json?: boolean; tty: boolean }) {
    await queues.submit(config(id), samples(4));
    const out = sink(options.tty);
    const watching = watchDataset(queues, id, { intervalMs: 10, out, ...(options.json ? { json: true } : {}) });
    await new Promise((r) => setTimeout(r, 60));
    await queues.store.setChunkProgress(id, { run: 0, chunk: 0, ok: 1, failed: 1, failures: { timeout: 1 }, final: true });
    await new Promise((r) => setTimeout(r, 60));
    await queues.store.setResult(id, 0, result(id, 3, 1));
    await (await queues.datasetJob(id))!.remove();
    const final = await watching;
    return { final, out };
  }

  it('--watch on a terminal redraws the whole view in place until the run is done', async () => {
    const { final, out } = await watchWhileRunning('w3', { tty: true });
    expect(final.state).toBe('done');
    const frames = out.chunks;
    expect(frames.length).toBeGreaterThan(3);
    for (const frame of frames) {
      expect(frame.startsWith('\x1b[H\x1b[2Jlayertap status w3   ')).toBe(true);
      expect(frame).toContain('dataset   w3 (run 0, ');
    }
    expect(frames[0]).toContain('samples   4 total: 0 ok, 0 failed, 4 pending');
    expect(frames.some((f) => f.includes('samples   4 total: 1 ok, 1 failed, 2 pending'))).toBe(true);
    expect(frames.at(-1)).toContain('samples   4 total: 3 ok, 1 failed, 0 pending');
    expect(frames.at(-1)).toMatch(/4\/4 done, 1 failed, .* \(done\)\n$/);
  });

  it('--watch into a pipe writes a progress line per change, then the final status', async () => {
    const { out } = await watchWhileRunning('w4', { tty: false });
    expect(out.text()).not.toContain('\x1b');
    const [progress, summary = ''] = out.text().split(/\n(?=dataset {3})/);
    const lines = progress!.split('\n');
    expect(lines[0]).toMatch(/^\[-+\] 0\/4 done, 0 failed, .*\(running\)(: no worker connected: .*)?$/);
    expect(lines).toContainEqual(expect.stringMatching(/^\[#+-+\] 2\/4 done, 1 failed, .*\(running\)(: no worker connected: .*)?$/));
    expect(lines.at(-1)).toMatch(/ 4\/4 done, 1 failed, .*\(done\)$/);
    // A line only when something changed (the poll ran far more often than that).
    expect(new Set(lines).size).toBe(lines.length);
    expect(summary.split('\n')[0]).toBe('dataset   w4 (run 0, done)');
    expect(summary).toContain('samples   4 total: 3 ok, 1 failed, 0 pending');
  });

  it('--watch --json writes one status object per change', async () => {
    const { out } = await watchWhileRunning('w5', { tty: true, json: true });
    const objects = out.text().trim().split('\n').map((l) => JSON.parse(l) as { state: string; progress: { ok: number; failed: number } });
    const seen = objects.map((o) => `${o.state} ${o.progress.ok} ${o.progress.failed}`);
    expect(seen[0]).toBe('running 0 0');
    expect(seen).toContain('running 1 1');
    expect(seen.at(-1)).toBe('done 3 1');
    // One object per change, not per poll.
    expect(seen.length).toBeLessThan(6);
  });
});
