import { adaptivePoolBins, adaptivePoolMatrix } from './adaptive-avg-pool';

describe('adaptive average pooling', () => {
  it('uses PyTorch bins, overlapping when the size does not divide', () => {
    expect(adaptivePoolBins(14, 7)).toEqual([[0, 2], [2, 4], [4, 6], [6, 8], [8, 10], [10, 12], [12, 14]]);
    expect(adaptivePoolBins(3, 7)).toEqual([[0, 1], [0, 1], [0, 2], [1, 2], [1, 3], [2, 3], [2, 3]]);
    expect(adaptivePoolBins(1, 7)).toEqual(Array(7).fill([0, 1]));
    expect(adaptivePoolBins(10, 7)[1]).toEqual([1, 3]);
    const m = adaptivePoolMatrix(3, 7);
    expect(Array.from(m.slice(2 * 3, 3 * 3))).toEqual([0.5, 0.5, 0]);
  });
});
