import { getModel } from './models';
import { HOOKED_COPIES, MAX_AUTO_BATCH, autoBatchSize, budgetedBatchSize, sampleMemoryBytes } from './batch-size';

describe('--batch-size auto', () => {
  it('counts the input, the two largest activations on the way and each hooked output eight times', () => {
    expect(HOOKED_COPIES).toBe(8);
    // block1_pool at 32 px: input 32*32*3, block1 convs 64x32x32 (two of them), pool 64x16x16.
    const expected = 4 * (32 * 32 * 3 + 2 * 64 * 32 * 32 + 8 * 64 * 16 * 16);
    expect(sampleMemoryBytes(['block1_pool'], 32)).toBe(expected);
    // A torchvision spec and a Keras name of the same layer cost the same.
    expect(sampleMemoryBytes(['features.4'], 32)).toBe(expected);
  });

  it('picks the largest batch inside the budget, at least 1 and at most the cap', () => {
    const per = sampleMemoryBytes(['block2_pool'], 224);
    expect(autoBatchSize(['block2_pool'], 224, per * 10 + per - 1)).toBe(10);
    expect(autoBatchSize(['block2_pool'], 224, per * 10)).toBe(10);
    expect(autoBatchSize(['block2_pool'], 224, 1)).toBe(1);
    expect(autoBatchSize(['block5_pool'], 32, 64 * 1024 ** 3)).toBe(MAX_AUTO_BATCH);
  });

  it('gives deeper, smaller layers bigger batches for the same budget', () => {
    const budget = 1024 ** 3;
    expect(autoBatchSize(['block5_pool'], 224, budget)).toBeGreaterThanOrEqual(autoBatchSize(['features.0'], 224, budget));
  });
});

describe('the memory budget as a limit', () => {
  const per = sampleMemoryBytes(['block2_pool'], 224);

  it('runs a batch size asked for as asked when it fits, else the largest that fits', () => {
    expect(budgetedBatchSize(16, ['block2_pool'], 224, per * 16)).toEqual({ batchSize: 16, sampleBytes: per, shrunk: false, overBudget: false });
    expect(budgetedBatchSize(16, ['block2_pool'], 224, per * 16 - 1)).toEqual({ batchSize: 15, sampleBytes: per, shrunk: true, overBudget: false });
    expect(budgetedBatchSize(4, ['block2_pool'], 224, per * 2.5)).toMatchObject({ batchSize: 2, shrunk: true });
  });

  it('runs batches of 1 when one sample is over the budget, and says so', () => {
    expect(budgetedBatchSize(8, ['block2_pool'], 224, per - 1)).toEqual({ batchSize: 1, sampleBytes: per, shrunk: true, overBudget: true });
    expect(budgetedBatchSize(1, ['block2_pool'], 224, per - 1)).toEqual({ batchSize: 1, sampleBytes: per, shrunk: false, overBudget: true });
  });

  it('auto is the largest batch that fits', () => {
    expect(budgetedBatchSize('auto', ['block2_pool'], 224, per * 10)).toEqual({ batchSize: 10, sampleBytes: per, shrunk: false, overBudget: false });
  });

  it('every VGG16 layer at 224 px: about 0.9 GiB per sample, 9 of them in the default 8 GiB budget', () => {
    const all = getModel().layers.map((l) => l.name);
    const bytes = sampleMemoryBytes(all, 224);
    expect(bytes / 1024 ** 3).toBeCloseTo(0.88, 2);
    expect(budgetedBatchSize(16, all, 224, 8 * 1024 ** 3)).toMatchObject({ batchSize: 9, shrunk: true });
  });
});
