#!/usr/bin/env node
// Model-only throughput of each engine, layer and batch size, in one process, on the built package:
//
//   pnpm --filter @layertap/model build
//   node packages/model/bench/engines.js --engines onnx/cpu,tfjs/wasm --layers block2_pool,block3_pool \
//     --batches 1,16 [--image-size 224] [--seconds 6] [--rounds 3] [--threads N] [--run-batch N] [--json]
//
// Each figure is images/s over `--seconds`, split into `--rounds` rounds that are interleaved across the
// engines; the best and the median round are printed (the best is the one least disturbed by other work on
// a shared machine). CPU use is process CPU seconds per wall second. End-to-end figures (JPEG files to .npy
// files) come from `layertap bench`.
'use strict';
const { availableParallelism, loadavg } = require('node:os');
const { parseArgs } = require('node:util');
const { Extractor } = require('../dist/index.js');

const { values } = parseArgs({
  options: {
    engines: { type: 'string', default: 'onnx/cpu,tfjs/wasm' },
    layers: { type: 'string', default: 'block2_pool' },
    batches: { type: 'string', default: '1,16' },
    'image-size': { type: 'string', default: '224' },
    seconds: { type: 'string', default: '6' },
    rounds: { type: 'string', default: '3' },
    threads: { type: 'string' },
    'run-batch': { type: 'string' },
    json: { type: 'boolean', default: false },
  },
});
const size = Number(values['image-size']);
const seconds = Number(values.seconds);
const rounds = Number(values.rounds);
const list = (s) => s.split(',').map((x) => x.trim()).filter(Boolean);

function engineOptions(label) {
  const [engine, backend] = label.split('/');
  const common = {
    ...(values.threads ? { threads: Number(values.threads) } : {}),
    ...(values['run-batch'] ? { runBatch: Number(values['run-batch']) } : {}),
  };
  if (engine === 'onnx') return { engine, ...(backend ? { onnxProvider: backend } : {}), ...common };
  return { engine, ...(backend ? { backend } : {}), ...common };
}

async function main() {
  const results = [];
  for (const layer of list(values.layers)) {
    for (const batch of list(values.batches).map(Number)) {
      const data = new Float32Array(batch * size * size * 3).map((_, i) => Math.sin(i) * 2);
      // One extractor per engine, built and warmed up before any timing, then rounds interleaved.
      const open = [];
      for (const label of list(values.engines)) {
        try {
          const extractor = await Extractor.create({ imageSize: size, ...engineOptions(label) });
          extractor.registerForwardHook(layer, () => undefined);
          await extractor.warmup(batch);
          open.push({ label: extractor.label, extractor, rates: [], cpu: [] });
        } catch (err) {
          process.stderr.write(`skipping ${label}: ${err instanceof Error ? err.message : String(err)}\n`);
        }
        // TF.js backends are process-wide: keep one tfjs engine alive at a time.
        if (open.filter((o) => o.extractor.engine === 'tfjs').length > 1) throw new Error('give at most one tfjs engine per run');
      }
      for (let r = 0; r < rounds; r++) {
        for (const entry of open) {
          const cpu0 = process.cpuUsage();
          const started = performance.now();
          let images = 0;
          do {
            await entry.extractor.run({ data, batchSize: batch });
            images += batch;
          } while (performance.now() - started < (1000 * seconds) / rounds);
          const wall = (performance.now() - started) / 1000;
          const cpu = process.cpuUsage(cpu0);
          entry.rates.push(images / wall);
          entry.cpu.push((cpu.user + cpu.system) / 1e6 / wall);
        }
      }
      for (const entry of open) {
        const sorted = [...entry.rates].sort((a, b) => a - b);
        results.push({
          engine: entry.label,
          threads: entry.extractor.threads,
          layer,
          batch,
          imageSize: size,
          best: sorted.at(-1),
          median: sorted[Math.floor(sorted.length / 2)],
          cpuPerWallSecond: entry.cpu.reduce((a, b) => a + b, 0) / entry.cpu.length,
          rssMb: process.memoryUsage().rss / 1e6,
          loadAverage: loadavg()[0],
        });
        entry.extractor.dispose();
      }
    }
  }
  if (values.json) {
    process.stdout.write(`${JSON.stringify({ cpus: availableParallelism(), results })}\n`);
    return;
  }
  process.stdout.write(`model only, ${size}x${size}, ${availableParallelism()} CPUs (images/s: best / median of ${rounds} rounds)\n`);
  for (const r of results) {
    process.stdout.write(
      `${r.engine.padEnd(12)} ${String(r.threads ?? '-').padStart(2)} thr  ${r.layer.padEnd(12)} N=${String(r.batch).padEnd(3)} ` +
        `${r.best.toFixed(2).padStart(7)} / ${r.median.toFixed(2).padStart(7)}  cpu ${r.cpuPerWallSecond.toFixed(2)}  load ${r.loadAverage.toFixed(1)}\n`,
    );
  }
}

main().catch((err) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exitCode = 1;
});
