import { float16BitsToFloat32, float16BitsToFloat32Bits, float32BitsToFloat16Bits, float32ToFloat16Bits } from './float16';

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
function bitsOf(x: number): number {
  f32[0] = x;
  return u32[0] as number;
}
function floatOf(bits: number): number {
  u32[0] = bits;
  return f32[0] as number;
}
function half(x: number): number {
  return float32BitsToFloat16Bits(bitsOf(x));
}
function value(h: number): number {
  return floatOf(float16BitsToFloat32Bits(h));
}

/** Deterministic PRNG (mulberry32) so a failure can be reproduced. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

/**
 * Independent check that `h` is the correctly rounded half of float32 `x`: no other half is nearer, and on a
 * tie the even one wins. Only the neighbours of `h` need checking since halves are ordered like integers.
 */
function isCorrectlyRounded(x: number, h: number): boolean {
  const sign = h & 0x8000;
  const magnitude = h & 0x7fff;
  const ax = Math.abs(x);
  if (magnitude === 0x7c00) return ax >= 65520;
  if (ax >= 65520) return false;
  if ((x < 0) !== (sign !== 0) && magnitude !== 0) return false;
  const candidate = Math.abs(value(h));
  for (const neighbour of [magnitude - 1, magnitude + 1]) {
    if (neighbour < 0) continue;
    // The value past the largest finite half is 65536, the "next" value for rounding purposes.
    const other = neighbour === 0x7c00 ? 65536 : Math.abs(value(neighbour));
    const dCandidate = Math.abs(ax - candidate);
    const dOther = Math.abs(ax - other);
    if (dOther < dCandidate) return false;
    if (dOther === dCandidate && (magnitude & 1) === 1) return false;
  }
  return true;
}

describe('float32 -> float16', () => {
  it('converts known values', () => {
    expect(half(0)).toBe(0x0000);
    expect(half(-0)).toBe(0x8000);
    expect(half(1)).toBe(0x3c00);
    expect(half(-2)).toBe(0xc000);
    expect(half(0.5)).toBe(0x3800);
    expect(half(65504)).toBe(0x7bff); // largest finite half
    expect(half(65519.99)).toBe(0x7bff);
    expect(half(65520)).toBe(0x7c00); // halfway to 65536: ties to even -> infinity
    expect(half(1e6)).toBe(0x7c00);
    expect(half(-1e6)).toBe(0xfc00);
    expect(half(Infinity)).toBe(0x7c00);
    expect(half(-Infinity)).toBe(0xfc00);
    expect(half(2 ** -14)).toBe(0x0400); // smallest normal, 2^-14
    expect(half(6.1e-5)).toBe(0x03ff); // just below: largest subnormal
    expect(half(2 ** -24)).toBe(0x0001); // smallest subnormal, 2^-24
    expect(half(5.96e-8)).toBe(0x0001);
    expect(half(2 ** -25)).toBe(0x0000); // 2^-25: tie between 0 and 2^-24 -> even (0)
    expect(half(2.99e-8)).toBe(0x0001); // just above the tie
    expect(half(1 / 3)).toBe(0x3555); // 0.333251953125
    expect(half(0.1)).toBe(0x2e66);
    expect(half(1 + 2 ** -11)).toBe(0x3c00); // tie, 1.0 is even
    expect(half(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie, rounds up to even
    expect(half(2049)).toBe(0x6800); // 2048 (tie, even)
    expect(half(2051)).toBe(0x6802); // 2052 (tie, even)
  });

  it('keeps NaN a NaN', () => {
    const h = half(NaN);
    expect(h & 0x7c00).toBe(0x7c00);
    expect(h & 0x3ff).not.toBe(0);
    // A NaN whose payload lives only in the low bits must not become infinity.
    expect(float32BitsToFloat16Bits(0x7f800001) & 0x3ff).not.toBe(0);
    expect(float32BitsToFloat16Bits(0xff800001) & 0x8000).toBe(0x8000);
  });

  it('rounds every half back to itself, and every midpoint to even', () => {
    for (let h = 0; h < 0x10000; h++) {
      const exponent = (h >>> 10) & 0x1f;
      if (exponent === 0x1f && (h & 0x3ff) !== 0) continue; // NaN
      if (half(value(h)) !== h) throw new Error(`0x${h.toString(16)} does not round-trip`);
      // Midpoints between neighbours of the same sign (exact in float32) and a float32 ulp either side.
      if ((h & 0x7fff) >= 0x7bff) continue;
      const lo = value(h);
      const hi = value(h + 1);
      const mid = (lo + hi) / 2;
      const even = (h & 1) === 0 ? h : h + 1;
      if (half(mid) !== even) throw new Error(`midpoint of 0x${h.toString(16)}: got 0x${half(mid).toString(16)}`);
      const midBits = bitsOf(mid);
      const towardZero = floatOf(midBits - 1);
      const awayFromZero = floatOf(midBits + 1);
      if (half(towardZero) !== h || half(awayFromZero) !== h + 1) throw new Error(`around midpoint of 0x${h.toString(16)}`);
    }
  });

  it('is correctly rounded for many random floats (brute-force check against the neighbours)', () => {
    const next = prng(42);
    for (let i = 0; i < 200_000; i++) {
      // Half of the samples anywhere in float32, half where float16 is interesting (exponents 2^-26 .. 2^17).
      const bits = i % 2 === 0 ? next() : ((next() & 0x80000000) | (((101 + (next() % 43)) << 23) >>> 0) | (next() & 0x7fffff)) >>> 0;
      const x = floatOf(bits);
      if (Number.isNaN(x)) continue;
      const h = float32BitsToFloat16Bits(bits);
      if (!isCorrectlyRounded(x, h)) throw new Error(`${x} (0x${bits.toString(16)}) -> 0x${h.toString(16)}`);
    }
  });

  it('converts arrays, including subarrays at an offset', () => {
    const values = new Float32Array([9, 1, -2, 65504, 1e9, 0.5]);
    expect(Array.from(float32ToFloat16Bits(values.subarray(1)))).toEqual([0x3c00, 0xc000, 0x7bff, 0x7c00, 0x3800]);
  });
});

describe('float32ToFloat16Bits (the array fast path)', () => {
  it('gives exactly what the per-value conversion gives, at every boundary of its normal range and at random', () => {
    const edges = [0x38800000, 0x387fffff, 0x477ff000, 0x477fefff, 0x477fffff, 0x7f800000, 0x7fc00000, 0x33000000, 0x33000001, 0x38000000, 0, 1];
    const patterns: number[] = [];
    for (const e of edges) for (const d of [-2, -1, 0, 1, 2]) for (const sign of [0, 0x80000000]) patterns.push(((e + d) | sign) >>> 0);
    let s = 12345;
    for (let i = 0; i < 200_000; i++) {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      patterns.push(s);
    }
    const values = new Float32Array(new Uint32Array(patterns).buffer);
    const out = float32ToFloat16Bits(values);
    patterns.forEach((bits, i) => {
      if (out[i] !== float32BitsToFloat16Bits(bits)) throw new Error(`0x${bits.toString(16)}: ${out[i]} != ${float32BitsToFloat16Bits(bits)}`);
    });
    // Into a given array.
    const into = new Uint16Array(values.length);
    expect(float32ToFloat16Bits(values, into)).toBe(into);
    expect(into).toEqual(out);
  });
});

describe('float16 -> float32', () => {
  it('decodes known values exactly', () => {
    const halves = new Uint16Array([0x0000, 0x8000, 0x3c00, 0x7bff, 0x0400, 0x03ff, 0x0001, 0x7c00, 0xfc00, 0x3555]);
    expect(Array.from(float16BitsToFloat32(halves))).toEqual([
      0, -0, 1, 65504, 2 ** -14, 1023 * 2 ** -24, 2 ** -24, Infinity, -Infinity, 0.333251953125,
    ]);
    expect(Object.is(float16BitsToFloat32(new Uint16Array([0x8000]))[0], -0)).toBe(true);
    expect(float16BitsToFloat32(new Uint16Array([0x7e00]))[0]).toBeNaN();
  });

  it('decodes every half to the value its bits define', () => {
    for (let h = 0; h < 0x10000; h++) {
      const sign = h & 0x8000 ? -1 : 1;
      const exponent = (h >>> 10) & 0x1f;
      const fraction = h & 0x3ff;
      const expected =
        exponent === 0 ? sign * fraction * 2 ** -24 : exponent === 31 ? (fraction ? NaN : sign * Infinity) : sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
      const got = value(h);
      if (!Object.is(got, expected) && !(Number.isNaN(got) && Number.isNaN(expected))) throw new Error(`0x${h.toString(16)}: ${got} != ${expected}`);
    }
  });
});
