// Half-precision weights to float32 (exact: every float16 and bfloat16 value is a float32 value).

let halfTable: Float32Array | undefined;

/** IEEE 754 binary16 bits -> float32, through a 65,536-entry table. */
export function float16ToFloat32(halves: Uint16Array): Float32Array {
  if (!halfTable) {
    halfTable = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) {
      const sign = h & 0x8000 ? -1 : 1;
      const exp = (h >> 10) & 0x1f;
      const mant = h & 0x3ff;
      halfTable[h] =
        exp === 0 ? sign * mant * 2 ** -24 : exp === 31 ? (mant ? NaN : sign * Infinity) : sign * (1 + mant / 1024) * 2 ** (exp - 15);
    }
  }
  const table = halfTable;
  const out = new Float32Array(halves.length);
  for (let i = 0; i < halves.length; i++) out[i] = table[halves[i] as number] as number;
  return out;
}

/** bfloat16 bits -> float32: they are the float32's upper 16 bits. */
export function bfloat16ToFloat32(halves: Uint16Array): Float32Array {
  const out = new Float32Array(halves.length);
  const bits = new Uint32Array(out.buffer);
  for (let i = 0; i < halves.length; i++) bits[i] = (halves[i] as number) << 16;
  return out;
}
