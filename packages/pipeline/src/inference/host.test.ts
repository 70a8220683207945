import { ErrorCode, LayertapError, TransientError } from '@layertap/contracts';
import { InferenceHost } from './host';
import type { InferResult, ModelSpec } from './protocol';
import { isAlive, writeFakeChild } from './__tests__/fake-child';

const spec = (overrides: Partial<ModelSpec> = {}): ModelSpec => ({
  engine: 'tfjs',
  backend: 'cpu',
  imageSize: 32,
  layers: [{ spec: 'fc2', canonical: 'fc2', shape: [4096] }],
  seed: 0,
  preprocess: 'torchvision',
  store: { layout: 'chw', pool: 'none', dtype: 'float32' },
  ...overrides,
});

async function rejection(promise: Promise<unknown>): Promise<Error> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(Error);
  return err as Error;
}

describe('InferenceHost (a real forked child speaking the protocol)', () => {
  let fake: Awaited<ReturnType<typeof writeFakeChild>>;
  let host: InferenceHost;

  beforeAll(async () => {
    fake = await writeFakeChild();
  });
  afterAll(async () => {
    await fake.remove();
  });
  beforeEach(() => {
    host = new InferenceHost({ childPath: fake.childPath });
  });
  afterEach(async () => {
    await host.close();
  });

  it('forks the child on first use and returns its answer', async () => {
    expect(host.pid).toBeUndefined();
    const info = await host.load(spec({ seed: 5 }));
    expect(host.pid).toEqual(expect.any(Number));
    expect(info).toEqual({ backend: 'cpu', backendReason: `pid ${host.pid}`, weights: { description: 'random, seed 5' }, loadMs: 1 });
  });

  it('sends 8-bit pixels as a Uint8Array and gets Float32Arrays back', async () => {
    await host.load(spec());
    const result = await host.infer(new Uint8Array([1, 0, 2, 255]), 2);
    expect(result.outputs).toHaveLength(1);
    const [out] = result.outputs;
    // IPC deserialises into the main realm, not Jest's sandbox: compare the tag, not the constructor.
    expect(Object.prototype.toString.call(out?.data)).toBe('[object Float32Array]');
    expect(Array.from(out?.data ?? [])).toEqual([2, 0, 4, 510]);
    expect(out?.shape).toEqual([2, 2]);
    // The child saw a Uint8Array (it reports -1 otherwise).
    expect(result.memory).toEqual({ numTensors: 1, numBytes: 16 });
  });

  it('matches each answer to its own request when answers come back out of order', async () => {
    await host.load(spec());
    const order: number[] = [];
    const slow = host.infer(new Uint8Array(60).fill(1), 60).then((r) => (order.push(60), r));
    const fast = host.infer(new Uint8Array(5).fill(7), 5).then((r) => (order.push(5), r));
    const mid = host.infer(new Uint8Array(20).fill(3), 20).then((r) => (order.push(20), r));
    const [a, b, c] = (await Promise.all([slow, fast, mid])) as InferResult[];
    expect(order).toEqual([5, 20, 60]);
    expect([a, b, c].map((r) => [r?.inferenceMs, r?.outputs[0]?.data.length, r?.outputs[0]?.data[0]])).toEqual([
      [60, 60, 2],
      [5, 5, 14],
      [20, 20, 6],
    ]);
  });

  it('rethrows a coded child error as a LayertapError with that code, and the child keeps serving', async () => {
    const err = await rejection(host.load(spec({ backend: 'webgpu' })));
    expect(err).toBeInstanceOf(LayertapError);
    expect((err as LayertapError).code).toBe(ErrorCode.BackendUnavailable);
    expect(err.name).toBe('LayertapError');
    expect(err.message).toBe('no GPU adapter');
    const pid = host.pid;
    await expect(host.load(spec())).resolves.toMatchObject({ backend: 'cpu' });
    expect(host.pid).toBe(pid);
  });

  it('rethrows an uncoded child error as a plain Error with the child name', async () => {
    const err = await rejection(host.load(spec({ backend: 'tensorflow' })));
    expect(err).not.toBeInstanceOf(LayertapError);
    expect(err.name).toBe('TypeError');
    expect(err.message).toBe('tfjs-node missing');
    expect((err as { code?: unknown }).code).toBeUndefined();
  });

  it('rejects every pending request with inference_failed when the child crashes, and starts a fresh child next', async () => {
    await host.load(spec());
    const firstPid = host.pid!;
    const inFlight = host.infer(new Uint8Array(4), 200);
    const crash = host.load(spec({ seed: 13 }));
    const [e1, e2] = await Promise.all([rejection(inFlight), rejection(crash)]);
    for (const err of [e1, e2]) {
      expect(err).toBeInstanceOf(TransientError);
      expect((err as TransientError).code).toBe(ErrorCode.InferenceFailed);
      expect(err.message).toBe('inference process exited (code 3, signal null)');
    }
    expect(e1).toBe(e2);
    expect(host.pid).toBeUndefined();
    expect(isAlive(firstPid)).toBe(false);

    const info = await host.load(spec({ seed: 2 }));
    expect(host.pid).toEqual(expect.any(Number));
    expect(host.pid).not.toBe(firstPid);
    expect(info.backendReason).toBe(`pid ${host.pid}`);
  });

  it('reports a crash during inference the same way', async () => {
    await host.load(spec());
    const err = await rejection(host.infer(new Uint8Array(1), 0));
    expect((err as TransientError).code).toBe(ErrorCode.InferenceFailed);
    expect(err.message).toBe('inference process exited (code 4, signal null)');
    await expect(host.load(spec())).resolves.toMatchObject({ backend: 'cpu' });
  });

  it('reports a child killed by a signal', async () => {
    await host.load(spec());
    const pending = host.infer(new Uint8Array(2), 500);
    process.kill(host.pid!, 'SIGKILL');
    const err = await rejection(pending);
    expect((err as TransientError).code).toBe(ErrorCode.InferenceFailed);
    expect(err.message).toBe('inference process exited (code null, signal SIGKILL)');
  });

  it('close() stops the child and can be called again', async () => {
    await host.load(spec());
    const pid = host.pid!;
    await host.close();
    expect(host.pid).toBeUndefined();
    expect(isAlive(pid)).toBe(false);
    await host.close();
    await new InferenceHost({ childPath: fake.childPath }).close();
  });
});
