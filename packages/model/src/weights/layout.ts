// Moving weights between torchvision's layout and TF's. Pure functions on C-order float32 arrays.
import { AVGPOOL_SIZE } from '../models/vgg16/layers';

/** Channels of block5_pool, whose (C,H,W) / (H,W,C) flatten fc1 reads. */
const FLATTEN_CHANNELS = 512;
const TILE = 64;

/**
 * torch conv weight [out, in, kh, kw] -> TF kernel [kh, kw, in, out] (numpy `transpose(2, 3, 1, 0)`).
 */
export function torchConvToTf(data: Float32Array, shape: readonly number[]): { data: Float32Array; shape: number[] } {
  const [out = 0, inputs = 0, kh = 0, kw = 0] = shape;
  const result = new Float32Array(data.length);
  const taps = kh * kw;
  for (let o = 0; o < out; o++) {
    for (let i = 0; i < inputs; i++) {
      const src = (o * inputs + i) * taps;
      for (let t = 0; t < taps; t++) result[(t * inputs + i) * out + o] = data[src + t] as number;
    }
  }
  return { data: result, shape: [kh, kw, inputs, out] };
}

/** TF kernel [kh, kw, in, out] -> torch conv weight [out, in, kh, kw] (numpy `transpose(3, 2, 0, 1)`). */
export function tfConvToTorch(data: Float32Array, shape: readonly number[]): { data: Float32Array; shape: number[] } {
  const [kh = 0, kw = 0, inputs = 0, out = 0] = shape;
  const result = new Float32Array(data.length);
  const taps = kh * kw;
  for (let t = 0; t < taps; t++) {
    for (let i = 0; i < inputs; i++) {
      const src = (t * inputs + i) * out;
      for (let o = 0; o < out; o++) result[(o * inputs + i) * taps + t] = data[src + o] as number;
    }
  }
  return { data: result, shape: [out, inputs, kh, kw] };
}

/**
 * For fc1: the torchvision column (C,H,W flatten of block5_pool) that each TF row ((H,W,C) flatten) reads.
 * Row `(h*7 + w)*512 + c` is column `c*49 + h*7 + w`.
 */
export function fc1ColumnOfRow(): Uint32Array {
  const side = AVGPOOL_SIZE;
  const rows = new Uint32Array(FLATTEN_CHANNELS * side * side);
  for (let h = 0; h < side; h++)
    for (let w = 0; w < side; w++)
      for (let c = 0; c < FLATTEN_CHANNELS; c++) rows[(h * side + w) * FLATTEN_CHANNELS + c] = c * side * side + h * side + w;
  return rows;
}

/** Whether a dense weight of these (torch [out, in]) dimensions is fc1 reading the flattened block5_pool. */
function readsFlatten(inputs: number): boolean {
  return inputs === FLATTEN_CHANNELS * AVGPOOL_SIZE * AVGPOOL_SIZE;
}

/**
 * torch Linear weight [out, in] -> TF Dense kernel [in, out]. When `permuteFlatten` (fc1), TF row r takes torch
 * column `fc1ColumnOfRow()[r]`, turning torchvision's (C,H,W) flatten order into Keras' (H,W,C). Tiled: fc1
 * has 102M values and a naive strided transpose spends most of its time in cache misses.
 */
export function torchDenseToTf(
  data: Float32Array,
  shape: readonly number[],
  permuteFlatten: boolean,
): { data: Float32Array; shape: number[] } {
  const [out = 0, inputs = 0] = shape;
  const columns = permuteFlatten && readsFlatten(inputs) ? fc1ColumnOfRow() : undefined;
  const result = new Float32Array(data.length);
  for (let r0 = 0; r0 < inputs; r0 += TILE) {
    const r1 = Math.min(inputs, r0 + TILE);
    for (let o0 = 0; o0 < out; o0 += TILE) {
      const o1 = Math.min(out, o0 + TILE);
      for (let r = r0; r < r1; r++) {
        const column = columns ? (columns[r] as number) : r;
        const row = r * out;
        for (let o = o0; o < o1; o++) result[row + o] = data[o * inputs + column] as number;
      }
    }
  }
  return { data: result, shape: [inputs, out] };
}

/** TF Dense kernel [in, out] -> torch Linear weight [out, in]; the inverse of `torchDenseToTf`. */
export function tfDenseToTorch(
  data: Float32Array,
  shape: readonly number[],
  permuteFlatten: boolean,
): { data: Float32Array; shape: number[] } {
  const [inputs = 0, out = 0] = shape;
  const columns = permuteFlatten && readsFlatten(inputs) ? fc1ColumnOfRow() : undefined;
  const result = new Float32Array(data.length);
  for (let r0 = 0; r0 < inputs; r0 += TILE) {
    const r1 = Math.min(inputs, r0 + TILE);
    for (let o0 = 0; o0 < out; o0 += TILE) {
      const o1 = Math.min(out, o0 + TILE);
      for (let r = r0; r < r1; r++) {
        const column = columns ? (columns[r] as number) : r;
        const row = r * out;
        for (let o = o0; o < o1; o++) result[o * inputs + column] = data[row + o] as number;
      }
    }
  }
  return { data: result, shape: [out, inputs] };
}
