import { RedisServer } from '@layertap/devservices';
import { createRedis } from './connection';
import { LayertapQueues } from './queues';
import { createQueueMetrics, queueDepths, type GaugeLike } from './queue-metrics';
import { deletePrefix, datasetConfig, samples, startRedis, stopRedis, uniquePrefix } from './testing';

/** Stands in for prom-client's Gauge: keeps the config and the values set (prom-client is tested in the worker). */
class RecordingGauge implements GaugeLike {
  static made: RecordingGauge[] = [];
  readonly values = new Map<string, number>();
  constructor(readonly config: { name: string; help: string; labelNames?: readonly string[]; registers?: object[]; collect?: () => void | Promise<void> }) {
    RecordingGauge.made.push(this);
  }
  set(labelsOrValue: Record<string, string> | number, value?: number): void {
    if (typeof labelsOrValue === 'number') this.values.set('', labelsOrValue);
    else this.values.set(JSON.stringify(labelsOrValue), value ?? NaN);
  }
  reset(): void {
    this.values.clear();
  }
  async scrape(): Promise<Map<string, number>> {
    await this.config.collect?.();
    return this.values;
  }
}

describe('queue metrics (real redis-server)', () => {
  let env: Awaited<ReturnType<typeof startRedis>> | undefined;
  let prefix: string;
  let queues: LayertapQueues;

  beforeAll(async () => {
    env = await startRedis();
  });
  afterAll(async () => {
    await stopRedis(env);
  });
  beforeEach(() => {
    prefix = uniquePrefix('metrics');
    queues = new LayertapQueues({ connection: env!.redis, prefix });
    RecordingGauge.made = [];
  });
  afterEach(async () => {
    await queues.datasets.obliterate({ force: true });
    await queues.chunks.obliterate({ force: true });
    await queues.close();
    await deletePrefix(env!.redis, prefix);
  });

  it('counts jobs per state in both queues and the runs in progress', async () => {
    await queues.submit(datasetConfig('a', { chunkSize: 2, totalSamples: 5 }), samples(5));
    await queues.submit(datasetConfig('b', { chunkSize: 4, totalSamples: 4 }), samples(4));
    const depths = await queueDepths(queues);
    expect(depths.queues.chunks).toMatchObject({ waiting: 4, active: 0, completed: 0, failed: 0 });
    expect(depths.queues.datasets).toMatchObject({ 'waiting-children': 2, waiting: 0 });
    expect(depths.datasetsInProgress).toBe(2);
  });

  it('registers gauges that read Redis at scrape time, and says when it cannot', async () => {
    const registry = {};
    createQueueMetrics(queues, { registry, Gauge: RecordingGauge });
    const [jobs, inProgress, up] = RecordingGauge.made;
    expect(RecordingGauge.made.map((g) => g.config.name)).toEqual(['layertap_queue_jobs', 'layertap_datasets_in_progress', 'layertap_queue_metrics_up']);
    expect(jobs!.config.registers).toEqual([registry]);
    expect(jobs!.config.labelNames).toEqual(['queue', 'state']);

    expect((await jobs!.scrape()).get(JSON.stringify({ queue: 'chunks', state: 'waiting' }))).toBe(0);
    await queues.submit(datasetConfig('a', { chunkSize: 1, totalSamples: 3 }), samples(3));
    await new Promise((r) => setTimeout(r, 300)); // past the per-scrape cache
    expect((await jobs!.scrape()).get(JSON.stringify({ queue: 'chunks', state: 'waiting' }))).toBe(3);
    expect((await jobs!.scrape()).get(JSON.stringify({ queue: 'datasets', state: 'waiting-children' }))).toBe(1);
    expect((await inProgress!.scrape()).get('')).toBe(1);
    expect((await up!.scrape()).get('')).toBe(1);

    // Redis hangs (SIGSTOP): the scrape gives up after the timeout, with no stale values and up = 0.
    const frozen = new RedisServer();
    await frozen.start();
    const client = createRedis(frozen.url, { mode: 'blocking' });
    const stuck = new LayertapQueues({ connection: client, prefix });
    await stuck.chunks.getJobCounts('waiting');
    frozen.pause();
    try {
      RecordingGauge.made = [];
      createQueueMetrics(stuck, { registry, Gauge: RecordingGauge, prefix: 'x_', timeoutMs: 300 });
      const [jobs2, , up2] = RecordingGauge.made;
      expect(jobs2!.config.name).toBe('x_queue_jobs');
      const started = Date.now();
      expect((await jobs2!.scrape()).size).toBe(0);
      expect(Date.now() - started).toBeLessThan(2_000);
      expect((await up2!.scrape()).get('')).toBe(0);
    } finally {
      frozen.resume();
      await stuck.close();
      await client.quit();
      await frozen.close();
    }
  });
});
