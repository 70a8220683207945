import type { Dtype } from '@layertap/contracts';
import { endianness } from 'node:os';
import { NpyFormatError } from './errors';
import { float32ToFloat16Bits } from './float16';

const MAGIC = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]); // \x93NUMPY
/** magic (6) + version (2) + header length (2) */
const PREAMBLE_BYTES = 10;
const ALIGNMENT = 64;
const DESCR: Record<Dtype, string> = { float32: '<f4', float16: '<f2' };
const ITEM_BYTES: Record<Dtype, number> = { float32: 4, float16: 2 };
// The data is written little-endian ('<'); a big-endian host must swap.
const HOST_IS_BIG_ENDIAN = endianness() === 'BE';

/** A decoded `.npy` array; float16 data stays as its bit patterns (see `float16BitsToFloat32`). */
export type NpyArray =
  | { dtype: 'float32'; shape: number[]; data: Float32Array }
  | { dtype: 'float16'; shape: number[]; data: Uint16Array };

export function shapeSize(shape: readonly number[]): number {
  let size = 1;
  for (const dim of shape) size *= dim;
  return size;
}

/** Python tuple syntax: `()`, `(4096,)`, `(128, 56, 56)`. */
function shapeTuple(shape: readonly number[]): string {
  if (shape.length === 1) return `(${shape[0]},)`;
  return `(${shape.join(', ')})`;
}

function assertShape(shape: readonly number[]): void {
  for (const dim of shape) {
    if (!Number.isSafeInteger(dim) || dim < 0) throw new RangeError(`shape ${JSON.stringify(shape)} has a dimension that is not a non-negative integer`);
  }
}

/** The `.npy` v1.0 preamble and header for `shape` and `dtype`, padded so the data starts 64-byte aligned. */
export function npyHeader(shape: readonly number[], dtype: Dtype): Buffer {
  assertShape(shape);
  const dict = `{'descr': '${DESCR[dtype]}', 'fortran_order': False, 'shape': ${shapeTuple(shape)}, }`;
  // +1 for the closing newline, which counts in the header length.
  const unpadded = PREAMBLE_BYTES + dict.length + 1;
  const headerLength = Math.ceil(unpadded / ALIGNMENT) * ALIGNMENT - PREAMBLE_BYTES;
  if (headerLength > 0xffff) throw new RangeError(`shape ${shapeTuple(shape)} is too long for a .npy v1.0 header`);
  const out = Buffer.alloc(PREAMBLE_BYTES + headerLength, 0x20);
  MAGIC.copy(out, 0);
  out[6] = 1;
  out[7] = 0;
  out.writeUInt16LE(headerLength, 8);
  out.write(dict, PREAMBLE_BYTES, 'latin1');
  out[out.length - 1] = 0x0a;
  return out;
}

/** The exact size of the `.npy` file `encodeNpy` writes for `shape` and `dtype` (for completeness checks). */
export function npyByteLength(shape: readonly number[], dtype: Dtype): number {
  return npyHeader(shape, dtype).length + shapeSize(shape) * ITEM_BYTES[dtype];
}

/**
 * The `.npy` file of `data` as two buffers, its header and its values, without copying the values (write
 * them with `OutputWriter.put(key, parts)`). `data` is float32 values for `float32` or float16 bit patterns
 * for `float16`. On a big-endian host the values are copied and swapped.
 */
export function npyParts(data: Float32Array | Uint16Array, shape: readonly number[], dtype: Dtype): [Buffer, Buffer] {
  if ((dtype === 'float32') !== data instanceof Float32Array) {
    throw new TypeError(`${dtype} .npy data must be a ${dtype === 'float32' ? 'Float32Array' : 'Uint16Array of float16 bits'}`);
  }
  const size = shapeSize(shape);
  if (data.length !== size) throw new RangeError(`shape ${shapeTuple(shape)} holds ${size} values but the array has ${data.length}`);
  const header = npyHeader(shape, dtype);
  if (HOST_IS_BIG_ENDIAN) return [header, encodeNpy(data, shape, dtype).subarray(header.length)];
  return [header, Buffer.from(data.buffer, data.byteOffset, data.byteLength)];
}

/**
 * A NumPy `.npy` v1.0 file holding `array` in C order. For `float16`, `array` is either float16 bit patterns
 * (`Uint16Array`) or float32 values that are rounded to float16 here.
 */
export function encodeNpy(array: Float32Array | Uint16Array, shape: readonly number[], dtype: Dtype): Buffer {
  let data: Float32Array | Uint16Array = array;
  if (dtype === 'float16' && array instanceof Float32Array) data = float32ToFloat16Bits(array);
  if (dtype === 'float32' && !(array instanceof Float32Array)) {
    throw new TypeError('float32 .npy data must be a Float32Array (a Uint16Array holds float16 bit patterns)');
  }
  const header = npyHeader(shape, dtype);
  const size = shapeSize(shape);
  if (data.length !== size) {
    throw new RangeError(`shape ${shapeTuple(shape)} holds ${size} values but the array has ${data.length}`);
  }
  const out = Buffer.allocUnsafe(header.length + data.byteLength);
  header.copy(out, 0);
  out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), header.length);
  if (HOST_IS_BIG_ENDIAN) {
    const body = out.subarray(header.length);
    if (dtype === 'float32') body.swap32();
    else body.swap16();
  }
  return out;
}

function fail(problem: string): never {
  throw new NpyFormatError(`not a valid .npy file: ${problem}`);
}

const ENTRY = /^\s*'([A-Za-z_]+)'\s*:\s*('[^']*'|True|False|\([^()]*\))\s*(?:,|$)/;
const TUPLE = /^\(\s*(?:|\d+\s*,|\d+(?:\s*,\s*\d+)+\s*,?)\s*\)$/;

/** Parses the header dict; exactly the keys `descr`, `fortran_order` and `shape` are allowed. */
function parseHeader(text: string): { dtype: Dtype; shape: number[] } {
  if (!text.endsWith('\n')) fail('header does not end with a newline');
  const literal = text.trimEnd();
  if (!literal.startsWith('{') || !literal.endsWith('}')) fail(`header is not a dict: ${JSON.stringify(literal.slice(0, 80))}`);
  let body = literal.slice(1, -1);
  const entries = new Map<string, string>();
  while (body.trim().length > 0) {
    const match = ENTRY.exec(body);
    if (!match) fail(`cannot parse header ${JSON.stringify(literal.slice(0, 120))}`);
    const [whole, key = '', value = ''] = match;
    if (entries.has(key)) fail(`header repeats key '${key}'`);
    entries.set(key, value);
    body = body.slice(whole.length);
  }
  const keys = [...entries.keys()].sort().join(',');
  if (keys !== 'descr,fortran_order,shape') fail(`header keys are ${keys || 'none'}, expected descr, fortran_order, shape`);

  const descr = entries.get('descr') ?? '';
  const dtype = (Object.keys(DESCR) as Dtype[]).find((d) => `'${DESCR[d]}'` === descr);
  if (!dtype) fail(`unsupported descr ${descr} (only '<f4' and '<f2')`);
  if (entries.get('fortran_order') !== 'False') fail('Fortran-order arrays are not supported');
  const tuple = entries.get('shape') ?? '';
  if (!TUPLE.test(tuple)) fail(`shape ${tuple} is not a tuple of non-negative integers`);
  const shape = tuple
    .slice(1, -1)
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map(Number);
  if (!shape.every(Number.isSafeInteger)) fail(`shape ${tuple} is too large`);
  return { dtype, shape };
}

/** Reads a `.npy` v1.0 file as `encodeNpy` writes it; anything else throws `NpyFormatError`. */
export function decodeNpy(buf: Uint8Array): NpyArray {
  const bytes = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (bytes.length < PREAMBLE_BYTES || !bytes.subarray(0, 6).equals(MAGIC)) fail('missing the \\x93NUMPY magic');
  if (bytes[6] !== 1 || bytes[7] !== 0) fail(`unsupported version ${bytes[6]}.${bytes[7]} (only 1.0)`);
  const headerLength = bytes.readUInt16LE(8);
  const dataStart = PREAMBLE_BYTES + headerLength;
  if (bytes.length < dataStart) fail(`header length ${headerLength} runs past the end of the file`);
  if (dataStart % ALIGNMENT !== 0) fail(`data starts at byte ${dataStart}, not on a ${ALIGNMENT}-byte boundary`);
  const { dtype, shape } = parseHeader(bytes.toString('latin1', PREAMBLE_BYTES, dataStart));

  const count = shapeSize(shape);
  const expected = count * ITEM_BYTES[dtype];
  const actual = bytes.length - dataStart;
  if (actual !== expected) fail(`shape ${shapeTuple(shape)} needs ${expected} data bytes, found ${actual}`);
  // Copy into a fresh array: the data may not be aligned for a view, and callers should not alias `buf`.
  const data = dtype === 'float32' ? new Float32Array(count) : new Uint16Array(count);
  const target = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  bytes.copy(target, 0, dataStart);
  if (HOST_IS_BIG_ENDIAN) {
    if (dtype === 'float32') target.swap32();
    else target.swap16();
  }
  return data instanceof Float32Array ? { dtype: 'float32', shape, data } : { dtype: 'float16', shape, data };
}
