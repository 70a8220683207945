import { runInThisContext } from 'node:vm';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Command } from 'commander';
import type { BenchReport } from '@layertap/pipeline/bench';
import { ErrorCode, LayertapError } from '@layertap/contracts';
import { NO_WORKER_MESSAGE, aloneCpu, formatBenchReport, loadBench, registerBenchCommand } from './bench';

// Jest gives each test file its own realm, but onnxruntime-node's native binding makes its typed arrays in
// Node's main one, which onnxruntime-common then refuses (microsoft/onnxruntime#16622).
for (const name of ['ArrayBuffer', 'Float32Array', 'Uint8Array', 'Uint16Array', 'Int32Array', 'BigInt64Array']) {
  (globalThis as unknown as Record<string, unknown>)[name] = runInThisContext(name) as unknown;
}

async function benchCli(args: string[]): Promise<{ code: number | undefined; out: string }> {
  const out: string[] = [];
  const program = new Command('layertap').exitOverride();
  let code: number | undefined;
  registerBenchCommand(program, {
    run: async (action) => void (code = await action()),
    stdout: { write: (s: string) => out.push(s) } as unknown as NodeJS.WritableStream,
    stderr: { write: () => true } as unknown as NodeJS.WritableStream,
  });
  await program.parseAsync(['bench', ...args], { from: 'user' });
  return { code, out: out.join('') };
}

describe('loadBench', () => {
  it('says in one line that the worker is missing when @layertap/pipeline is not installed', async () => {
    const notInstalled = Object.assign(new Error("Cannot find module '@layertap/pipeline/bench'"), { code: 'MODULE_NOT_FOUND' });
    const err = await loadBench(() => Promise.reject(notInstalled)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LayertapError);
    expect((err as LayertapError).code).toBe(ErrorCode.BackendUnavailable);
    expect((err as LayertapError).message).toBe(NO_WORKER_MESSAGE);
    expect(NO_WORKER_MESSAGE).toMatch(/^layertap bench needs the worker installed: [^\n]+$/);
  });

  it('passes other failures through, and loads the bench where the worker is installed', async () => {
    const broken = Object.assign(new Error("Cannot find package 'onnxruntime-node' imported from /x/node_modules/@layertap/pipeline/dist/bench/index.js"), { code: 'ERR_MODULE_NOT_FOUND' });
    await expect(loadBench(() => Promise.reject(broken))).rejects.toBe(broken);
    expect(typeof (await loadBench()).DEFAULT_BENCH_OPTIONS).toBe('object');
  });
});

describe('layertap bench (the command)', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'bench-cli-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('takes the worker\'s engine vocabulary, says why the PyTorch comparison cannot run, prints JSON and the table', async () => {
    const { code, out } = await benchCli([
      '--engine', 'onnx', '--backend', 'cpu', '--threads', '1', '--layer', 'block1_pool', '--batch-size', '2', '--image-size', '32',
      '--images', '2', '--dtype', 'float16', '--compare-pytorch', '--python', path.join(dir, 'no-python'), '--json',
    ]);
    expect(code).toBe(0);
    const report = JSON.parse(out) as BenchReport;
    expect(report.engine).toMatchObject({ label: 'onnx/cpu', threads: 1 });
    expect(report.settings).toMatchObject({ layers: ['block1_pool'], batchSize: 2, imageSize: 32, images: 2, dtype: 'float16' });
    expect(report.pytorch).toEqual({ available: false, reason: expect.stringContaining(`${path.join(dir, 'no-python')} cannot run torch and torchvision`) });
    expect(report.endToEnd.files).toBe(2);
    const table = formatBenchReport(report);
    expect(table).toMatch(/^layertap bench: onnx\/cpu \(1 threads\) on .+, layer block1_pool, 32x32, batch 2, float16, 2 500x375 JPEG photos$/m);
    expect(table).toMatch(/end to end \(JPEG files on disk -> \.npy files on disk, in one process through the worker's BatchRunner.*\)\n {2}images\/s +\d+\.\d\d/);
    expect(table).toMatch(/^ {2}CPU-ms per image {5}fetch [\d.]+ \(\d+%\), decode [\d.]+ \(\d+%\), preprocess [\d.]+ \(\d+%\), encode [\d.]+ \(\d+%\), write [\d.]+ \(\d+%\); total [\d.]+ \(\d+%\)/m);
    expect(table).toMatch(/^ {2}CPU-ms in run {8}[\d.]+ per image \(user [\d.]+, kernel [\d.]+: \d+%\), engine thread included$/m);
    expect(table).toMatch(/^ {2}ms per image in run {2}fetch [\d.]+, decode [\d.]+, preprocess [\d.]+, transfer 0\.00, inference [\d.]+, readback [\d.]+, encode [\d.]+, write [\d.]+$/m);
  });

  it('prints each stage\'s CPU-ms per image with the kernel\'s share, and their sum', () => {
    const cpu = (user: number, system: number) => ({ user, system });
    expect(aloneCpu({ fetch: cpu(0.02, 0.06), decode: cpu(2.4, 0.6), preprocess: cpu(1, 0), encode: cpu(0.3, 0.1), write: cpu(0.5, 1.5) })).toBe(
      'fetch 0.08 (75%), decode 3.00 (20%), preprocess 1.00 (0%), encode 0.40 (25%), write 2.00 (75%); total 6.48 (35%)',
    );
    expect(aloneCpu({ fetch: cpu(0, 0), decode: cpu(0, 0), preprocess: cpu(0, 0), encode: cpu(0, 0), write: cpu(0, 0) })).toMatch(/; total 0\.00 \(0%\)$/);
  });

  it('refuses an engine pair the worker would refuse, listing the valid ones', async () => {
    await expect(benchCli(['--engine', 'onnx', '--backend', 'wasm'])).rejects.toThrow(/--engine onnx --backend wasm is not a combination layertap has; valid: /);
  });
});
