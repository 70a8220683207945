import { MAX_AUTO_BATCH, autoBatchSize, sampleMemoryBytes } from './batch-size';

describe('--batch-size auto', () => {
  it('counts the input, the two largest activations on the way and each hooked output three times', () => {
    // block1_pool at 32 px: input 32*32*3, block1 convs 64x32x32 (two of them), pool 64x16x16.
    const expected = 4 * (32 * 32 * 3 + 2 * 64 * 32 * 32 + 3 * 64 * 16 * 16);
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
