import { Harness, SAMPLES } from './support/harness';

/**
 * Redis does not keep datasets for ever: `layertap forget` removes a finished dataset's state, sample index
 * and jobs (never its outputs, never while it runs), and `--retention` lets Redis drop a finished dataset by
 * itself. Real redis-server, s3rver and workers (null engine).
 */
describe('forget and retention', () => {
  const h = new Harness('forget');
  const engine = { LAYERTAP_ENGINE: 'null' };

  beforeAll(async () => {
    await h.start();
  }, 60_000);
  afterAll(async () => {
    await h.close();
  });

  const submitArgs = (id: string, extra: string[] = []) => [
    'submit', SAMPLES, '--weights', 'random', '--layer', 'block1_pool', '--output', 's3://layertap/forget', '--image-size', '32', '--chunk-size', '4', '--dataset-id', id, ...extra,
  ];
  /** Every Redis key that names the dataset: layertap's state and index, and BullMQ's jobs. */
  const keysOf = (id: string) => h.redis.keys(`${h.prefix}:*${id}*`);

  it('forget is refused while the dataset runs, then removes its Redis state and jobs and leaves the outputs', async () => {
    expect((await h.layertap(submitArgs('kept'))).code).toBe(0);
    const refused = await h.layertap(['forget', 'kept']);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toBe('layertap: error [invalid_request]: dataset kept is still running: forget it once it has finished (`layertap cancel kept` stops it)\n');

    await h.runWorker([], engine);
    expect(await h.redis.hlen(`${h.prefix}:ds:kept:samples`)).toBe(7);
    const outputs = await h.listKeys('layertap', 'forget/kept/');
    const forgot = await h.layertap(['forget', 'kept', '--json']);
    expect(forgot.code).toBe(0);
    expect(JSON.parse(forgot.stdout)).toMatchObject({ datasetId: 'kept', runs: 1 });
    expect(JSON.parse(forgot.stdout).jobs).toBeGreaterThanOrEqual(1);
    expect(await keysOf('kept')).toEqual([]);
    expect(await h.redis.zscore(`${h.prefix}:datasets`, 'kept')).toBeNull();
    expect(await h.listKeys('layertap', 'forget/kept/')).toEqual(outputs);

    const status = await h.layertap(['status', 'kept']);
    expect(status.code).toBe(2);
    expect(status.stderr).toContain('no dataset "kept" in Redis');
    // The outputs are still there: submitting it again finds everything stored.
    const again = await h.layertap(submitArgs('kept'));
    expect(again.stdout).toContain('resuming dataset kept as run 1: 7 samples already stored, 0 to run in 0 chunks');
  });

  it('--retention: Redis drops a finished dataset by itself, and keeps a running one', async () => {
    expect((await h.layertap(submitArgs('short-lived', ['--retention', '3s']))).code).toBe(0);
    // Running (no worker yet): no expiry on anything.
    expect(await h.redis.ttl(`${h.prefix}:ds:short-lived:runs`)).toBe(-1);
    await h.runWorker([], engine);
    const ttl = await h.redis.ttl(`${h.prefix}:ds:short-lived:samples`);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(3);
    expect((await h.layertap(['status', 'short-lived', '--json'])).code).toBe(0);

    const until = Date.now() + 15_000;
    while ((await h.redis.exists(`${h.prefix}:ds:short-lived:runs`)) && Date.now() < until) await new Promise((r) => setTimeout(r, 250));
    expect(await h.redis.keys(`${h.prefix}:ds:short-lived:*`)).toEqual([]);
    expect((await h.layertap(['status', 'short-lived'])).code).toBe(2);
    expect(await h.manifest('layertap', 'forget', 'short-lived')).toHaveLength(7);
  });

  it('a bad --retention is refused with exit 2 and what is allowed', async () => {
    const res = await h.layertap(submitArgs('bad-retention', ['--retention', '0d']));
    expect(res.code).toBe(2);
    expect(res.stderr).toBe('layertap: error: --retention "0d": expected a duration such as 90s, 12h or 30d, or forever\n');
  });
});
