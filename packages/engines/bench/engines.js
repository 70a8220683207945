#!/usr/bin/env node
// Model-only throughput of each engine, layer and batch size, in one process, on the built package:
//
//   pnpm --filter @layertap/engines build
//   node packages/engines/bench/engines.js --engines onnx/cpu,tfjs/wasm --layers block2_pool,block3_pool \
//     --batches 1,16 [--model vgg16|resnet50] [--image-size 224] [--seconds 6] [--rounds 3] [--threads N]
//     [--run-batch N] [--compare-pytorch [--python /usr/bin/python3]] [--compare-ort-python --ort-python PY] [--json]
//
// --compare-pytorch runs bench/pytorch_model_only.py afterwards with the same layers, batches, threads and
// timing (torchvision's model truncated at the layer, and whole with a hook), and prints its figures beside.
// --compare-ort-python runs bench/ort_model_only.py with a Python that has the onnxruntime package: ONNX
// Runtime from Python on the very graph layertap builds (written to a temporary file), same options and timing.
//
// Each figure is images/s over `--seconds`, split into `--rounds` rounds that are interleaved across the
// engines; the best and the median round are printed (the best is the one least disturbed by other work on
// a shared machine). CPU use is process CPU seconds per wall second. End-to-end figures (JPEG files to .npy
// files) come from `layertap bench`.
'use strict';
const { availableParallelism, loadavg } = require('node:os');
const { parseArgs } = require('node:util');
const { execFileSync } = require('node:child_process');
const path = require('node:path');
const { getModel } = require('@layertap/model');
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
    model: { type: 'string', default: 'vgg16' },
    'compare-pytorch': { type: 'boolean', default: false },
    python: { type: 'string', default: '/usr/bin/python3' },
    'compare-ort-python': { type: 'boolean', default: false },
    'ort-python': { type: 'string', default: 'python3' },
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
  return { engine, ...(backend ? { backend } : {}), ...common };
}

/** PyTorch's figures for the same layers (torchvision names) and batches. */
function pytorchResults(threads) {
  const model = getModel(values.model);
  // A VGG16 canonical name -> its torchvision module; ResNet-50's names are torchvision's already.
  const torchName = (layer) => model.layer(layer).aliases.find((a) => /^(features|classifier)\.\d+$|^avgpool$/.test(a)) ?? model.layer(layer).name;
  const args = [
    path.join(__dirname, 'pytorch_model_only.py'), '--model', values.model, '--layers', list(values.layers).map(torchName).join(','),
    '--batches', values.batches, '--image-size', String(size), '--seconds', String(seconds), '--rounds', String(rounds), '--threads', String(threads),
  ];
  const out = execFileSync(values.python, args, { encoding: 'utf8', maxBuffer: 1 << 20 });
  return out.trim().split('\n').map((line) => ({ ...JSON.parse(line), cpuPerWallSecond: NaN, loadAverage: loadavg()[0] }));
}

/** ONNX Runtime from Python on the graph layertap builds for each layer (seed 0 weights, NHWC input). */
function ortPythonResults(threads) {
  const { mkdtempSync, writeFileSync, rmSync } = require('node:fs');
  const dir = mkdtempSync(path.join(require('node:os').tmpdir(), 'layertap-ort-'));
  const results = [];
  try {
    for (const layer of list(values.layers)) {
      const graph = path.join(dir, 'graph.onnx');
      writeFileSync(graph, getModel(values.model).buildOnnx({ imageSize: size, outputs: [layer], seed: 0 }).bytes);
      const args = [
        path.join(__dirname, 'ort_model_only.py'), '--graph', graph, '--layer', layer, '--batches', values.batches, '--image-size', String(size),
        '--seconds', String(seconds), '--rounds', String(rounds), '--threads', String(threads),
      ];
      const out = execFileSync(values['ort-python'], args, { encoding: 'utf8', maxBuffer: 1 << 20 });
      results.push(...out.trim().split('\n').map((line) => ({ ...JSON.parse(line), cpuPerWallSecond: NaN, loadAverage: loadavg()[0] })));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return results;
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
          const extractor = await Extractor.create({ model: values.model, imageSize: size, ...engineOptions(label) });
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
  if (values['compare-pytorch']) {
    const threads = results.find((r) => r.threads)?.threads ?? availableParallelism();
    try {
      results.push(...pytorchResults(threads));
    } catch (err) {
      process.stderr.write(`no PyTorch figures: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}\n`);
    }
  }
  if (values['compare-ort-python']) {
    const threads = results.find((r) => r.threads)?.threads ?? availableParallelism();
    try {
      results.push(...ortPythonResults(threads));
    } catch (err) {
      process.stderr.write(`no ONNX Runtime (Python) figures: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}\n`);
    }
  }
  if (values.json) {
    process.stdout.write(`${JSON.stringify({ cpus: availableParallelism(), results })}\n`);
    return;
  }
  process.stdout.write(`${values.model} model only, ${size}x${size}, ${availableParallelism()} CPUs (images/s: best / median of ${rounds} rounds)\n`);
  for (const r of results) {
    process.stdout.write(
      `${r.engine.padEnd(18)} ${String(r.threads ?? '-').padStart(2)} thr  ${r.layer.padEnd(12)} N=${String(r.batch).padEnd(3)} ` +
        `${r.best.toFixed(2).padStart(7)} / ${r.median.toFixed(2).padStart(7)}  cpu ${Number.isNaN(r.cpuPerWallSecond) ? '   -' : r.cpuPerWallSecond.toFixed(2)}  load ${r.loadAverage.toFixed(1)}\n`,
    );
  }
}

main().catch((err) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exitCode = 1;
});
