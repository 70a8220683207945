import { BatchRunner, type BatchRunnerOptions, type PreparedItem } from './batch-runner';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A runner over `count` items whose pixels are [index] (one byte per image), recording what happened. */
function harness(options: Partial<BatchRunnerOptions<{ batch: number[] }>> & { skip?: Set<number>; inferMs?: number; storeMs?: number } = {}) {
  const events: string[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  let storing = 0;
  let maxStoring = 0;
  const stored: number[][] = [];
  const runner = new BatchRunner<{ batch: number[] }>({
    batchSize: 3,
    imageValues: 1,
    prepareConcurrency: 2,
    writeConcurrency: 4,
    prepare: async (index) => {
      await sleep(1);
      return options.skip?.has(index) ? undefined : Uint8Array.of(index);
    },
    infer: async (input, n) => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      events.push(`infer ${Array.from(input).join(',')}`);
      expect(input).toHaveLength(n);
      await sleep(options.inferMs ?? 5);
      inFlight--;
      return { batch: Array.from(input) };
    },
    store: async (batch: PreparedItem[], result) => {
      storing++;
      maxStoring = Math.max(maxStoring, storing);
      expect(batch.map((b) => b.index)).toEqual(result.batch);
      await sleep(options.storeMs ?? 1);
      stored.push(result.batch);
      storing--;
    },
    ...options,
  });
  return { runner, events, stored, max: () => ({ inFlight: maxInFlight, storing: maxStoring }) };
}

describe('BatchRunner', () => {
  it('batches items in order, drops the ones that prepare to nothing, and stores every batch once', async () => {
    const h = harness({ skip: new Set([1, 5]) });
    const stats = await h.runner.run(9);
    expect(h.events).toEqual(['infer 0,2,3', 'infer 4,6,7', 'infer 8']);
    expect(h.stored).toEqual([[0, 2, 3], [4, 6, 7], [8]]);
    expect(stats).toMatchObject({ batches: 3, images: 7, stopped: false });
  });

  it('keeps at most `inferenceDepth` batches with the engine, and `writesBehind` batches of writes behind', async () => {
    const deep = harness({ inferMs: 20, storeMs: 30 });
    await deep.runner.run(12);
    expect(deep.max().inFlight).toBe(2);
    // One batch's writes may still run while the next ones infer, plus the one being handed over.
    expect(deep.max().storing).toBeLessThanOrEqual(2);
    const shallow = harness({ inferenceDepth: 1, inferMs: 10 });
    await shallow.runner.run(12);
    expect(shallow.max().inFlight).toBe(1);
  });

  it('stops before the next batch when stop() says so (a cancelled dataset)', async () => {
    let asked = 0;
    const h = harness({ stop: () => ++asked > 1 });
    const stats = await h.runner.run(9);
    expect(h.events).toEqual(['infer 0,1,2']);
    expect(h.stored).toEqual([[0, 1, 2]]);
    expect(stats.stopped).toBe(true);
  });

  it("rejects with the engine's error once everything started has settled, and runs nothing after it", async () => {
    let calls = 0;
    let storesRunning = 0;
    const h = harness({
      infer: async (input) => {
        calls++;
        await sleep(5);
        if (calls === 2) throw new Error('device lost');
        return { batch: Array.from(input) };
      },
      store: async (_batch, result) => {
        storesRunning++;
        await sleep(20);
        storesRunning--;
        void result;
      },
    });
    await expect(h.runner.run(12)).rejects.toThrow('device lost');
    expect(storesRunning).toBe(0);
    expect(calls).toBeLessThanOrEqual(3);
  });

  it('rejects with a write error after the batches in flight have settled', async () => {
    const h = harness({ store: async () => Promise.reject(new Error('disk full')) });
    await expect(h.runner.run(6)).rejects.toThrow('disk full');
  });

  it('rejects at once with the reason when the signal aborts (shutdown)', async () => {
    const controller = new AbortController();
    const h = harness({ signal: controller.signal, inferMs: 200 });
    const running = h.runner.run(9);
    await sleep(20);
    controller.abort(new Error('worker is shutting down'));
    const started = performance.now();
    await expect(running).rejects.toThrow('worker is shutting down');
    // Not after the 200 ms batch: the batch with the engine is abandoned.
    expect(performance.now() - started).toBeLessThan(150);
  });

  it('refuses a batch size that is not a positive integer', () => {
    expect(() => harness({ batchSize: 0 })).toThrow('batchSize must be a positive integer, got 0');
  });
});
