/**
 * infra/gpu: the offline GPU bundle. build-bundle.sh builds it (under 64 MiB); it is unpacked into an empty
 * directory by run-gpu-bench.sh, which runs there with a PATH that has no node, on Mesa's software Vulkan
 * (lavapipe) instead of the NVIDIA driver, with tiny settings; every engine's JSON is checked.
 */
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const REPO = path.resolve(__dirname, '..');
const GPU = path.join(REPO, 'infra', 'gpu');
const LAVAPIPE = '/usr/share/vulkan/icd.d/lvp_icd.json';
const LIMIT = 64 * 1024 * 1024;
/** What run-gpu-bench.sh and gpu-env.sh call, found on this machine's PATH; node is deliberately not among them. */
const TOOLS = ['bash', 'sh', 'env', 'dirname', 'mkdir', 'du', 'cut', 'tar', 'xz', 'rm', 'touch', 'date', 'uname', 'sed', 'id', 'chmod', 'ls', 'grep', 'tr', 'head', 'tail', 'awk', 'find', 'tee', 'cat', 'sort', 'readlink'];

const haveLavapipe = existsSync(LAVAPIPE);
if (!haveLavapipe) {
  // Loud on purpose: without it this file proves nothing about the bundle.
  console.warn(
    `SKIPPED test/gpu-bundle.e2e.test.ts: ${LAVAPIPE} is missing. Install Mesa's software Vulkan driver ` +
      '(Debian mesa-vulkan-drivers >= 24, from bookworm-backports; infra/bootstrap.sh --test does) to test the GPU bundle.',
  );
}

function run(command: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs: number }): SpawnSyncReturns<string> {
  return spawnSync(command, args, { ...options, timeout: options.timeoutMs, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
}

function describeRun(r: SpawnSyncReturns<string>): string {
  return `exit ${r.status} (signal ${r.signal})\n--- stdout\n${r.stdout.slice(-4000)}\n--- stderr\n${r.stderr.slice(-8000)}`;
}

interface BenchJson {
  engine: { label: string; backend?: string };
  skipped?: boolean;
  reason?: string;
  settings: { imageSize: number; batchSize: number; images: number; layers: string[]; im2col?: boolean };
  modelOnly: { imagesPerSecond: number; images: number };
  endToEnd: { imagesPerSecond: number; images: number; files: number };
  pytorch?: { available: boolean; reason?: string };
}

(haveLavapipe ? describe : describe.skip)('GPU bundle (infra/gpu)', () => {
  let tmp: string;
  let dist: string;
  let runDir: string;
  let env: NodeJS.ProcessEnv;
  let bench: SpawnSyncReturns<string>;
  const timings: Record<string, number> = {};

  beforeAll(() => {
    tmp = mkdtempSync(path.join(tmpdir(), 'layertap-gpu-bundle-'));
    dist = path.join(tmp, 'dist');
    let started = performance.now();
    // The workspace is built already (turbo runs `build` before the tests); the cache keeps the compressed node.
    const build = run('bash', [path.join(GPU, 'build-bundle.sh'), '--no-build', '--out', dist, '--work', path.join(tmp, 'work')], {
      cwd: REPO,
      timeoutMs: 540_000,
    });
    timings.buildSeconds = (performance.now() - started) / 1000;
    if (build.status !== 0) throw new Error(`build-bundle.sh failed: ${describeRun(build)}`);
    rmSync(path.join(tmp, 'work'), { recursive: true, force: true });

    // An empty directory with the archive and the script only, and a PATH without node.
    runDir = path.join(tmp, 'host');
    mkdirSync(runDir);
    copyFileSync(path.join(dist, 'layertap-gpu.tar.xz'), path.join(runDir, 'layertap-gpu.tar.xz'));
    copyFileSync(path.join(dist, 'run-gpu-bench.sh'), path.join(runDir, 'run-gpu-bench.sh'));
    const tools = path.join(tmp, 'tools');
    mkdirSync(tools);
    for (const tool of TOOLS) {
      const found = run('bash', ['-c', `command -v ${tool}`], { timeoutMs: 5_000 }).stdout.trim();
      if (found) symlinkSync(found, path.join(tools, tool));
    }
    env = { PATH: tools, HOME: tmp, TMPDIR: tmp, LANG: 'C.UTF-8' };

    started = performance.now();
    bench = run('bash', ['run-gpu-bench.sh', '--icd', LAVAPIPE, '--images', '4', '--batch-size', '2', '--image-size', '64'], {
      cwd: runDir,
      env,
      timeoutMs: 300_000,
    });
    timings.benchSeconds = (performance.now() - started) / 1000;
    console.log(`GPU bundle: built in ${timings.buildSeconds.toFixed(0)} s, unpacked and benched in ${timings.benchSeconds.toFixed(0)} s\n${readFileSync(path.join(dist, 'SIZES.txt'), 'utf8')}`);
  }, 900_000);

  afterAll(() => {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  const results = () => path.join(runDir, 'gpu-results');
  const readJson = <T>(name: string): T => JSON.parse(readFileSync(path.join(results(), name), 'utf8')) as T;

  it('is one archive under 64 MiB, with the sizes of its parts', () => {
    const size = statSync(path.join(dist, 'layertap-gpu.tar.xz')).size;
    expect(size).toBeLessThan(LIMIT);
    const sizes = readFileSync(path.join(dist, 'SIZES.txt'), 'utf8');
    for (const part of ['node', 'system-libs', 'onnxruntime-node', 'webgpu-dawn', 'sharp-libvips', 'js-and-scripts', 'total']) {
      expect(sizes).toMatch(new RegExp(`^${part} +[\\d.]+ MiB +[\\d.]+ MiB`, 'm'));
    }
  });

  it('ran with no node on PATH: the carried node, Vulkan loader and GLVND', () => {
    expect(existsSync(path.join(tmp, 'tools', 'node'))).toBe(false);
    expect(run('bash', ['-c', 'command -v node'], { env, timeoutMs: 5_000 }).status).not.toBe(0);
    if (bench.status !== 0) throw new Error(`run-gpu-bench.sh failed: ${describeRun(bench)}`);
    const bundle = path.join(runDir, 'layertap-gpu');
    for (const file of ['node/bin/node', 'system/usr/lib/x86_64-linux-gnu/libvulkan.so.1', 'system/usr/lib/x86_64-linux-gnu/libGLX.so.0', 'system/usr/lib/x86_64-linux-gnu/libEGL.so.1']) {
      expect(existsSync(path.join(bundle, file))).toBe(true);
    }
    const environment = readFileSync(path.join(results(), 'environment.txt'), 'utf8');
    expect(environment).toContain(`vulkan ICD: ${LAVAPIPE}`);
    expect(environment).toContain(`node: ${path.join(bundle, 'node', 'bin', 'node')}`);
    // The adapter Dawn got, and the loader the process mapped: the bundle's, not the system's.
    const adapter = readJson<{ adapter: Record<string, string> | null; libraries: string[]; error: string | null }>('adapter.json');
    expect(adapter.error).toBeNull();
    const described = [adapter.adapter?.description, adapter.adapter?.device].filter(Boolean).join(' ');
    if (described) expect(described).toMatch(/llvmpipe/);
    expect(adapter.libraries.some((lib) => lib.startsWith(path.join(bundle, 'system')) && /libvulkan\.so/.test(lib))).toBe(true);
    expect(readFileSync(path.join(results(), 'nvidia-smi.txt'), 'utf8')).toBeTruthy();
  });

  it.each([
    ['tfjs/webgpu', 'tfjs-webgpu.json'],
    ['tfjs/webgpu', 'tfjs-webgpu-im2col.json'],
    ['onnx/webgpu', 'onnx-webgpu.json'],
  ])('benched %s (%s) end to end with the PyTorch comparison reported', (label, file) => {
    if (bench.status !== 0) throw new Error(`run-gpu-bench.sh failed: ${describeRun(bench)}`);
    const report = readJson<BenchJson>(file);
    expect(report.engine.label).toBe(label);
    expect(report.settings.im2col === true).toBe(file.includes('im2col'));
    expect(report.settings).toMatchObject({ imageSize: 64, batchSize: 2, images: 4, layers: ['features.9'] });
    expect(report.modelOnly.imagesPerSecond).toBeGreaterThan(0);
    expect(report.endToEnd.imagesPerSecond).toBeGreaterThan(0);
    expect(report.endToEnd.files).toBe(4);
    // torch is usually absent here: then the comparison says why it was skipped.
    expect(report.pytorch).toBeDefined();
    if (!report.pytorch?.available) expect(report.pytorch?.reason).toEqual(expect.any(String));
    expect(readFileSync(path.join(results(), 'summary.txt'), 'utf8')).toMatch(new RegExp(`^${label} +model only [\\d.]+ images/s, end to end [\\d.]+ images/s`, 'm'));
  });

  it('reports the engines whose native parts are not in the bundle as skipped', () => {
    const summary = readFileSync(path.join(results(), 'summary.txt'), 'utf8');
    for (const label of ['onnx/cuda', 'tfjs/tensorflow']) {
      const report = readJson<BenchJson>(`${label.replace('/', '-')}.json`);
      expect(report).toMatchObject({ engine: { label }, skipped: true, reason: expect.stringContaining('not in the bundle') });
      expect(summary).toMatch(new RegExp(`^${label} +skipped: `, 'm'));
    }
    expect(readdirSync(results()).sort()).toEqual(
      ['adapter.json', 'adapter.log', 'environment.txt', 'nvidia-smi.txt', 'onnx-cuda.json', 'onnx-webgpu.json', 'onnx-webgpu.log', 'summary.txt', 'tfjs-tensorflow.json', 'tfjs-webgpu.json', 'tfjs-webgpu.log', 'tfjs-webgpu-im2col.json', 'tfjs-webgpu-im2col.log'].sort(),
    );
  });

  it('starts the worker through its wrapper, and says clearly when no NVIDIA ICD is there', () => {
    const bundle = path.join(runDir, 'layertap-gpu');
    const worker = run(path.join(bundle, 'bin', 'layertap-worker'), ['--help'], { env: { ...env, LAYERTAP_GPU_ICD: LAVAPIPE }, timeoutMs: 60_000 });
    expect(worker.status).toBe(0);
    expect(worker.stdout).toContain('Usage: layertap-worker');

    const nvidia = ['/usr/local/nvidia/share/vulkan/icd.d', '/usr/share/vulkan/icd.d', '/etc/vulkan/icd.d'].some(
      (dir) => existsSync(dir) && readdirSync(dir).some((f) => f.startsWith('nvidia_icd')),
    );
    if (nvidia) return; // a machine with the NVIDIA driver: the search succeeds
    const none = run('bash', ['run-gpu-bench.sh', '--bundle', bundle, '--out', path.join(tmp, 'no-icd')], { cwd: runDir, env, timeoutMs: 60_000 });
    expect(none.status).toBe(1);
    expect(none.stderr).toContain('no NVIDIA Vulkan ICD found');
    expect(none.stderr).toContain('--icd');
  });
});
