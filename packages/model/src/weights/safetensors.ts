// The safetensors format: an 8-byte little-endian header length N, N bytes of JSON
// (`{"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}`), then the data, with
// offsets relative to the data start. Values are little-endian (as are the hosts Node runs on).
import { ErrorCode, ValidationError } from '@layertap/contracts';
import { bfloat16ToFloat32, float16ToFloat32 } from './float16';

/** One tensor of a safetensors header; `begin`/`end` are absolute byte offsets in the file. */
export interface SafetensorsEntry {
  name: string;
  dtype: string;
  shape: number[];
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  entries: SafetensorsEntry[];
  /** `__metadata__`: free-form string -> string provenance. */
  metadata: Record<string, string>;
}

const BYTES_PER_VALUE: Record<string, number> = { F64: 8, F32: 4, F16: 2, BF16: 2 };
/** Largest header accepted: the format's own reference implementation refuses more than 100 MB. */
const MAX_HEADER_BYTES = 100_000_000;

/** Whether the first bytes of a file of `size` bytes look like safetensors (a sane length, then `{`). */
export function looksLikeSafetensors(head: Uint8Array, size: number): boolean {
  if (head.length < 9) return false;
  const length = readHeaderLength(head);
  return length >= 2 && length <= MAX_HEADER_BYTES && 8 + length <= size && head[8] === 0x7b /* { */;
}

function readHeaderLength(bytes: Uint8Array): number {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return Number(view.getBigUint64(0, true));
}

function invalid(source: string, problem: string): ValidationError {
  return new ValidationError(ErrorCode.InvalidWeights, `${source}: not a valid safetensors file: ${problem}`);
}

/** Parses and checks the header of a whole safetensors file. */
export function parseSafetensors(bytes: Uint8Array, source: string): SafetensorsHeader {
  if (!looksLikeSafetensors(bytes, bytes.length)) throw invalid(source, 'bad header length');
  const length = readHeaderLength(bytes);
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset + 8, length).toString('utf8'));
  } catch (err) {
    throw invalid(source, `header is not JSON (${(err as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw invalid(source, 'header is not a JSON object');
  const dataStart = 8 + length;
  const entries: SafetensorsEntry[] = [];
  let metadata: Record<string, string> = {};
  for (const [name, value] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      metadata = Object.fromEntries(Object.entries((value ?? {}) as Record<string, unknown>).map(([k, v]) => [k, String(v)]));
      continue;
    }
    const info = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const shape = info.shape;
    const offsets = info.data_offsets;
    if (typeof info.dtype !== 'string' || !isIntArray(shape) || !isIntArray(offsets) || offsets.length !== 2) {
      throw invalid(source, `tensor ${JSON.stringify(name)} needs "dtype", "shape" and two "data_offsets"`);
    }
    const [begin = 0, end = 0] = offsets;
    if (begin > end || dataStart + end > bytes.length) {
      throw invalid(source, `tensor ${JSON.stringify(name)} lies outside the file (offsets ${begin}-${end})`);
    }
    const width = BYTES_PER_VALUE[info.dtype];
    const count = shape.reduce((a, b) => a * b, 1);
    if (width !== undefined && count * width !== end - begin) {
      throw invalid(source, `tensor ${JSON.stringify(name)} has ${end - begin} bytes, its ${info.dtype} shape [${shape.join(', ')}] needs ${count * width}`);
    }
    entries.push({ name, dtype: info.dtype, shape, begin: dataStart + begin, end: dataStart + end });
  }
  return { entries, metadata };
}

function isIntArray(value: unknown): value is number[] {
  return Array.isArray(value) && value.every((v) => Number.isSafeInteger(v) && v >= 0);
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
      return float16ToFloat32(new Uint16Array(raw, 0, count));
    case 'BF16':
      return bfloat16ToFloat32(new Uint16Array(raw, 0, count));
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

/** Encodes F32 tensors (in the given order) and string metadata as one safetensors file. */
export function encodeSafetensors(tensors: readonly NamedTensor[], metadata: Record<string, string>): Buffer {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const tensor of tensors) {
    const size = tensor.data.byteLength;
    header[tensor.name] = { dtype: 'F32', shape: [...tensor.shape], data_offsets: [offset, offset + size] };
    offset += size;
  }
  let json = JSON.stringify(header);
  // Pad with spaces so the data starts 8-byte aligned, as the reference writer does.
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const jsonBytes = Buffer.from(json, 'utf8');
  const out = Buffer.allocUnsafe(8 + jsonBytes.length + offset);
  out.writeBigUInt64LE(BigInt(jsonBytes.length), 0);
  jsonBytes.copy(out, 8);
  let at = 8 + jsonBytes.length;
  for (const tensor of tensors) {
    Buffer.from(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength).copy(out, at);
    at += tensor.data.byteLength;
  }
  return out;
}
