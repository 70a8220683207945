import { decodeImage } from './decode';
import { fixture, reference, sha256 } from './__tests__/fixtures';
import { bilinearCoefficients, resizeBilinear } from './resize-bilinear';

describe('bilinearCoefficients', () => {
  it('halving averages three input pixels with Pillow weights (antialiased triangle)', () => {
    // Output pixel 0 of 4 -> 2: centre 1.0, support 2, taps at x = 0, 1, 2 with weights 0.75, 0.75, 0.25.
    const { taps, weights, bounds } = bilinearCoefficients(4, 2);
    expect(taps).toBe(5);
    expect(Array.from(bounds)).toEqual([0, 3, 1, 3]);
    const one = 1 << 22;
    expect(Array.from(weights.subarray(0, 3))).toEqual([
      Math.trunc(0.5 + (0.75 / 1.75) * one),
      Math.trunc(0.5 + (0.75 / 1.75) * one),
      Math.trunc(0.5 + (0.25 / 1.75) * one),
    ]);
  });

  it('enlarging interpolates between the two nearest pixel centres', () => {
    // 2 -> 4: output centres at 0.25, 0.75, 1.25, 1.75 in input coordinates; the outer two only see one pixel.
    const { weights, bounds, taps } = bilinearCoefficients(2, 4);
    expect(Array.from(bounds)).toEqual([0, 1, 0, 2, 0, 2, 1, 1]);
    const w = (i: number): number[] => Array.from(weights.subarray(i * taps, i * taps + 2)).map((k) => k / (1 << 22));
    expect(w(1)[0]).toBeCloseTo(0.75, 6); // centre 0.75 - 0.5 = 0.25 past pixel 0
    expect(w(1)[1]).toBeCloseTo(0.25, 6);
  });
});

describe('resizeBilinear', () => {
  const gradient = (w: number, h: number) => {
    const data = new Uint8Array(w * h * 3);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) data.set([x * 7, y * 11, (x * y) % 256], (y * w + x) * 3);
    return { data, width: w, height: h };
  };

  it('matches Pillow Image.resize(BILINEAR) bit for bit on a photo, shrinking, enlarging and per axis', async () => {
    const { rgb } = await decodeImage(fixture('landscape-500x375.jpg'));
    const expected = reference.files['landscape-500x375.jpg']?.pilBilinear ?? {};
    expect(Object.keys(expected)).toHaveLength(6);
    for (const [size, hash] of Object.entries(expected)) {
      const [w, h] = size.split('x').map(Number) as [number, number];
      const out = resizeBilinear(rgb, w, h);
      expect({ size, hash: sha256(out.data) }).toEqual({ size, hash });
    }
  });

  it('returns the same pixels when the size does not change', () => {
    const image = gradient(9, 5);
    expect(Array.from(resizeBilinear(image, 9, 5).data)).toEqual(Array.from(image.data));
  });

  it('keeps a constant image constant', () => {
    const image = { data: new Uint8Array(17 * 13 * 3).fill(77), width: 17, height: 13 };
    for (const [w, h] of [[5, 4], [40, 31], [17, 2]] as const) {
      expect(new Set(resizeBilinear(image, w, h).data)).toEqual(new Set([77]));
    }
  });

  it('computes a region equal to cropping the full resize', () => {
    const image = gradient(50, 37);
    for (const [w, h, box] of [
      [34, 25, { left: 5, top: 1, width: 22, height: 22 }],
      [80, 60, { left: 0, top: 59, width: 80, height: 1 }],
      [50, 20, { left: 10, top: 3, width: 7, height: 9 }], // vertical pass only
      [20, 37, { left: 4, top: 30, width: 3, height: 7 }], // horizontal pass only
    ] as const) {
      const full = resizeBilinear(image, w, h);
      const region = resizeBilinear(image, w, h, box);
      const expected: number[] = [];
      for (let y = box.top; y < box.top + box.height; y++) {
        expected.push(...full.data.subarray((y * w + box.left) * 3, (y * w + box.left + box.width) * 3));
      }
      expect(region.width).toBe(box.width);
      expect(region.height).toBe(box.height);
      expect(Array.from(region.data)).toEqual(expected);
    }
  });

  it('refuses regions outside the output and data of the wrong length', () => {
    const image = gradient(10, 10);
    expect(() => resizeBilinear(image, 5, 5, { left: 1, top: 0, width: 5, height: 5 })).toThrow(RangeError);
    expect(() => resizeBilinear(image, 0, 5)).toThrow(RangeError);
    expect(() => resizeBilinear({ ...image, width: 11 }, 5, 5)).toThrow(RangeError);
  });
});
