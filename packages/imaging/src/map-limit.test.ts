import { mapLimit } from './map-limit';

function deferred<T>() {
  let resolve!: (value: T) => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('mapLimit', () => {
  it('keeps results in input order when calls finish out of order', async () => {
    const delays = [30, 5, 20, 0, 10];
    const out = await mapLimit(delays, 2, async (ms, i) => {
      await new Promise((resolve) => setTimeout(resolve, ms));
      return `${i}:${ms}`;
    });
    expect(out).toEqual(['0:30', '1:5', '2:20', '3:0', '4:10']);
  });

  it('never has more than `limit` calls in flight, and starts the next as soon as one settles', async () => {
    const gates = Array.from({ length: 7 }, () => deferred<number>());
    const started: number[] = [];
    let active = 0;
    let peak = 0;
    const done = mapLimit(gates, 3, async (gate, i) => {
      started.push(i);
      active++;
      peak = Math.max(peak, active);
      try {
        return await gate.promise;
      } finally {
        active--;
      }
    });
    await tick();
    expect(started).toEqual([0, 1, 2]);
    gates[1]?.resolve(1);
    await tick();
    expect(started).toEqual([0, 1, 2, 3]);
    gates.forEach((gate, i) => gate.resolve(i));
    expect(await done).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(peak).toBe(3);
  });

  it('handles an empty list and a limit larger than the list', async () => {
    expect(await mapLimit([], 4, async () => 1)).toEqual([]);
    expect(await mapLimit([1, 2], 100, async (x) => x * 2)).toEqual([2, 4]);
    expect(await mapLimit([1, 2, 3], Infinity, async (x) => x + 1)).toEqual([2, 3, 4]);
  });

  it('on a failure starts nothing new and rejects with the first error once in-flight calls settle', async () => {
    const calls: number[] = [];
    let slowFinished = false;
    const err = await mapLimit([0, 1, 2, 3, 4, 5], 2, async (x) => {
      calls.push(x);
      if (x === 0) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        slowFinished = true;
        return x;
      }
      if (x === 1) throw new Error('boom 1');
      return x;
    }).catch((e: unknown) => e);
    expect((err as Error).message).toBe('boom 1');
    expect(calls).toEqual([0, 1]);
    expect(slowFinished).toBe(true);
  });

  it('treats a synchronous throw like a rejection', async () => {
    const fn = (x: number): Promise<number> => {
      if (x === 2) throw new TypeError('sync');
      return Promise.resolve(x);
    };
    await expect(mapLimit([1, 2, 3], 1, fn)).rejects.toThrow('sync');
  });

  it('refuses a limit that is not a positive integer', async () => {
    for (const limit of [0, -1, 1.5, NaN]) {
      await expect(mapLimit([1], limit, async (x) => x)).rejects.toThrow(RangeError);
    }
  });
});
