// safetensors weights: the format's one parser (`@layertap/storage/formats`), with weights' errors, and each
// tensor as float32 (F32 copied; F16, BF16 and F64 converted).
import { ErrorCode, ValidationError } from '@layertap/contracts';
import { bfloat16BitsToFloat32, float16BitsToFloat32, looksLikeSafetensors, parseSafetensorsHeader, type SafetensorsHeaderEntry } from '@layertap/storage/formats';

export { looksLikeSafetensors };

/** One tensor of a safetensors header; `begin`/`end` are absolute byte offsets in the file. */
export type SafetensorsEntry = SafetensorsHeaderEntry;

export interface SafetensorsHeader {
  entries: SafetensorsEntry[];
  /** `__metadata__`: free-form string -> string provenance. */
  metadata: Record<string, string>;
}

/**
 * Parses and checks the header of a safetensors file; a broken one is `invalid_weights` naming `source`.
 * `bytes` is the whole file, or its first `8 + header length` bytes with `fileSize` the whole file's size.
 */
export function parseSafetensors(bytes: Uint8Array, source: string, fileSize: number = bytes.byteLength): SafetensorsHeader {
  try {
    return parseSafetensorsHeader(bytes, fileSize);
  } catch (err) {
    throw new ValidationError(ErrorCode.InvalidWeights, `${source}: ${(err as Error).message}`);
  }
}

/** A tensor's values as float32: F32 copied, F16/BF16/F64 converted. Other dtypes are refused. */
export function decodeSafetensorsTensor(bytes: Uint8Array, entry: SafetensorsEntry, source: string): Float32Array {
  const start = bytes.byteOffset + entry.begin;
  const count = entry.shape.reduce((a, b) => a * b, 1);
  // `slice` copies into a fresh, aligned buffer.
  const raw = bytes.buffer.slice(start, start + (entry.end - entry.begin));
  switch (entry.dtype) {
    case 'F32':
      return new Float32Array(raw);
    case 'F64':
      return Float32Array.from(new Float64Array(raw));
    case 'F16':
      return float16BitsToFloat32(new Uint16Array(raw, 0, count));
    case 'BF16':
      return bfloat16BitsToFloat32(new Uint16Array(raw, 0, count));
    default:
      throw new ValidationError(
        ErrorCode.InvalidWeights,
        `${source}: tensor ${entry.name} is ${entry.dtype}; layertap reads F32, F16, BF16 and F64 weights`,
      );
  }
}

/** A tensor to write: float32 values in C order of `shape`. */
export interface NamedTensor {
  name: string;
  shape: readonly number[];
  data: Float32Array;
}
