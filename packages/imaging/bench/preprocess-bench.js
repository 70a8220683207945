// Preprocessing throughput on a 500x375 JPEG (the typical ImageNet size). Run after `pnpm build`:
//   node bench/preprocess-bench.js [iterations] [concurrency]
// Prints images/s for decode alone, the pixel maths alone (resize + crop + normalise, synchronous JS), and the
// whole preprocessImage, sequentially and with mapLimit; plus sharp's own (not Pillow-exact) resize for scale.
const { readFileSync } = require('node:fs');
const { join } = require('node:path');
const { cpus } = require('node:os');
const sharp = require('sharp');
const { decodeImage, preprocessImage, preprocessPixels, mapLimit } = require('../dist');

const iterations = Number(process.argv[2] ?? 300);
const concurrency = Number(process.argv[3] ?? 4);
const bytes = readFileSync(join(__dirname, '..', 'src', '__fixtures__', 'landscape-500x375.jpg'));

async function timeIt(label, count, run) {
  await run(Math.min(20, count)); // warm-up (JIT, libvips caches)
  const start = process.hrtime.bigint();
  await run(count);
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  console.log(`${label.padEnd(58)} ${(ms / count).toFixed(2).padStart(7)} ms/img ${((count * 1000) / ms).toFixed(0).padStart(6)} img/s`);
}

(async () => {
  console.log(`node ${process.version}, sharp ${sharp.versions.sharp} (libvips ${sharp.versions.vips}), ${cpus().length} CPUs, ` +
    `libvips threads ${sharp.concurrency()}, ${iterations} iterations, 500x375 JPEG of ${bytes.length} bytes`);
  const decoded = await decodeImage(bytes);
  for (const mode of ['torchvision', 'caffe']) {
    await timeIt(`pixel maths only (${mode}, sync JS)`, iterations, async (n) => {
      for (let i = 0; i < n; i++) preprocessPixels(decoded.rgb, { mode });
    });
  }
  await timeIt('decodeImage only (sequential)', iterations, async (n) => {
    for (let i = 0; i < n; i++) await decodeImage(bytes);
  });
  for (const mode of ['torchvision', 'caffe']) {
    await timeIt(`preprocessImage ${mode} (sequential)`, iterations, async (n) => {
      for (let i = 0; i < n; i++) await preprocessImage(bytes, { mode });
    });
    await timeIt(`preprocessImage ${mode} (mapLimit ${concurrency})`, iterations, async (n) => {
      await mapLimit(Array.from({ length: n }), concurrency, () => preprocessImage(bytes, { mode }));
    });
  }
  await timeIt('for scale: sharp linear resize 341x256 + extract + raw (not exact)', iterations, async (n) => {
    for (let i = 0; i < n; i++) {
      await sharp(bytes).resize(341, 256, { kernel: 'linear', fastShrinkOnLoad: false })
        .extract({ left: 58, top: 16, width: 224, height: 224 }).raw().toBuffer();
    }
  });
})();
