/**
 * Scale out: three worker processes with different --concurrency share one dataset. Each takes part, and no
 * chunk or sample is processed twice.
 */
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { availableParallelism } from 'node:os';
import { rm, writeFile } from 'node:fs/promises';
import { Redis } from 'ioredis';
import { ChunkResult } from '@layertap/contracts';
import { LayertapQueues } from '@layertap/queue';
import { BIN, Harness, SAMPLES } from './support/harness';
import { makeVariants } from './support/images';

type LogLine = { msg?: string; chunk?: number; pid?: number; concurrency?: number; datasetId?: string; threads?: number; device?: string };

describe('three workers on one dataset', () => {
  const h = new Harness('multi');
  let redis: Redis;
  let queues: LayertapQueues;

  beforeAll(async () => {
    await h.start();
    redis = new Redis(h.services.redisUrl);
    queues = new LayertapQueues({ connection: redis, prefix: h.prefix });
  }, 60_000);
  afterAll(async () => {
    await queues?.close();
    redis?.disconnect();
    await h.close();
  });

  it('spreads 15 chunks over workers with concurrency 1, 2 and 3, each chunk and sample done once', async () => {
    const files = await makeVariants([path.join(SAMPLES, 'chelsea.jpg'), path.join(SAMPLES, 'rocket.jpg')], path.join(h.tmp, 'imgs'), 30, 48, 40);
    const list = path.join(h.tmp, 'list.txt');
    await writeFile(list, files.join('\n'));

    // The workers are up and waiting before the dataset arrives, so none of them gets a head start.
    const workers = [1, 2, 3].map((n) => h.spawn(BIN.worker, ['--concurrency', String(n)], { LAYERTAP_METRICS_PORT: '0' }));
    for (const w of workers) await h.waitForOutput(w.output, /"worker started"/, 60_000);

    const submitted = await h.layertap(['submit', list, '--weights', 'random', '--layer', 'block1_pool', '--output', 's3://layertap/multi', '--image-size', '32', '--batch-size', '2', '--chunk-size', '2', '--dataset-id', 'shared', '--wait', '--json']);
    expect(submitted.code).toBe(0);
    expect(JSON.parse(submitted.stdout)).toMatchObject({ state: 'done', progress: { total: 30, ok: 30, failed: 0 } });

    for (const w of workers) w.child.kill('SIGTERM');
    expect(await Promise.all(workers.map((w) => w.exited))).toEqual([0, 0, 0]);

    const logs = workers.map((w) =>
      w
        .output()
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as LogLine),
    );
    const pids = logs.map((lines) => lines.find((l) => l.msg === 'worker started')!.pid!);
    expect(logs.map((lines) => lines.find((l) => l.msg === 'worker started')!.concurrency)).toEqual([1, 2, 3]);

    // Count "chunk started" and "chunk done" per chunk across every worker's log: exactly once each.
    const started = new Map<number, number>();
    const done = new Map<number, number[]>();
    logs.forEach((lines, w) => {
      for (const l of lines.filter((x) => x.datasetId === 'shared')) {
        if (l.msg === 'chunk started') started.set(l.chunk!, (started.get(l.chunk!) ?? 0) + 1);
        if (l.msg === 'chunk done') done.set(l.chunk!, [...(done.get(l.chunk!) ?? []), w]);
      }
    });
    const chunks = Array.from({ length: 15 }, (_, i) => i);
    expect(chunks.map((c) => started.get(c))).toEqual(chunks.map(() => 1));
    expect(chunks.map((c) => done.get(c)?.length)).toEqual(chunks.map(() => 1));

    // Every worker did some of the work; the chunk results name the process that ran them.
    const perWorker = [0, 1, 2].map((w) => chunks.filter((c) => done.get(c)![0] === w).length);
    expect(perWorker.every((n) => n >= 1)).toBe(true);
    const results = (await queues.chunks.getJobs(['completed'])).map((j) => ChunkResult.parse(j.returnvalue));
    expect(results).toHaveLength(15);
    for (const r of results) {
      const w = done.get(r.chunk)![0]!;
      expect(r.worker).toEqual({ hostname: expect.any(String), pid: pids[w] });
    }
    expect(results.reduce((n, r) => n + r.ok, 0)).toBe(30);

    // The manifest: one line per sample, all ok, each sample's array stored once.
    const manifest = await h.manifest('layertap', 'multi', 'shared');
    expect(manifest).toHaveLength(30);
    expect(new Set(manifest.map((l) => l.id)).size).toBe(30);
    expect(manifest.every((l) => l.status === 'ok')).toBe(true);
    const arrays = (await h.listKeys('layertap', 'multi/shared/block1_pool/')).length;
    expect(arrays).toBe(30);
    process.stdout.write(`chunks per worker (concurrency 1, 2, 3): ${perWorker.join(', ')}\n`);
  });

  it('shares the cores between the workers on the host, counted again at each chunk', async () => {
    const cores = availableParallelism();
    const share = (workers: number) => Math.max(1, Math.floor(cores / workers));
    /** How the device description says N threads: "AMD EPYC (1 thread)", "(2 threads)". */
    const threadsSaid = (n: number) => expect.stringMatching(new RegExp(`\\(${n} threads?\\)$`));
    const worker = h.spawn(BIN.worker, ['--engine', 'onnx', '--backend', 'cpu']);
    const lines = () => worker.output().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as LogLine);
    await h.waitForOutput(worker.output, /"worker started"/, 60_000);
    // Alone in this test's LAYERTAP_WORKERS_DIR (the harness gives each test its own).
    expect(lines().find((l) => l.msg === 'worker started')?.threads).toBe(share(1));

    // Another worker registers (a running process's pid file, here this test's): the next chunk gets half.
    const other = path.join(h.tmp, 'workers', `${process.pid}.pid`);
    await writeFile(other, `${process.pid}\n`);
    // A dead process's pid file is ignored (and removed).
    await writeFile(path.join(h.tmp, 'workers', '999999999.pid'), '999999999\n');
    const one = path.join(h.tmp, 'one.txt');
    await writeFile(one, `${path.join(SAMPLES, 'chelsea.jpg')}\n`);
    const submit = async (id: string) => {
      const r = await h.layertap(['submit', one, '--weights', 'random', '--layer', 'block1_pool', '--output', 's3://layertap/multi', '--image-size', '32', '--dataset-id', id, '--wait']);
      expect(r.code).toBe(0);
      return lines().filter((l) => l.datasetId === id && l.msg === 'model loaded').map((l) => l.device);
    };
    expect(await submit('two-here')).toEqual([threadsSaid(share(2))]);
    // It has gone: the next chunk loads the model again with every core.
    await rm(other);
    expect(await submit('alone-again')).toEqual([threadsSaid(share(1))]);

    worker.child.kill('SIGTERM');
    expect(await worker.exited).toBe(0);
    // Its own pid file went with it; the dead one's too.
    expect(existsSync(path.join(h.tmp, 'workers'))).toBe(true);
    expect(readdirSync(path.join(h.tmp, 'workers'))).toEqual([]);
  });
});
