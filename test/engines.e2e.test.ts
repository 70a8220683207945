import { existsSync } from 'node:fs';
import { copyFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { BIN, Harness, SAMPLES } from './support/harness';

/**
 * The engine vocabulary and what a worker does with it, with real workers: what `auto` chooses and why (a
 * software WebGPU adapter is never chosen by `auto`), every engine pair the bench takes runs a dataset in the
 * worker (the WebGPU ones on Mesa's lavapipe, named explicitly, with a warning recorded), impossible or
 * uninstalled pairs exit 2, and an engine that breaks mid-run (LAYERTAP_FAULT_DRILL) costs no sample and no
 * attempt: the chunk is released, the engine dropped after two faults, the next one finishes the dataset.
 */
const LAVAPIPE = '/usr/share/vulkan/icd.d/lvp_icd.json';

describe('engines in the worker', () => {
  const h = new Harness('engines');
  let images: string;

  beforeAll(async () => {
    await h.start();
    images = path.join(h.tmp, 'images');
    await mkdir(images);
    for (const name of ['chelsea.jpg', 'camera.jpg', 'rocket.jpg', 'coffee.jpg']) await copyFile(path.join(SAMPLES, name), path.join(images, name));
  }, 60_000);
  afterAll(() => h.close());

  const submit = async (id: string, extra: string[] = []) => {
    const r = await h.layertap(['submit', images, '--weights', 'random', '--layer', 'block1_pool,block2_conv2', '--output', 's3://layertap/out', '--image-size', '32', '--batch-size', '2', '--chunk-size', '4', '--dataset-id', id, ...extra]);
    expect(r.code).toBe(0);
  };
  const provenance = async (id: string) => JSON.parse((await h.getObject('layertap', `out/${id}/dataset.json`))!.toString());

  it('auto starts on the CPU engine here and says why each faster engine was passed over (a software adapter never)', async () => {
    await submit('auto');
    const log = await h.runWorker();
    // Every line is JSON, whatever the WebGPU and ONNX Runtime probes printed natively.
    const notJson = log.trim().split('\n').filter((line) => {
      try {
        return typeof JSON.parse(line) !== 'object';
      } catch {
        return true;
      }
    });
    expect(notJson).toEqual([]);
    const started = JSON.parse(log.split('\n').find((l) => l.includes('"worker started"'))!);
    expect(started.engine).toBe('onnx/cpu');
    expect(started.requested).toBe('auto/auto');
    expect(started.reason).toMatch(/^onnx\/cuda: .+; tfjs\/tensorflow: .+; tfjs\/webgpu: .+; onnx\/webgpu: .+; onnx\/cpu: cpu ran a test model$/);
    if (existsSync(LAVAPIPE)) {
      // lavapipe is there: auto saw the adapter and passed it over for both WebGPU engines.
      expect(started.reason.match(/a software rasteriser, far slower than the CPU engines/g)).toHaveLength(2);
    }
    expect((await provenance('auto')).engines.map((e: { engine: string; backend: string }) => `${e.engine}/${e.backend}`)).toEqual(['onnx/cpu']);
  });

  it('runs every engine pair the bench takes, the WebGPU ones on the software adapter with a warning, float16 outputs matching the CPU engine', async () => {
    await submit('ref', ['--dtype', 'float32']);
    await h.runWorker(['--engine', 'onnx', '--backend', 'cpu']);
    const pairs = [['tfjs', 'wasm'], ['null', 'auto'], ['onnx', 'webgpu'], ['tfjs', 'webgpu']];
    for (const [engine, backend] of pairs) {
      const id = `pair-${engine}-${backend}`;
      await submit(id, ['--dtype', 'float16']);
      const log = await h.runWorker(['--engine', engine!, '--backend', backend!], { XDG_RUNTIME_DIR: h.tmp });
      const doc = await provenance(id);
      expect(doc.counts).toMatchObject({ ok: 4, failed: 0 });
      const used = doc.engines[0];
      expect(`${used.engine}/${used.backend}`).toBe(engine === 'null' ? 'null/cpu' : `${engine}/${backend}`);
      if (backend === 'webgpu') {
        expect(used.device.kind).toBe('gpu');
        if (used.device.software) {
          expect(used.warnings).toEqual([expect.stringMatching(/^running on a software WebGPU adapter/)]);
          expect(log).toMatch(/"level":40,[^\n]*"msg":"running on a software WebGPU adapter/);
        }
        expect(used.reason).toMatch(/proof run on block1_pool, block2_conv2 agreed with onnx\/cpu/);
      }
      if (engine === 'null') continue;
      // The arrays equal the CPU engine's within the engines' tolerance plus float16 rounding.
      for (const [layer, sample] of [['block1_pool', 'chelsea'], ['block2_conv2', 'rocket']] as const) {
        const want = (await h.npy('layertap', `out/ref/${layer}/${sample}.npy`)).data as Float32Array;
        const got = await h.npy('layertap', `out/${id}/${layer}/${sample}.npy`);
        expect(got.dtype).toBe('float16');
        const scale = Math.max(...want.map(Math.abs));
        const halves = got.data as Uint16Array;
        let worst = 0;
        for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(halfToNumber(halves[i]!) - want[i]!) - Math.abs(want[i]!) * 2 ** -11);
        if (!(worst <= 1e-4 * scale)) throw new Error(`${engine}/${backend} ${layer}: off by ${worst} (max value ${scale})`);
      }
    }
  });

  it('refuses an impossible pair and a backend that is not installed at start, with exit 2 and what to do', async () => {
    const impossible = h.spawn(BIN.worker, ['--engine', 'onnx', '--backend', 'wasm']);
    expect(await impossible.exited).toBe(2);
    expect(impossible.output()).toContain('--engine onnx --backend wasm is not a combination layertap has; valid: --engine onnx --backend auto|cuda|webgpu|cpu');
    const cuda = h.spawn(BIN.worker, ['--engine', 'onnx', '--backend', 'cuda']);
    expect(await cuda.exited).toBe(2);
    expect(cuda.output()).toContain("no engine can run here: onnx/cuda: onnxruntime-node's CUDA provider library is not installed");
    const tensorflow = h.spawn(BIN.worker, ['--engine', 'tfjs', '--backend', 'tensorflow']);
    expect(await tensorflow.exited).toBe(2);
    expect(tensorflow.output()).toContain('Install @tensorflow/tfjs-node-gpu');
  });

  it('an engine that faults mid-run: the chunk is released without spending an attempt, the engine dropped after two faults, the next one finishes', async () => {
    await submit('drill');
    // auto's chain here: onnx/cpu (faulting on every batch), then tfjs/wasm.
    const log = await h.runWorker([], { LAYERTAP_FAULT_DRILL: 'onnx/cpu' });
    expect(log.match(/"engine fault: chunk released without spending an attempt"/g)).toHaveLength(2);
    expect(log).toContain('engine onnx/cpu dropped after 2 faults in a row');
    expect(log).toMatch(/"engine":"tfjs:wasm".*"msg":"model loaded"/);
    const doc = await provenance('drill');
    expect(doc.counts).toMatchObject({ total: 4, ok: 4, failed: 0 });
    expect(doc.engines.map((e: { engine: string; backend: string }) => `${e.engine}/${e.backend}`).sort()).toEqual(['onnx/cpu', 'tfjs/wasm']);
    const job = await chunkJob('drill~r0~c0');
    expect(job.state).toBe('completed');
    // Released twice (no attempt spent), completed once.
    expect(job.attemptsMade).toBe(1);
  });

  it('when no engine is left the worker stops, the chunk goes back to the queue whole, and another worker finishes it', async () => {
    await submit('stranded');
    const worker = h.spawn(BIN.worker, ['--exit-when-idle', '--engine', 'onnx', '--backend', 'cpu'], { LAYERTAP_FAULT_DRILL: 'onnx/cpu' });
    expect(await worker.exited).toBe(1);
    expect(worker.output()).toContain('engine onnx/cpu dropped after 2 faults in a row');
    expect(worker.output()).toContain('no engine left');
    const released = await chunkJob('stranded~r0~c0');
    expect(['delayed', 'waiting']).toContain(released.state);
    expect(released.attemptsMade).toBe(0);
    expect(await h.listKeys('layertap', 'out/stranded/_parts/')).toEqual([]);
    await h.runWorker(['--engine', 'onnx', '--backend', 'cpu']);
    expect((await provenance('stranded')).counts).toMatchObject({ total: 4, ok: 4, failed: 0 });
  });

  async function chunkJob(id: string): Promise<{ state: string; attemptsMade: number }> {
    const redis = new Redis(h.services.redisUrl);
    const chunks = new Queue('chunks', { connection: redis, prefix: h.prefix });
    try {
      const job = await chunks.getJob(id);
      return { state: await job!.getState(), attemptsMade: job!.attemptsMade };
    } finally {
      await chunks.close();
      redis.disconnect();
    }
  }
});

/** IEEE half-precision bits -> number, written independently of the code under test. */
function halfToNumber(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >> 10) & 0x1f;
  const mant = bits & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 31) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}
