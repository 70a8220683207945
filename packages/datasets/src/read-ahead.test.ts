import { readAhead } from './read-ahead';

const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('readAhead', () => {
  it('yields in order with at most `ahead` calls under way', async () => {
    let running = 0;
    let most = 0;
    const out: number[] = [];
    // Later items finish first: the order still follows the input.
    for await (const v of readAhead([1, 2, 3, 4, 5, 6, 7], 3, async (n) => {
      running++;
      most = Math.max(most, running);
      await tick(40 - n * 5);
      running--;
      return n * 10;
    })) {
      out.push(v);
    }
    expect(out).toEqual([10, 20, 30, 40, 50, 60, 70]);
    expect(most).toBe(3);
  });

  it('passes on the first failure in order, and a later failure is not left unhandled', async () => {
    const seen: number[] = [];
    const run = async () => {
      for await (const v of readAhead([1, 2, 3], 3, async (n) => {
        if (n === 3) throw new Error('three failed first');
        await tick(20);
        if (n === 2) throw new Error('two failed');
        return n;
      })) {
        seen.push(v);
      }
    };
    await expect(run()).rejects.toThrow('two failed');
    expect(seen).toEqual([1]);
  });
});
