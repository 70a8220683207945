#!/usr/bin/env node
/**
 * Measures what layertap costs Redis: memory per million queued samples, the same after the chunks are done
 * (BullMQ keeps completed chunk jobs for 24 h), and the AOF on disk. Starts its own redis-server (AOF on,
 * noeviction, as in infra/k8s/redis.yaml), enqueues ImageNet-like datasets through the real
 * `LayertapQueues.submit`, and reads `INFO memory` before and after.
 *
 *   pnpm build && node infra/k8s/measure-redis-memory.js [--samples 100000,200000] [--chunk-sizes 64,256] [--json]
 *
 * Plain Node on the built workspace packages (resolved through the e2e test package, which depends on them).
 */
'use strict';
const { createRequire } = require('node:module');
const { mkdtemp, readdir, rm, stat } = require('node:fs/promises');
const { tmpdir } = require('node:os');
const path = require('node:path');
const { parseArgs } = require('node:util');
const { setTimeout: sleep } = require('node:timers/promises');

const requireFromTests = createRequire(path.join(__dirname, '..', '..', 'test', 'package.json'));
const { RedisServer } = requireFromTests('@layertap/devservices');
const { LayertapQueues, createRedis } = requireFromTests('@layertap/queue');
const { assignSampleIds } = requireFromTests('@layertap/contracts');
const { Worker } = requireFromTests('bullmq');

const PREFIX = 'layertap';
const MiB = 1024 * 1024;

/**
 * ImageNet train layout as `layertap submit s3://bucket/imagenet/train/` would list it: 1,300 images per
 * synset folder, ids derived from the path relative to the prefix (`n01440764__n01440764_10026`).
 */
function imagenetSamples(count, salt) {
  const names = [];
  for (let i = 0; i < count; i++) {
    const synset = `n${String(1440764 + ((Math.floor(i / 1300) + salt * 1000) * 7919) % 98000000).padStart(8, '0')}`;
    names.push(`${synset}/${synset}_${10026 + (i % 1300) * 7}.JPEG`);
  }
  const ids = assignSampleIds(names.map((n) => n.split('/').join('__')));
  return names.map((name, i) => ({ id: ids[i], uri: `s3://bucket/imagenet/train/${name}` }));
}

function datasetConfig(datasetId, chunkSize, totalSamples) {
  return {
    datasetId,
    output: 's3://bucket/activations',
    layers: [{ spec: 'block5_pool', canonical: 'block5_pool' }],
    weights: 's3://bucket/weights/vgg16-torchvision.safetensors',
    seed: 0,
    preprocess: 'torchvision',
    imageSize: 224,
    batchSize: 16,
    chunkSize,
    dtype: 'float32',
    layout: 'chw',
    pool: 'none',
    totalSamples,
    submittedAt: new Date().toISOString(),
    run: 0,
  };
}

async function usedMemory(redis) {
  const info = await redis.info('memory');
  return Number(/^used_memory:(\d+)/m.exec(info)[1]);
}

/** Bytes held per key group (exact: `MEMORY USAGE ... SAMPLES 0`). */
async function memoryByGroup(redis) {
  const groups = {};
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'COUNT', 1000);
    cursor = next;
    for (const key of keys) {
      const bytes = Number(await redis.memory('USAGE', key, 'SAMPLES', 0));
      const group = keyGroup(key);
      groups[group] = (groups[group] ?? 0) + bytes;
    }
  } while (cursor !== '0');
  return groups;
}

function keyGroup(key) {
  const rest = key.slice(PREFIX.length + 1);
  if (rest.startsWith('ds:') || rest === 'datasets') return 'dataset store (ds:*)';
  const [queue, part, sub] = rest.split(':');
  if (sub !== undefined) return `${queue}: job ${sub} (dependencies/processed)`;
  if (['wait', 'active', 'completed', 'failed', 'delayed', 'events', 'meta', 'id', 'marker', 'waiting-children', 'stalled-check'].includes(part)) {
    return `${queue}:${part}`;
  }
  return `${queue}: job hashes`;
}

async function dirBytes(dir) {
  let total = 0;
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    total += entry.isDirectory() ? await dirBytes(p) : (await stat(p)).size;
  }
  return total;
}

async function aofRewrite(redis) {
  await redis.bgrewriteaof();
  for (;;) {
    await sleep(50);
    const info = await redis.info('persistence');
    if (/aof_rewrite_in_progress:0/.test(info) && /aof_rewrite_scheduled:0/.test(info)) return;
  }
}

/** Takes every chunk job of the queue and completes it as a worker would (progress, result, returnvalue). */
async function completeAllChunks(queues, connection) {
  const worker = new Worker('chunks', null, { connection, prefix: PREFIX, autorun: false });
  const token = 'measure';
  let done = 0;
  for (;;) {
    const job = await worker.getNextJob(token, { block: false });
    if (!job) break;
    const { dataset, chunk, samples } = job.data;
    const result = {
      chunk,
      run: dataset.run,
      ok: samples.length,
      failed: 0,
      failures: {},
      backend: 'tensorflow',
      weights: { description: 's3://bucket/weights/vgg16-torchvision.safetensors', sha256: 'e'.repeat(64) },
      startedAt: new Date().toISOString(),
      durationMs: 812,
      timings: { inferenceMs: 401, readbackMs: 97, maxBatchMs: 102, batches: Math.ceil(samples.length / dataset.batchSize) },
      memory: { numTensors: 38, numBytes: 553432064, childRssBytes: 2147483648, rssBytes: 268435456 },
    };
    await job.updateProgress({ ok: samples.length, failed: 0 });
    await queues.store.setChunkResult(dataset.datasetId, result);
    await job.moveToCompleted(result, token, false);
    done++;
  }
  await worker.close();
  return done;
}

async function measure(chunkSize, sampleCounts) {
  const dir = await mkdtemp(path.join(tmpdir(), 'layertap-measure-'));
  const server = new RedisServer({ persistent: true, dir });
  await server.start();
  const redis = createRedis(server.url);
  // AOF as in production: the dev server's `appendfsync always` would only slow the enqueue down.
  await redis.config('SET', 'appendfsync', 'everysec');
  const queues = new LayertapQueues({ connection: redis, prefix: PREFIX });
  try {
    await redis.ping();
    const runs = [];
    let before = await usedMemory(redis);
    let firstDatasetId;
    for (const [i, count] of sampleCounts.entries()) {
      const samples = imagenetSamples(count, i);
      const datasetId = `train-${chunkSize}-${i}`;
      firstDatasetId ??= datasetId;
      const t0 = performance.now();
      const submitted = await queues.submit(datasetConfig(datasetId, chunkSize, count), samples);
      const submitMs = performance.now() - t0;
      const after = await usedMemory(redis);
      runs.push({ samples: count, chunks: submitted.chunks, bytes: after - before, submitMs: Math.round(submitMs) });
      before = after;
    }
    const totalSamples = sampleCounts.reduce((a, b) => a + b, 0);
    const waitLength = await redis.llen(`${PREFIX}:chunks:wait`);
    const groups = await memoryByGroup(redis);
    const aofBefore = await dirBytes(path.join(dir, 'appendonlydir'));
    await aofRewrite(redis);
    const aofAfter = await dirBytes(path.join(dir, 'appendonlydir'));
    const queuedTotal = runs.reduce((a, r) => a + r.bytes, 0);

    // Then run every chunk to completion: completed jobs stay in Redis for 24 h (removeOnComplete).
    const beforeDone = await usedMemory(redis);
    const t0 = performance.now();
    const completed = await completeAllChunks(queues, redis);
    const completeMs = performance.now() - t0;
    const afterDone = await usedMemory(redis);
    const datasetsWaiting = await redis.llen(`${PREFIX}:datasets:wait`);
    const rss = Number(/^used_memory_rss:(\d+)/m.exec(await redis.info('memory'))[1]);
    const usedAtEnd = await usedMemory(redis);
    const groupsCompleted = await memoryByGroup(redis);
    return {
      chunkSize,
      runs,
      totalSamples,
      waitLength,
      perMillionQueuedMiB: runs.map((r) => (r.bytes / r.samples) * 1e6 / MiB),
      perMillionCompletedMiB: ((queuedTotal + (afterDone - beforeDone)) / totalSamples) * 1e6 / MiB,
      completed,
      completeMs: Math.round(completeMs),
      datasetsWaiting,
      groupsQueuedMiB: toMiB(groups),
      groupsCompletedMiB: toMiB(groupsCompleted),
      aofPerMillionMiB: { beforeRewrite: (aofBefore / totalSamples) * 1e6 / MiB, afterRewrite: (aofAfter / totalSamples) * 1e6 / MiB },
      usedMemoryRssMiB: rss / MiB,
      usedMemoryMiB: usedAtEnd / MiB,
      firstDatasetId,
    };
  } finally {
    await queues.close();
    redis.disconnect();
    await server.close();
    await rm(dir, { recursive: true, force: true });
  }
}

/** Key groups in MiB, largest first, without the empty ones. */
function toMiB(groups) {
  return Object.fromEntries(
    Object.entries(groups)
      .filter(([, v]) => v >= 0.005 * MiB)
      .sort((a, b) => b[1] - a[1])
      .map(([k, v]) => [k, Number((v / MiB).toFixed(2))]),
  );
}

function fmt(n, digits = 1) {
  return n.toFixed(digits);
}

async function main() {
  const { values } = parseArgs({
    options: {
      samples: { type: 'string', default: '100000,200000' },
      'chunk-sizes': { type: 'string', default: '64,256' },
      json: { type: 'boolean', default: false },
    },
  });
  const sampleCounts = values.samples.split(',').map(Number);
  const chunkSizes = values['chunk-sizes'].split(',').map(Number);
  const results = [];
  for (const chunkSize of chunkSizes) results.push(await measure(chunkSize, sampleCounts));
  if (values.json) {
    process.stdout.write(JSON.stringify(results, null, 2) + '\n');
    return;
  }
  const redisVersion = require('node:child_process').execFileSync('redis-server', ['--version']).toString().trim();
  process.stdout.write(`${redisVersion}\nprefix ${PREFIX}, one layer, s3:// ImageNet-style URIs and ids\n\n`);
  for (const r of results) {
    process.stdout.write(`chunk size ${r.chunkSize}\n`);
    for (const [i, run] of r.runs.entries()) {
      process.stdout.write(
        `  queued ${run.samples} samples (${run.chunks} chunks): +${fmt(run.bytes / MiB)} MiB used_memory ` +
          `-> ${fmt(r.perMillionQueuedMiB[i])} MiB per million samples; submit took ${run.submitMs} ms\n`,
      );
    }
    process.stdout.write(`  wait list length ${r.waitLength}; queued, by key group (MiB): ${JSON.stringify(r.groupsQueuedMiB)}\n`);
    process.stdout.write(
      `  after completing all ${r.completed} chunks (${r.completeMs} ms): ${fmt(r.perMillionCompletedMiB)} MiB per million samples ` +
        `(held 24 h by removeOnComplete); dataset jobs waiting to merge: ${r.datasetsWaiting}\n` +
        `  completed, by key group (MiB): ${JSON.stringify(r.groupsCompletedMiB)}\n`,
    );
    process.stdout.write(
      `  AOF per million queued samples: ${fmt(r.aofPerMillionMiB.beforeRewrite)} MiB before rewrite, ${fmt(r.aofPerMillionMiB.afterRewrite)} MiB after\n` +
        `  at the end: used_memory ${fmt(r.usedMemoryMiB)} MiB, used_memory_rss ${fmt(r.usedMemoryRssMiB)} MiB (allocator overhead after churn)\n\n`,
    );
  }
}

main().catch((err) => {
  process.stderr.write(`measure-redis-memory: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
