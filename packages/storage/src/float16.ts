// IEEE 754 binary16 <-> binary32 conversion on bit patterns: Node 20 has no Float16Array or Math.f16round.

/**
 * The float16 bit pattern nearest to the float32 with bit pattern `bits` (round to nearest, ties to even):
 * overflow gives ±infinity, tiny values give subnormals or ±0, NaN stays NaN (quiet, top payload bits kept).
 */
export function float32BitsToFloat16Bits(bits: number): number {
  const sign = (bits >>> 16) & 0x8000;
  const abs = bits & 0x7fffffff;
  if (abs >= 0x7f800000) return sign | (abs > 0x7f800000 ? 0x7e00 | ((abs >>> 13) & 0x3ff) : 0x7c00);
  // 65520 is halfway between 65504 (largest half) and 65536; ties to even round it up to infinity.
  if (abs >= 0x477ff000) return sign | 0x7c00;
  if (abs >= 0x38800000) {
    // Normal half: rebias the exponent (127 -> 15) and round the 13 dropped mantissa bits; a carry out of the
    // mantissa correctly bumps the exponent.
    const rebiased = abs - 0x38000000;
    return sign | ((rebiased + 0xfff + ((rebiased >>> 13) & 1)) >>> 13);
  }
  // At most 2^-25, half the smallest subnormal: ties to even give zero.
  if (abs <= 0x33000000) return sign;
  // Subnormal half: the value in units of 2^-24 is the full mantissa shifted right by 126 - exponent (14..24).
  const shift = 126 - (abs >>> 23);
  const mantissa = (abs & 0x7fffff) | 0x800000;
  const halfway = 1 << (shift - 1);
  const rest = mantissa & ((halfway << 1) - 1);
  let units = mantissa >>> shift;
  if (rest > halfway || (rest === halfway && (units & 1) === 1)) units++;
  return sign | units;
}

/** The float32 bit pattern of the float16 with bit pattern `half` (exact: every half is a float32). */
export function float16BitsToFloat32Bits(half: number): number {
  const sign = (half & 0x8000) << 16;
  const exponent = (half >>> 10) & 0x1f;
  const mantissa = half & 0x3ff;
  if (exponent === 0x1f) return (sign | 0x7f800000 | (mantissa << 13)) >>> 0;
  if (exponent !== 0) return (sign | ((exponent + 112) << 23) | (mantissa << 13)) >>> 0;
  if (mantissa === 0) return sign >>> 0;
  // Subnormal half: normalise into a float32 exponent.
  let e = 113;
  let m = mantissa;
  while ((m & 0x400) === 0) {
    m <<= 1;
    e--;
  }
  return (sign | (e << 23) | ((m & 0x3ff) << 13)) >>> 0;
}

/**
 * Float32 values to float16 bit patterns (round to nearest, ties to even), into `out` when given (same
 * length). Values whose half is normal or zero (nearly all activations) are converted inline with integer
 * operations and no data-dependent branch; the rest go through `float32BitsToFloat16Bits`.
 */
export function float32ToFloat16Bits(values: Float32Array, out: Uint16Array = new Uint16Array(values.length)): Uint16Array {
  if (out.length !== values.length) throw new RangeError(`output holds ${out.length} values, the input ${values.length}`);
  // Signed 32-bit views keep every operation below in V8's int32 arithmetic (a Uint32Array element above 2^31
  // would be a double).
  const bits = new Int32Array(values.buffer, values.byteOffset, values.length);
  const n = bits.length;
  for (let i = 0; i < n; i++) {
    const b = bits[i] as number;
    const abs = b & 0x7fffffff;
    const sign = (b >> 16) & 0x8000;
    // Normal halves: |x| in [2^-14, 65520), i.e. abs in [0x38800000, 0x477ff000). Without a branch on it:
    // activations after a ReLU are zero or not about at random, which a branch predictor cannot learn.
    const fromMin = abs - 0x38800000;
    const normal = ~((fromMin | (0x0efff000 - 1 - fromMin)) >> 31);
    const rebiased = abs - 0x38000000;
    const half = sign | (normal & ((rebiased + 0xfff + ((rebiased >> 13) & 1)) >> 13));
    // Not normal and not rounding to zero (subnormal halves, overflow, infinities, NaN): rare, exact path.
    if ((~normal & ((0x33000000 - abs) >> 31)) !== 0) out[i] = float32BitsToFloat16Bits(b >>> 0);
    else out[i] = half;
  }
  return out;
}

let halfTable: Uint32Array | undefined;

/** Float16 bit patterns to float32 values (exact), through a 65,536-entry table of float32 bit patterns. */
export function float16BitsToFloat32(halves: Uint16Array): Float32Array {
  if (!halfTable) {
    halfTable = new Uint32Array(65536);
    for (let h = 0; h < 65536; h++) halfTable[h] = float16BitsToFloat32Bits(h);
  }
  const table = halfTable;
  const out = new Float32Array(halves.length);
  const bits = new Uint32Array(out.buffer);
  for (let i = 0; i < halves.length; i++) bits[i] = table[halves[i] as number] as number;
  return out;
}

/** bfloat16 bit patterns to float32 values (exact: they are a float32's upper 16 bits). */
export function bfloat16BitsToFloat32(halves: Uint16Array): Float32Array {
  const out = new Float32Array(halves.length);
  const bits = new Uint32Array(out.buffer);
  for (let i = 0; i < halves.length; i++) bits[i] = (halves[i] as number) << 16;
  return out;
}
