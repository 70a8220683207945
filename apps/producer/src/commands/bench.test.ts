import { runInThisContext } from 'node:vm';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Command } from 'commander';
import { decodeNpy } from '@layertap/storage';
import { DEFAULT_BENCH_OPTIONS, formatBenchReport, generateImages, registerBenchCommand, runBench, type BenchOptions } from './bench';

// Jest gives each test file its own realm, but onnxruntime-node's native binding makes its typed arrays in
// Node's main one, which onnxruntime-common then refuses (microsoft/onnxruntime#16622). ONNX Runtime is
// loaded on first use, after this runs.
for (const name of ['ArrayBuffer', 'Float32Array', 'Uint8Array', 'Uint16Array', 'Int32Array', 'BigInt64Array']) {
  (globalThis as unknown as Record<string, unknown>)[name] = runInThisContext(name) as unknown;
}

// A smoke test with tiny sizes: the bench runs and produces figures. Speed is what the bench itself prints.
const TINY: BenchOptions = {
  ...DEFAULT_BENCH_OPTIONS,
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
    const files = await generateImages(dir, 8);
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

    const table = formatBenchReport(report);
    expect(table).toContain('layertap bench: onnx/cpu (1 threads), layer features.4, block2_conv1_preact, 32x32, batch 2, 3 images');
    expect(table).toMatch(/end to end \(JPEG files on disk -> \.npy files on disk.*not Redis or S3\)\n {2}images\/s +\d+\.\d\d/);
    expect(table).toMatch(/peak RSS +\d+ MB/);
    expect(progress).toEqual(expect.arrayContaining([expect.stringMatching(/^end to end: \d+\.\d\d images\/s$/)]));
  });

  it('says why the PyTorch comparison cannot run, and prints JSON through the command', async () => {
    const out: string[] = [];
    const program = new Command('layertap').exitOverride();
    let code: number | undefined;
    registerBenchCommand(program, {
      run: async (action) => void (code = await action()),
      stdout: { write: (s: string) => out.push(s) } as unknown as NodeJS.WritableStream,
      stderr: { write: () => true } as unknown as NodeJS.WritableStream,
    });
    await program.parseAsync(
      ['bench', '--engine', 'onnx', '--backend', 'cpu', '--threads', '1', '--layer', 'block1_pool', '--batch-size', '2',
        '--image-size', '32', '--images', '2', '--compare-pytorch', '--python', path.join(dir, 'no-python'), '--json'],
      { from: 'user' },
    );
    expect(code).toBe(0);
    const report = JSON.parse(out.join('')) as Awaited<ReturnType<typeof runBench>>;
    expect(report.settings).toMatchObject({ layers: ['block1_pool'], batchSize: 2, imageSize: 32, images: 2 });
    expect(report.pytorch).toEqual({ available: false, reason: expect.stringContaining(`${path.join(dir, 'no-python')} cannot run torch and torchvision`) });
    expect(report.endToEnd.files).toBe(2);
  });
});
