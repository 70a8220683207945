import { endianness } from 'node:os';
import { SafetensorsFormatError } from './errors';

/**
 * safetensors (https://github.com/huggingface/safetensors): an 8-byte little-endian header length N, N
 * bytes of JSON `{"__metadata__": {...}, "<name>": {"dtype", "shape", "data_offsets": [begin, end]}, ...}`
 * padded with spaces so the data starts 8-byte aligned, then the data buffer. Offsets are relative to the
 * buffer, and the tensors cover it from 0 to its end without gaps (the reference reader refuses anything
 * else). Metadata values are strings.
 */

export type SafetensorsDtype = 'F32' | 'F16';

/** One tensor: `data` is float32 values (`F32`) or float16 bit patterns (`F16`), C order. */
export interface SafetensorsTensor {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  data: Float32Array | Uint16Array;
}

/** A tensor's entry in the header, without its data. */
export interface SafetensorsEntry {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
}

export interface DecodedSafetensors {
  metadata: Record<string, string>;
  /** In file (offset) order. */
  tensors: SafetensorsTensor[];
}

const ITEM_BYTES: Record<SafetensorsDtype, number> = { F32: 4, F16: 2 };
const LENGTH_BYTES = 8;
const ALIGNMENT = 8;
/** The reference implementation refuses larger headers. */
const MAX_HEADER_BYTES = 100_000_000;
const HOST_IS_BIG_ENDIAN = endianness() === 'BE';

function elementCount(shape: readonly number[]): number {
  let n = 1;
  for (const dim of shape) {
    if (!Number.isSafeInteger(dim) || dim < 0) throw new RangeError(`shape ${JSON.stringify(shape)} has a dimension that is not a non-negative integer`);
    n *= dim;
  }
  return n;
}

/** Bytes of a tensor's data. */
export function safetensorsByteLength(entry: Pick<SafetensorsEntry, 'dtype' | 'shape'>): number {
  return elementCount(entry.shape) * ITEM_BYTES[entry.dtype];
}

/**
 * The length prefix and JSON header for tensors stored back to back in `entries` order, padded with spaces
 * to 8 bytes; `minLength` pads further (a header reserved before every tensor was known).
 */
export function safetensorsHeader(entries: readonly SafetensorsEntry[], metadata: Record<string, string> = {}, minLength = 0): Buffer {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new TypeError(`safetensors metadata values must be strings: ${k} is ${typeof v}`);
    }
    header.__metadata__ = metadata;
  }
  let offset = 0;
  for (const entry of entries) {
    if (entry.name === '__metadata__' || entry.name.length === 0) throw new RangeError(`invalid tensor name ${JSON.stringify(entry.name)}`);
    if (Object.prototype.hasOwnProperty.call(header, entry.name)) throw new RangeError(`tensor ${JSON.stringify(entry.name)} appears twice`);
    const end = offset + safetensorsByteLength(entry);
    header[entry.name] = { dtype: entry.dtype, shape: entry.shape, data_offsets: [offset, end] };
    offset = end;
  }
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const padded = Math.ceil(Math.max(json.length, minLength - LENGTH_BYTES) / ALIGNMENT) * ALIGNMENT;
  if (padded > MAX_HEADER_BYTES) throw new RangeError(`safetensors header of ${padded} bytes is over the ${MAX_HEADER_BYTES}-byte limit`);
  const out = Buffer.alloc(LENGTH_BYTES + padded, 0x20);
  out.writeBigUInt64LE(BigInt(padded), 0);
  json.copy(out, LENGTH_BYTES);
  return out;
}

/** Copies `data` into `target` at `offset` as little-endian bytes. */
export function writeTensorData(target: Buffer, offset: number, data: Float32Array | Uint16Array): void {
  target.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), offset);
  if (HOST_IS_BIG_ENDIAN) {
    const view = target.subarray(offset, offset + data.byteLength);
    if (data instanceof Float32Array) view.swap32();
    else view.swap16();
  }
}

function assertData(tensor: SafetensorsTensor): void {
  const expected = elementCount(tensor.shape);
  const typeOk = tensor.dtype === 'F32' ? tensor.data instanceof Float32Array : tensor.data instanceof Uint16Array;
  if (!typeOk) throw new TypeError(`tensor ${tensor.name}: ${tensor.dtype} data must be a ${tensor.dtype === 'F32' ? 'Float32Array' : 'Uint16Array (float16 bits)'}`);
  if (tensor.data.length !== expected) {
    throw new RangeError(`tensor ${tensor.name}: shape ${JSON.stringify(tensor.shape)} holds ${expected} values but the array has ${tensor.data.length}`);
  }
}

/** A whole safetensors file holding `tensors` in the order given. */
export function encodeSafetensors(tensors: readonly SafetensorsTensor[], metadata: Record<string, string> = {}): Buffer {
  for (const t of tensors) assertData(t);
  const header = safetensorsHeader(tensors, metadata);
  const size = tensors.reduce((n, t) => n + t.data.byteLength, 0);
  const out = Buffer.allocUnsafe(header.length + size);
  header.copy(out, 0);
  let offset = header.length;
  for (const t of tensors) {
    writeTensorData(out, offset, t.data);
    offset += t.data.byteLength;
  }
  return out;
}

function fail(problem: string): never {
  throw new SafetensorsFormatError(`not a valid safetensors file: ${problem}`);
}

/** A tensor's entry in a parsed header: any dtype the format has, with absolute byte offsets in the file. */
export interface SafetensorsHeaderEntry {
  name: string;
  /** `F32`, `F16`, `BF16`, `F64`, `I64`, ... as written. */
  dtype: string;
  shape: number[];
  /** Absolute offsets of the tensor's bytes in the file. */
  begin: number;
  end: number;
}

/** Bytes per value of the dtypes whose sizes are checked (others are passed through unchecked). */
const DTYPE_BYTES: Record<string, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };

/** Whether the first bytes of a file of `size` bytes look like safetensors (a sane length, then `{`). */
export function looksLikeSafetensors(head: Uint8Array, size: number): boolean {
  if (head.length < LENGTH_BYTES + 1) return false;
  const length = Number(Buffer.from(head.buffer, head.byteOffset, LENGTH_BYTES).readBigUInt64LE(0));
  return length >= 2 && length <= MAX_HEADER_BYTES && LENGTH_BYTES + length <= size && head[LENGTH_BYTES] === 0x7b;
}

/**
 * Parses and checks a safetensors header as strictly as the reference reader: JSON object, string metadata,
 * every tensor's offsets inside the file, contiguous from 0 without gaps or overlaps, sizes matching the
 * shapes. Throws `SafetensorsFormatError` saying what is wrong. The data is not read: `buf` may be only the
 * file's first `8 + header length` bytes when `fileSize` gives the whole file's size.
 */
export function parseSafetensorsHeader(
  buf: Uint8Array,
  fileSize: number = buf.byteLength,
): { metadata: Record<string, string>; entries: SafetensorsHeaderEntry[] } {
  const bytes = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (fileSize < LENGTH_BYTES || bytes.length < LENGTH_BYTES) fail('shorter than the 8-byte header length');
  const n = bytes.readBigUInt64LE(0);
  if (n > BigInt(MAX_HEADER_BYTES)) fail(`header length ${n} is over the limit`);
  const headerEnd = LENGTH_BYTES + Number(n);
  if (headerEnd > fileSize) fail(`header length ${n} runs past the end of the file`);
  if (headerEnd > bytes.length) throw new RangeError(`parseSafetensorsHeader: given ${bytes.length} bytes, the header needs ${headerEnd}`);
  const text = bytes.toString('utf8', LENGTH_BYTES, headerEnd);
  if (!text.startsWith('{')) fail('header does not start with {');
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (err) {
    fail(`header is not JSON: ${(err as Error).message}`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) fail('header is not a JSON object');
  const metadata: Record<string, string> = {};
  const infos: Array<Omit<SafetensorsHeaderEntry, 'begin' | 'end'> & { begin: number; end: number }> = [];
  for (const [name, value] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof value !== 'object' || value === null) fail('__metadata__ is not an object');
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        if (typeof v !== 'string') fail(`__metadata__.${k} is not a string`);
        metadata[k] = v;
      }
      continue;
    }
    const info = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof info.dtype !== 'string') fail(`tensor ${name}: no dtype`);
    if (!Array.isArray(info.shape) || !info.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) fail(`tensor ${name}: bad shape`);
    const offsets = info.data_offsets;
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)) fail(`tensor ${name}: bad data_offsets`);
    infos.push({ name, dtype: info.dtype, shape: info.shape as number[], begin: offsets[0] as number, end: offsets[1] as number });
  }
  infos.sort((a, b) => a.begin - b.begin || a.end - b.end);
  const dataLength = fileSize - headerEnd;
  let expectedBegin = 0;
  for (const info of infos) {
    if (info.begin !== expectedBegin || info.end < info.begin) fail(`tensor ${info.name}: data_offsets [${info.begin}, ${info.end}] leave a gap or overlap`);
    const width = DTYPE_BYTES[info.dtype];
    if (width !== undefined && info.end - info.begin !== elementCount(info.shape) * width) {
      fail(`tensor ${info.name}: ${info.end - info.begin} bytes do not hold ${info.dtype} ${JSON.stringify(info.shape)}`);
    }
    if (info.end > dataLength) fail(`tensor ${info.name} runs past the end of the file`);
    expectedBegin = info.end;
  }
  if (expectedBegin !== dataLength) fail(`the tensors cover ${expectedBegin} of ${dataLength} data bytes`);
  return { metadata, entries: infos.map((i) => ({ ...i, begin: headerEnd + i.begin, end: headerEnd + i.end })) };
}

/**
 * Reads a safetensors file with F32 and F16 tensors, checking it as strictly as the reference reader. With
 * `only`, just those tensors are copied out (a shard holds every layer of a chunk; a reader wants one).
 */
export function decodeSafetensors(buf: Uint8Array, only?: ReadonlySet<string>): DecodedSafetensors {
  const bytes = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const { metadata, entries } = parseSafetensorsHeader(bytes);
  const tensors: SafetensorsTensor[] = entries.filter((entry) => !only || only.has(entry.name)).map((entry) => {
    if (entry.dtype !== 'F32' && entry.dtype !== 'F16') fail(`tensor ${entry.name}: unsupported dtype ${JSON.stringify(entry.dtype)} (only F32 and F16)`);
    const count = elementCount(entry.shape);
    const data = entry.dtype === 'F32' ? new Float32Array(count) : new Uint16Array(count);
    const target = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    bytes.copy(target, 0, entry.begin, entry.end);
    if (HOST_IS_BIG_ENDIAN) {
      if (entry.dtype === 'F32') target.swap32();
      else target.swap16();
    }
    return { name: entry.name, dtype: entry.dtype, shape: entry.shape, data };
  });
  return { metadata, tensors };
}
