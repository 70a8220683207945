import type { Layout, Pool } from '@layertap/contracts';

/** The shape `globalPool` gives: (C,) for a (C,H,W) or (H,W,C) array under a pooling mode, else the shape itself. */
export function pooledShape(shape: readonly number[], layout: Layout, mode: Pool): number[] {
  if (mode === 'none' || shape.length !== 3) return [...shape];
  return [(layout === 'chw' ? shape[0] : shape[2]) as number];
}

/**
 * Global spatial pooling of one sample's array: (C,H,W) or (H,W,C) -> (C,) by mean or max over H and W.
 * Dense outputs (already (C,)) and `none` pass through unchanged.
 */
export function globalPool(data: Float32Array, shape: readonly number[], layout: Layout, mode: Pool): { data: Float32Array; shape: number[] } {
  if (mode === 'none' || shape.length !== 3) return { data, shape: [...shape] };
  const [a = 0, b = 0, c = 0] = shape;
  const channels = layout === 'chw' ? a : c;
  const positions = layout === 'chw' ? b * c : a * b;
  const out = new Float32Array(channels);
  if (layout === 'chw') {
    for (let ch = 0; ch < channels; ch++) {
      const base = ch * positions;
      let acc = mode === 'max' ? -Infinity : 0; // a JS number: the mean is summed in float64
      for (let p = 0; p < positions; p++) {
        const v = data[base + p] as number;
        acc = mode === 'max' ? (v > acc ? v : acc) : acc + v;
      }
      out[ch] = mode === 'max' ? acc : acc / positions;
    }
  } else {
    // Summed in float64 as in the chw branch, so both layouts give the same numbers.
    const acc = mode === 'max' ? new Float64Array(channels).fill(-Infinity) : new Float64Array(channels);
    for (let p = 0; p < positions; p++) {
      const base = p * channels;
      for (let ch = 0; ch < channels; ch++) {
        const v = data[base + ch] as number;
        if (mode === 'max') {
          if (v > (acc[ch] as number)) acc[ch] = v;
        } else acc[ch] = (acc[ch] as number) + v;
      }
    }
    for (let ch = 0; ch < channels; ch++) out[ch] = mode === 'max' ? (acc[ch] as number) : (acc[ch] as number) / positions;
  }
  return { data: out, shape: [channels] };
}
