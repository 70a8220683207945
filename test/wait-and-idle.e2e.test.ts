import { copyFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { BIN, Harness, SAMPLES } from './support/harness';

/**
 * Waiting ends, and says why it waits: `--exit-when-idle` gives a dataset submitted after the worker started
 * a grace period, `submit --wait` and `status --watch` say when no worker is connected, and their exit codes
 * tell a script whether samples failed. Real processes; ONNX Runtime on the CPU at 32 px.
 */
describe('waiting for workers and for datasets', () => {
  const h = new Harness('waiting');
  const engine = { LAYERTAP_ENGINE: 'onnx', LAYERTAP_BACKEND: 'cpu', LAYERTAP_THREADS: '1' };
  let withBroken: string;

  beforeAll(async () => {
    await h.start();
    for (const name of ['chelsea.jpg', 'camera.jpg']) await copyFile(path.join(SAMPLES, name), path.join(h.tmp, name));
    await writeFile(path.join(h.tmp, 'broken.jpg'), 'this is not a JPEG');
    withBroken = path.join(h.tmp, 'with-broken.txt');
    await writeFile(withBroken, 'chelsea.jpg\ncamera.jpg\nbroken.jpg\n');
  }, 60_000);
  afterAll(() => h.close());

  const submitArgs = (id: string, source = SAMPLES) => [
    'submit', source, '--weights', 'random', '--layer', 'block1_pool', '--output', 's3://layertap/waiting', '--image-size', '32', '--chunk-size', '4', '--dataset-id', id,
  ];

  it('--exit-when-idle=<seconds>: a worker started before the dataset waits for it, runs it, and exits after the grace period', async () => {
    const worker = h.spawn(BIN.worker, ['--exit-when-idle=6'], engine);
    let exitedAt: number | undefined;
    void worker.exited.then(() => (exitedAt = Date.now()));
    await h.waitForOutput(worker.output, /"worker started"/, 60_000);
    // Well past the old one-second check: the queues are empty, and the worker is still there.
    await new Promise((r) => setTimeout(r, 3_000));
    expect(exitedAt).toBeUndefined();

    const submitted = await h.layertap([...submitArgs('late'), '--wait']);
    const doneAt = Date.now();
    expect(submitted.code).toBe(0);
    expect(submitted.stdout).toContain('dataset   late (run 0, done)');
    expect(await worker.exited).toBe(0);
    expect(worker.output()).toMatch(/"chunk done"/);
    expect(worker.output()).toMatch(/"no work in the queues: exiting \(--exit-when-idle\)"/);
    // It waited the grace period after the work was done, by its own log's clock (submit --wait polls, so when it
    // returns says little about when the work ended): the exit line comes >= 6 s after the last chunk's.
    const lines = worker.output().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { time: string; msg: string; idleSeconds?: number });
    const lastChunk = lines.filter((l) => l.msg === 'chunk done').at(-1)!;
    const exiting = lines.find((l) => l.msg === 'no work in the queues: exiting (--exit-when-idle)')!;
    expect(exiting.idleSeconds).toBeGreaterThanOrEqual(6);
    expect(Date.parse(exiting.time) - Date.parse(lastChunk.time)).toBeGreaterThanOrEqual(6_000);
    expect(exitedAt).toBeGreaterThanOrEqual(doneAt);
  });

  it('--exit-when-idle with nothing to do exits after the grace period, not at once', async () => {
    const started = Date.now();
    const worker = h.spawn(BIN.worker, ['--exit-when-idle', '2'], engine);
    expect(await worker.exited).toBe(0);
    expect(Date.now() - started).toBeGreaterThanOrEqual(2_000);
    expect(worker.output()).toMatch(/"graceSeconds":2,.*"exits after this long with no work/);
  });

  it('submit --wait says that no worker is connected, then finishes once one is; exit 0 when every sample is ok', async () => {
    const cli = h.spawn(BIN.layertap, [...submitArgs('no-worker-yet'), '--wait']);
    await h.waitForOutput(cli.output, /\(running\): no worker connected: start `layertap-worker` with the same REDIS_URL and LAYERTAP_QUEUE_PREFIX/, 30_000);
    const status = await h.layertap(['status', 'no-worker-yet']);
    expect(status.stdout).toMatch(/^workers   none connected$/m);
    expect(status.stdout).toMatch(/^next      no worker is connected: start `layertap-worker`/m);
    const watch = h.spawn(BIN.layertap, ['status', 'no-worker-yet', '--watch']);
    await h.waitForOutput(watch.output, /\(running\): no worker connected/, 30_000);

    const worker = h.spawn(BIN.worker, ['--exit-when-idle=1'], engine);
    expect(await cli.exited).toBe(0);
    expect(await watch.exited).toBe(0);
    expect(cli.output()).toContain('dataset   no-worker-yet (run 0, done)');
    expect(await worker.exited).toBe(0);
  });

  it('--wait and status --watch exit 3 when samples failed, so that scripts can tell', async () => {
    const worker = h.spawn(BIN.worker, ['--exit-when-idle=3'], engine);
    const waited = await h.layertap([...submitArgs('some-failed', withBroken), '--wait']);
    expect(waited.code).toBe(3);
    expect(waited.stdout).toMatch(/samples\s+3 total: 2 ok, 1 failed, 0 pending/);
    // A broken file fails again on every retry: the next step says to fix it first.
    expect(waited.stdout).toMatch(/^next      the 1 failed samples are broken or missing files \(\w+ 1\): a retry alone fails them again/m);
    const watched = await h.layertap(['status', 'some-failed', '--watch']);
    expect(watched.code).toBe(3);
    const plain = await h.layertap(['status', 'some-failed']);
    expect(plain.code).toBe(0);
    expect(await worker.exited).toBe(0);
  });
});
