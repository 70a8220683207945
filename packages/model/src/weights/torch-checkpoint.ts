// PyTorch checkpoints as `torch.save(state_dict)` writes them, read without Python and without running the
// pickle: the zip format (torch >= 1.6: `<archive>/data.pkl` plus one stored entry per storage,
// `<archive>/data/<key>`) and the legacy format (five pickles in a row: magic number, protocol version, system
// info, the object, the storage keys; then each storage as an 8-byte element count and its raw bytes).
// Little-endian only. Tensors may be views into a shared storage (offset, strides); values come out as
// float32 in C order.
import { ErrorCode, ValidationError } from '@layertap/contracts';
import { bfloat16BitsToFloat32, float16BitsToFloat32 } from '@layertap/storage/formats';
import {
  DTYPE_BYTES,
  PyGlobal,
  PyTuple,
  TensorRef,
  TruncatedPickleError,
  describe,
  unpickle,
  type PickleKey,
  type PickleValue,
  type StorageRef,
  type TorchDtype,
} from './pickle';
import type { RandomAccess } from './random-access';
import { looksLikeZip, readZipDirectory, readZipEntry, type ZipEntry } from './zip';

/** torch's legacy magic number, 0x1950a86a20f9469cfc6c, as the pickle `PROTO 2; LONG1 10 <little-endian>`. */
const LEGACY_MAGIC = Uint8Array.from([0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19]);
const LEGACY_MAGIC_NUMBER = 0x1950a86a20f9469cfc6cn;
const LEGACY_PROTOCOL_VERSION = 1001;
/** How far the pickles of a legacy file may reach before its storages start (a VGG16 state_dict: ~3 KB). */
const MAX_LEGACY_PICKLES = 64 * 1024 * 1024;

export type TorchSerialization = 'zip' | 'legacy';

/** Whether the first bytes are a legacy torch.save file (its magic-number pickle). */
export function looksLikeTorchLegacy(head: Uint8Array): boolean {
  if (head.length < 2 + LEGACY_MAGIC.length || head[0] !== 0x80) return false;
  return LEGACY_MAGIC.every((b, i) => head[2 + i] === b);
}

/** Whether the first bytes could be a zip-format torch.save file (a zip; `openTorchCheckpoint` checks more). */
export function looksLikeTorchZip(head: Uint8Array): boolean {
  return looksLikeZip(head);
}

/** One tensor of the state_dict, not yet read. */
export interface TorchTensorInfo {
  name: string;
  dtype: TorchDtype;
  shape: number[];
}

export interface TorchCheckpoint {
  serialization: TorchSerialization;
  /** The state_dict's tensors in file order (entries that are not tensors, like `_metadata`, are left out). */
  tensors: TorchTensorInfo[];
  /** Reads one tensor's values as float32 in C order; throws for non-float dtypes. */
  read(name: string): Promise<Float32Array>;
  /**
   * Checks, without reading its data, what `read` would check first: its storage lies inside the file, the
   * tensor's view inside its storage, and its dtype is one layertap reads. Throws as `read` would.
   */
  check(name: string): Promise<void>;
}

interface StorageLocation extends StorageRef {
  key: string;
  /** torch 0.1 views: this storage is `size` elements of `root` starting at element `offset`. */
  view?: { root: string; offset: number; size: number };
}

function invalid(source: string, problem: string): ValidationError {
  return new ValidationError(ErrorCode.InvalidWeights, `${source}: ${problem}`);
}

/**
 * Opens a checkpoint: reads and checks its pickle (refusing any global a state_dict does not use, before a
 * byte of tensor data is read) and finds its storages. `read` then reads only the storages asked for, each
 * once.
 */
export async function openTorchCheckpoint(file: RandomAccess, source: string): Promise<TorchCheckpoint> {
  const head = await file.read(0, Math.min(file.size, 64));
  if (looksLikeZip(head)) return openZip(file, source);
  if (looksLikeTorchLegacy(head)) return openLegacy(file, source);
  throw invalid(source, 'not a PyTorch checkpoint (neither a zip archive nor a legacy torch.save file)');
}

/** persistent_load for torch's `('storage', storage_type, key, location, numel[, view_metadata])`. */
function storageLoader(source: string, legacy: boolean, seen?: Map<string, TorchDtype>): (pid: PyTuple) => StorageRef {
  return (pid) => {
    const [tag, type, key, , , viewMetadata] = pid.items;
    if (tag !== 'storage') throw invalid(source, `a persistent id of kind ${JSON.stringify(describeScalar(tag))}, not a storage`);
    if (!(type instanceof PyGlobal) || type.meaning.kind !== 'storage-type') {
      throw invalid(source, `a storage whose type is ${type instanceof PyGlobal ? type.qualifiedName : describe(type)}`);
    }
    if (typeof key !== 'string') throw invalid(source, 'a storage without a key');
    const location: StorageLocation = { kind: 'storage', dtype: type.meaning.dtype, key };
    seen?.set(key, location.dtype);
    if (legacy && viewMetadata instanceof PyTuple) {
      const [viewKey, offset, size] = viewMetadata.items;
      if (typeof viewKey !== 'string' || typeof offset !== 'number' || typeof size !== 'number') throw invalid(source, 'a storage view without key, offset and size');
      return { kind: 'storage', dtype: location.dtype, key: viewKey, view: { root: key, offset, size } } satisfies StorageLocation;
    }
    return location;
  };
}

function describeScalar(value: PickleValue | undefined): string {
  return typeof value === 'string' || typeof value === 'number' ? String(value) : describe(value);
}

/** The state_dict inside what was pickled: the top-level dict, or a checkpoint's `state_dict` / `model` entry. */
function stateDict(value: PickleValue, source: string): Map<PickleKey, PickleValue> {
  if (!(value instanceof Map)) throw invalid(source, `holds a ${describe(value)}, not a state_dict (a dict of tensors)`);
  const hasTensors = (dict: Map<PickleKey, PickleValue>) => [...dict.values()].some((v) => v instanceof TensorRef);
  if (hasTensors(value)) return value;
  for (const key of ['state_dict', 'model']) {
    const inner = value.get(key);
    if (inner instanceof Map && hasTensors(inner)) return inner;
  }
  return value;
}

function tensorsOf(dict: Map<PickleKey, PickleValue>, source: string): Map<string, TensorRef> {
  const out = new Map<string, TensorRef>();
  for (const [key, value] of dict) {
    if (!(value instanceof TensorRef)) continue;
    if (typeof key !== 'string') throw invalid(source, `a tensor under a ${typeof key} key`);
    if (!value.storage) throw invalid(source, `tensor ${key} was never given its storage`);
    out.set(key, value);
  }
  return out;
}

async function openZip(file: RandomAccess, source: string): Promise<TorchCheckpoint> {
  const entries = await readZipDirectory(file, source);
  const pickles = entries.filter((e) => /^[^/]+\/data\.pkl$/.test(e.name));
  if (pickles.length !== 1) {
    throw invalid(source, `a zip archive but not a PyTorch checkpoint: expected one <archive>/data.pkl, found ${pickles.length === 0 ? 'none' : pickles.map((e) => e.name).join(', ')}`);
  }
  const pkl = pickles[0] as ZipEntry;
  const prefix = pkl.name.slice(0, -'data.pkl'.length);
  const byName = new Map(entries.map((e) => [e.name, e]));
  const byteorder = byName.get(`${prefix}byteorder`);
  if (byteorder) {
    const order = Buffer.from(await readZipEntry(file, byteorder, source)).toString('latin1');
    if (order !== 'little') throw invalid(source, `was saved ${order}-endian; layertap reads little-endian checkpoints`);
  }
  const { value } = unpickle(await readZipEntry(file, pkl, source), 0, { source, persistentLoad: storageLoader(source, false) });
  const tensors = tensorsOf(stateDict(value, source), source);
  const cache = new Map<string, Promise<Uint8Array>>();
  const storageBytes = (storage: StorageLocation) => {
    let bytes = cache.get(storage.key);
    if (!bytes) {
      const entry = byName.get(`${prefix}data/${storage.key}`);
      if (!entry) throw invalid(source, `storage ${storage.key} is missing (no ${prefix}data/${storage.key} in the archive)`);
      bytes = readZipEntry(file, entry, source);
      cache.set(storage.key, bytes);
    }
    return bytes;
  };
  const storageElements = async (storage: StorageLocation) => {
    const entry = byName.get(`${prefix}data/${storage.key}`);
    if (!entry) throw invalid(source, `storage ${storage.key} is missing (no ${prefix}data/${storage.key} in the archive)`);
    if (entry.method !== 0) throw invalid(source, `not a readable zip archive: entry ${entry.name} is compressed (method ${entry.method}); torch writes stored entries`);
    // The local header (30 bytes and a name) comes before the data: both must lie inside the file.
    if (entry.localHeaderOffset + 30 + entry.size > file.size) throw invalid(source, `not a readable zip archive: entry ${entry.name} lies outside the file`);
    return Math.floor(entry.size / DTYPE_BYTES[storage.dtype]);
  };
  return checkpoint('zip', tensors, storageBytes, storageElements, source);
}

async function openLegacy(file: RandomAccess, source: string): Promise<TorchCheckpoint> {
  // The pickles come first; their length is unknown until read, so read more until they fit (a VGG16
  // state_dict's take ~3 KB: the first 64 KiB, all a remote file's first request brings, usually do).
  let length = Math.min(file.size, 64 * 1024);
  for (;;) {
    const bytes = await file.read(0, length);
    try {
      return await parseLegacy(file, bytes, source);
    } catch (err) {
      if (!(err instanceof TruncatedPickleError) || length >= file.size) throw err;
      if (length >= MAX_LEGACY_PICKLES) throw invalid(source, `its pickles pass ${MAX_LEGACY_PICKLES} bytes; not a state_dict layertap reads`);
      length = Math.min(file.size, length * 4);
    }
  }
}

async function parseLegacy(file: RandomAccess, bytes: Uint8Array, source: string): Promise<TorchCheckpoint> {
  const magic = unpickle(bytes, 0, { source });
  if (magic.value !== LEGACY_MAGIC_NUMBER) throw invalid(source, 'bad legacy magic number');
  const protocol = unpickle(bytes, magic.end, { source });
  if (protocol.value !== LEGACY_PROTOCOL_VERSION) throw invalid(source, `legacy protocol version ${describeScalar(protocol.value)} (expected 1001)`);
  const sysInfo = unpickle(bytes, protocol.end, { source });
  if (sysInfo.value instanceof Map && sysInfo.value.get('little_endian') === false) {
    throw invalid(source, 'was saved big-endian; layertap reads little-endian checkpoints');
  }
  // Every storage the pickle names, with its dtype: the element size needed to walk past its data.
  const dtypes = new Map<string, TorchDtype>();
  const main = unpickle(bytes, sysInfo.end, { source, persistentLoad: storageLoader(source, true, dtypes) });
  const keys = unpickle(bytes, main.end, { source });
  if (!Array.isArray(keys.value) || !keys.value.every((k) => typeof k === 'string')) throw invalid(source, 'the storage key list is not a list of strings');
  const tensors = tensorsOf(stateDict(main.value, source), source);

  // Walk the storages in file order: an 8-byte element count, then the data.
  const locations = new Map<string, { start: number; count: number }>();
  let at = keys.end;
  for (const key of keys.value as string[]) {
    if (at + 8 > file.size) throw invalid(source, `storage ${key} lies past the end of the file`);
    const header = await file.read(at, 8);
    const count = new DataView(header.buffer, header.byteOffset, 8).getBigInt64(0, true);
    const dtype = dtypes.get(key);
    if (dtype === undefined) throw invalid(source, `storage ${key} is listed but never named by the pickle`);
    const start = at + 8;
    const length = Number(count) * DTYPE_BYTES[dtype];
    if (count < 0n || start + length > file.size) throw invalid(source, `storage ${key} (${count} elements) lies past the end of the file`);
    locations.set(key, { start, count: Number(count) });
    at = start + length;
  }
  const cache = new Map<string, Promise<Uint8Array>>();
  const storageBytes = (storage: StorageLocation): Promise<Uint8Array> => {
    const rootKey = storage.view?.root ?? storage.key;
    const location = locations.get(rootKey);
    if (!location) throw invalid(source, `storage ${rootKey} is not among the file's storages`);
    let bytes = cache.get(rootKey);
    if (!bytes) {
      bytes = file.read(location.start, location.count * DTYPE_BYTES[storage.dtype]);
      cache.set(rootKey, bytes);
    }
    if (!storage.view) return bytes;
    const { offset, size } = storage.view;
    if (offset + size > location.count) throw invalid(source, `storage view ${storage.key} reaches past its storage ${rootKey}`);
    const width = DTYPE_BYTES[storage.dtype];
    return bytes.then((b) => b.subarray(offset * width, (offset + size) * width));
  };
  const storageElements = async (storage: StorageLocation) => {
    const rootKey = storage.view?.root ?? storage.key;
    const location = locations.get(rootKey);
    if (!location) throw invalid(source, `storage ${rootKey} is not among the file's storages`);
    if (!storage.view) return location.count;
    if (storage.view.offset + storage.view.size > location.count) throw invalid(source, `storage view ${storage.key} reaches past its storage ${rootKey}`);
    return storage.view.size;
  };
  return checkpoint('legacy', tensors, storageBytes, storageElements, source);
}

function checkpoint(
  serialization: TorchSerialization,
  tensors: Map<string, TensorRef>,
  storageBytes: (storage: StorageLocation) => Promise<Uint8Array>,
  storageElements: (storage: StorageLocation) => Promise<number>,
  source: string,
): TorchCheckpoint {
  return {
    serialization,
    tensors: [...tensors].map(([name, t]) => ({ name, dtype: (t.storage as StorageRef).dtype, shape: [...t.shape] })),
    read: async (name) => {
      const tensor = tensors.get(name);
      if (!tensor) throw invalid(source, `has no tensor ${name}`);
      const storage = tensor.storage as StorageLocation;
      return tensorValues(tensor, await storageBytes(storage), `${source}: tensor ${name}`);
    },
    check: async (name) => {
      const tensor = tensors.get(name);
      if (!tensor) throw invalid(source, `has no tensor ${name}`);
      checkTensorView(tensor, await storageElements(tensor.storage as StorageLocation), `${source}: tensor ${name}`);
    },
  };
}

/**
 * A tensor's values, float32 in C order of its shape, from its storage's bytes. A contiguous float32 tensor
 * whose bytes are 4-byte aligned is returned as a view of the storage (no copy); other tensors are gathered
 * through their strides.
 */
export function tensorValues(tensor: TensorRef, storage: Uint8Array, what: string): Float32Array {
  const dtype = (tensor.storage as StorageRef).dtype;
  const width = DTYPE_BYTES[dtype];
  const count = tensor.shape.reduce((a, b) => a * b, 1);
  const elements = Math.floor(storage.byteLength / width);
  if (count === 0) return new Float32Array(0);
  checkTensorView(tensor, elements, what);
  const contiguous = isContiguous(tensor.shape, tensor.stride);
  const start = storage.byteOffset + tensor.offset * width;
  if (dtype === 'float32' && contiguous) {
    if (start % 4 === 0) return new Float32Array(storage.buffer, start, count);
    return new Float32Array(storage.buffer.slice(start, start + count * 4));
  }
  // Copy the storage's span into an aligned buffer once, then gather element by element.
  const span = storage.buffer.slice(storage.byteOffset, storage.byteOffset + elements * width);
  let values: ArrayLike<number>;
  if (dtype === 'float32') values = new Float32Array(span);
  else if (dtype === 'float64') values = new Float64Array(span);
  else if (dtype === 'float16') values = float16BitsToFloat32(new Uint16Array(span));
  else values = bfloat16BitsToFloat32(new Uint16Array(span));
  return gather(values, tensor.offset, tensor.shape, tensor.stride, count);
}

/**
 * What a tensor's values need of its storage of `elements` values, checked before anything is allocated: the
 * view fits in the storage, and the dtype is one layertap reads.
 */
export function checkTensorView(tensor: TensorRef, elements: number, what: string): void {
  const dtype = (tensor.storage as StorageRef).dtype;
  const count = tensor.shape.reduce((a, b) => a * b, 1);
  if (count === 0) return;
  // A view cannot hold more values than its storage (an `expand()`ed or overlapping tensor would make the
  // output, and the time to gather it, follow the declared shape instead of the file: 149 KB declaring 3 GB).
  if (count > elements) {
    throw new ValidationError(
      ErrorCode.InvalidWeights,
      `${what} declares shape [${tensor.shape.join(', ')}] (${count} values) over a storage of ${elements}: an expanded or overlapping view; save weights with .contiguous().clone()`,
    );
  }
  const last = tensor.offset + tensor.shape.reduce((sum, size, i) => sum + (size - 1) * (tensor.stride[i] as number), 0);
  if (last >= elements) {
    throw new ValidationError(ErrorCode.InvalidWeights, `${what} reaches element ${last} of a storage of ${elements} (${dtype})`);
  }
  if (dtype !== 'float32' && dtype !== 'float16' && dtype !== 'bfloat16' && dtype !== 'float64') {
    throw new ValidationError(ErrorCode.InvalidWeights, `${what} is ${dtype}; layertap reads float32, float16, bfloat16 and float64 weights`);
  }
}

function isContiguous(shape: readonly number[], stride: readonly number[]): boolean {
  let expected = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    const size = shape[i] as number;
    if (size !== 1 && stride[i] !== expected) return false;
    expected *= size;
  }
  return true;
}

/** Values at `offset + sum(index[i] * stride[i])` for every index in C order. */
function gather(values: ArrayLike<number>, offset: number, shape: readonly number[], stride: readonly number[], count: number): Float32Array {
  const out = new Float32Array(count);
  const rank = shape.length;
  const index = new Array<number>(rank).fill(0);
  let position = offset;
  for (let n = 0; n < count; n++) {
    out[n] = values[position] as number;
    // Odometer: bump the last axis, carry into earlier ones.
    for (let axis = rank - 1; axis >= 0; axis--) {
      const i = (index[axis] as number) + 1;
      if (i < (shape[axis] as number)) {
        index[axis] = i;
        position += stride[axis] as number;
        break;
      }
      index[axis] = 0;
      position -= (i - 1) * (stride[axis] as number);
    }
  }
  return out;
}
