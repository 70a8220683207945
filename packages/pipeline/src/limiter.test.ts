import { createLimiter } from './limiter';

/** A task whose completion the test controls. */
function deferred<T>() {
  let resolve!: (value: T) => void;
  let reject!: (err: Error) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

const tick = () => new Promise((r) => setImmediate(r));

describe('createLimiter', () => {
  it('never runs more than the limit at once, and starts the rest in submission order', async () => {
    const run = createLimiter(2);
    const gates = Array.from({ length: 5 }, () => deferred<number>());
    const started: number[] = [];
    let active = 0;
    let peak = 0;
    const results = gates.map((gate, i) =>
      run(async () => {
        started.push(i);
        active++;
        peak = Math.max(peak, active);
        try {
          return await gate.promise;
        } finally {
          active--;
        }
      }),
    );
    await tick();
    expect(started).toEqual([0, 1]);

    gates[1]!.resolve(10);
    await tick();
    expect(started).toEqual([0, 1, 2]);

    gates[0]!.resolve(0);
    await tick();
    expect(started).toEqual([0, 1, 2, 3]);

    for (const [i, gate] of gates.entries()) gate.resolve(i * 100);
    expect(await Promise.all(results)).toEqual([0, 10, 200, 300, 400]);
    expect(started).toEqual([0, 1, 2, 3, 4]);
    expect(peak).toBe(2);
  });

  it('passes a rejection to its caller and frees the slot for the next task', async () => {
    const run = createLimiter(1);
    const failing = run(() => Promise.reject(new Error('boom')));
    const next = run(async () => 'after');
    await expect(failing).rejects.toThrow('boom');
    await expect(next).resolves.toBe('after');
  });

  it('frees the slot when a task throws synchronously inside an async function', async () => {
    const run = createLimiter(1);
    const results = await Promise.allSettled([
      run(async () => {
        throw new TypeError('sync throw');
      }),
      run(async () => 42),
    ]);
    expect(results[0]).toMatchObject({ status: 'rejected', reason: expect.objectContaining({ name: 'TypeError', message: 'sync throw' }) });
    expect(results[1]).toEqual({ status: 'fulfilled', value: 42 });
  });

  it('runs many tasks with a peak of exactly the limit', async () => {
    const run = createLimiter(3);
    let active = 0;
    let peak = 0;
    const out = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        run(async () => {
          active++;
          peak = Math.max(peak, active);
          await new Promise((r) => setTimeout(r, 1 + (i % 3)));
          active--;
          return i;
        }),
      ),
    );
    expect(out).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(peak).toBe(3);
    expect(active).toBe(0);
  });
});
