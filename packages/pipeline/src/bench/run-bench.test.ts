import { runInThisContext } from 'node:vm';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { decodeNpy } from '@layertap/storage';
import { generateImages } from './images';
import { DEFAULT_BENCH_OPTIONS, runBench, type BenchOptions } from './run-bench';

/** The CLI's sample photos, which the bench cuts its test images from. */
const SAMPLES_DIR = path.resolve(__dirname, '..', '..', '..', '..', 'apps', 'producer', 'samples');

// Jest gives each test file its own realm, but onnxruntime-node's native binding makes its typed arrays in
// Node's main one, which onnxruntime-common then refuses (microsoft/onnxruntime#16622). ONNX Runtime is
// loaded on first use, after this runs.
for (const name of ['ArrayBuffer', 'Float32Array', 'Uint8Array', 'Uint16Array', 'Int32Array', 'BigInt64Array']) {
  (globalThis as unknown as Record<string, unknown>)[name] = runInThisContext(name) as unknown;
}

// A smoke test with tiny sizes: the bench runs and produces figures. Speed is what the bench itself prints.
const TINY: BenchOptions = {
  ...DEFAULT_BENCH_OPTIONS,
  samplesDir: SAMPLES_DIR,
  engine: 'onnx',
  backend: 'cpu',
  threads: 1,
  layers: ['features.4', 'block2_conv1_preact'],
  batchSize: 2,
  imageSize: 32,
  images: 3,
};

describe('layertap bench', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'bench-test-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('generates distinct 500x375 JPEGs from the sample photos', async () => {
    const files = await generateImages(dir, 8, { samplesDir: SAMPLES_DIR });
    expect(files.map((f) => path.basename(f))).toEqual([0, 1, 2, 3, 4, 5, 6, 7].map((i) => `img-0000${i}.jpg`));
    const bytes = await Promise.all(files.map((f) => readFile(f)));
    // JPEG SOF0 holds height then width, big-endian, 5 bytes after the marker.
    const sof = bytes[0]?.indexOf(Buffer.from([0xff, 0xc0])) ?? -1;
    expect(bytes[0]?.readUInt16BE(sof + 5)).toBe(375);
    expect(bytes[0]?.readUInt16BE(sof + 7)).toBe(500);
    // Image 7 is photo 0 again, cropped elsewhere and mirrored: every file differs.
    expect(new Set(bytes.map((b) => b.toString('base64'))).size).toBe(8);
  });

  it('runs model-only and end to end, writes one .npy per sample and layer, and reports figures', async () => {
    const progress: string[] = [];
    const report = await runBench({ ...TINY, dir }, (line) => progress.push(line));
    expect(report.engine).toMatchObject({ label: 'onnx/cpu', threads: 1 });
    expect(report.modelOnly).toMatchObject({ batches: 2, images: 4 });
    expect(report.modelOnly.imagesPerSecond).toBeGreaterThan(0);
    expect(report.modelOnly.cpuPerSecond).toBeGreaterThan(0);
    expect(report.machine.loadAverage).toBeGreaterThanOrEqual(0);
    expect(report.endToEnd).toMatchObject({ images: 3, files: 6 });
    expect(report.endToEnd.imagesPerSecond).toBeGreaterThan(0);
    for (const stage of ['fetch', 'decode', 'inference', 'encode', 'write'] as const) expect(report.endToEnd.msPerImage[stage]).toBeGreaterThan(0);
    expect(report.stagesAlone.images).toBe(2);
    expect(report.stagesAlone.msPerImage.decode).toBeGreaterThan(0);
    // CPU per stage, user and kernel apart: every stage reported, decoding a JPEG costs user time.
    expect(Object.keys(report.stagesAlone.cpuMsPerImage)).toEqual(['fetch', 'decode', 'preprocess', 'encode', 'write']);
    for (const cpu of Object.values(report.stagesAlone.cpuMsPerImage)) {
      expect(cpu.user).toBeGreaterThanOrEqual(0);
      expect(cpu.system).toBeGreaterThanOrEqual(0);
    }
    expect(report.stagesAlone.cpuMsPerImage.decode.user).toBeGreaterThan(0);
    expect(report.endToEnd.cpuMsPerImage.user).toBeGreaterThan(0);
    expect(report.endToEnd.cpuMsPerImage.user + report.endToEnd.cpuMsPerImage.system).toBeCloseTo((report.endToEnd.cpuPerSecond * report.endToEnd.seconds * 1000) / 3, 0);
    expect(report.peakRssMb).toBeGreaterThan(10);
    expect(report.tensorsAfterRun.numTensors).toBe(0);
    expect(report.pytorch).toBeUndefined();

    // The files: (C, H, W) float32, as PyTorch stores them.
    const out = path.join(dir, 'layertap-out', 'bench');
    expect((await readdir(path.join(out, 'features.4'))).sort()).toEqual(['img-00000.npy', 'img-00001.npy', 'img-00002.npy']);
    const pool = decodeNpy(await readFile(path.join(out, 'features.4', 'img-00002.npy')));
    expect(pool).toMatchObject({ dtype: 'float32', shape: [64, 16, 16] });
    const pre = decodeNpy(await readFile(path.join(out, 'block2_conv1_preact', 'img-00000.npy')));
    expect(pre.shape).toEqual([128, 16, 16]);

    expect(progress).toEqual(expect.arrayContaining([expect.stringMatching(/^end to end: \d+\.\d\d images\/s$/)]));
  });
});
