/**
 * layertap on a real three-node Redis Cluster: the CLI submits and reports, a worker runs the dataset end to
 * end, with every key under the `{hash tag}` prefix (one slot); a prefix without a hash tag is refused.
 */
import { copyFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Cluster } from 'ioredis';
import { DatasetStore } from '@layertap/queue';
import { BIN, Harness, SAMPLES } from './support/harness';
import { TestRedisCluster } from './support/redis-cluster';

describe('Redis Cluster', () => {
  const h = new Harness('cluster');
  const cluster = new TestRedisCluster(3);
  const prefix = '{lt-cluster}';
  let env: Record<string, string>;
  let list: string;

  beforeAll(async () => {
    await Promise.all([h.start(), cluster.start()]);
    env = { REDIS_URL: cluster.url, LAYERTAP_QUEUE_PREFIX: prefix };
    for (const name of ['chelsea.jpg', 'camera.jpg', 'rocket.jpg', 'coffee.jpg']) await copyFile(path.join(SAMPLES, name), path.join(h.tmp, name));
    await writeFile(path.join(h.tmp, 'broken.jpg'), 'not an image');
    list = path.join(h.tmp, 'images.txt');
    await writeFile(list, ['chelsea.jpg', 'camera.jpg', 'broken.jpg', 'rocket.jpg', 'coffee.jpg'].join('\n'));
  }, 120_000);
  afterAll(async () => {
    await h.close();
    await cluster.close();
  });

  it('is a cluster of three masters sharing the 16384 slots', async () => {
    const masters = (await cluster.clusterNodes()).filter((l) => l.includes('master'));
    expect(masters).toHaveLength(3);
    for (const line of masters) expect(line).toMatch(/ \d+-\d+$/);
  });

  it('refuses a prefix without a hash tag, in the CLI and the worker, saying what to set', async () => {
    const status = await h.layertap(['status', 'anything'], { ...env, LAYERTAP_QUEUE_PREFIX: 'layertap' });
    expect(status.code).toBe(2);
    expect(status.stderr).toBe(
      'layertap: error [invalid_request]: invalid environment: LAYERTAP_QUEUE_PREFIX "layertap" has no hash tag, which Redis Cluster needs ' +
        "(BullMQ keeps each queue's keys in one slot): use one such as {layertap}\n",
    );
    const worker = h.spawn(BIN.worker, ['--exit-when-idle'], { ...env, LAYERTAP_QUEUE_PREFIX: 'layertap' });
    expect(await worker.exited).toBe(2); // a bad configuration: ExitCode.BadRequest
    // The worker's log is JSON, its fatal start line too: one line, level fatal, the reason in msg.
    const fatal = worker.output().trim().split('\n').map((line) => JSON.parse(line) as { level: number; msg: string; code?: string });
    expect(fatal).toHaveLength(1);
    expect(fatal[0]).toMatchObject({ level: 60, code: 'invalid_request' });
    expect(fatal[0]!.msg).toContain('LAYERTAP_QUEUE_PREFIX "layertap" has no hash tag, which Redis Cluster needs');
  });

  it('submits, runs a worker and reports a dataset end to end, every key in the prefix slot', async () => {
    const submitted = await h.layertap(
      ['submit', list, '--weights', 'random', '--layer', 'features.9', '--output', 's3://layertap/cluster', '--image-size', '32', '--batch-size', '2', '--chunk-size', '2', '--dataset-id', 'on-cluster', '--json'],
      env,
    );
    expect(submitted.stderr).toBe('');
    expect(submitted.code).toBe(0);
    expect(JSON.parse(submitted.stdout)).toMatchObject({ datasetId: 'on-cluster', samples: 5, chunks: 3, existing: false });

    const log = await h.runWorker(['--concurrency', '2'], { ...env, LAYERTAP_METRICS_PORT: '0' });
    expect(log).toContain(`"prefix":"${prefix}"`);
    expect(log).toContain('"redis":"redis-cluster://127.0.0.1:');
    expect(log.match(/"chunk done"/g)).toHaveLength(3);
    expect(log).toContain('"dataset finished"');

    const manifest = await h.manifest('layertap', 'cluster', 'on-cluster');
    expect(manifest.map((l) => [l.id, l.status])).toEqual([
      ['chelsea', 'ok'],
      ['camera', 'ok'],
      ['broken', 'failed'],
      ['rocket', 'ok'],
      ['coffee', 'ok'],
    ]);
    expect((await h.npy('layertap', 'cluster/on-cluster/features.9/rocket.npy')).shape).toEqual([128, 8, 8]);

    // REDIS_CLUSTER_NODES is the other way to name the cluster.
    const status = await h.layertap(['status', 'on-cluster', '--json'], { REDIS_URL: '', REDIS_CLUSTER_NODES: cluster.nodes, LAYERTAP_QUEUE_PREFIX: prefix });
    expect(status.code).toBe(0);
    expect(JSON.parse(status.stdout)).toMatchObject({ state: 'done', progress: { total: 5, ok: 4, failed: 1, failures: { decode_failed: 1 } } });

    // Every layertap key (BullMQ's and the dataset store's) is on the one node that owns the tag's slot.
    const perNode = await Promise.all(cluster.ports.map((p) => cluster.keysOn(p, '*')));
    const holding = perNode.filter((keys) => keys.length > 0);
    expect(holding).toHaveLength(1);
    expect(holding[0]!.every((k) => k.startsWith(`${prefix}:`))).toBe(true);
    expect(holding[0]).toEqual(expect.arrayContaining([`${prefix}:datasets`, `${prefix}:ds:on-cluster:samples`, `${prefix}:chunks:meta`]));

    // The sample index answers through a cluster client.
    const client = new Cluster(cluster.ports.map((port) => ({ host: '127.0.0.1', port })));
    try {
      const store = new DatasetStore(client, prefix);
      expect(await store.findSample('on-cluster', 'broken')).toMatchObject({ status: 'failed', code: 'decode_failed', chunk: 1 });
      expect((await store.findSampleAnywhere('rocket')).map((f) => [f.datasetId, f.status])).toEqual([['on-cluster', 'ok']]);
      expect((await store.throughput('on-cluster')).length).toBe(3);
    } finally {
      client.disconnect();
    }
  });
});
