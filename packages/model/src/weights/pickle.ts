// A pickle reader for PyTorch state_dicts that never runs anything. Python's unpickler imports whatever
// module a pickle names and calls it: a `.pth` can run any command that way. This one is an interpreter of
// the opcodes `torch.save(state_dict)` writes (protocol 2, as torch writes it), with a fixed list of the
// globals a state_dict uses; each global maps to a small, known JavaScript meaning (build a dict, describe a
// tensor), and any other global ends the read at once with a ValidationError naming it.
import { ErrorCode, ValidationError } from '@layertap/contracts';

/** The storage element types torch writes, by their legacy class names (`torch.FloatStorage`). */
export type TorchDtype = 'float32' | 'float16' | 'bfloat16' | 'float64' | 'int64' | 'int32' | 'int16' | 'int8' | 'uint8' | 'bool';

export const DTYPE_BYTES: Record<TorchDtype, number> = {
  float32: 4,
  float16: 2,
  bfloat16: 2,
  float64: 8,
  int64: 8,
  int32: 4,
  int16: 2,
  int8: 1,
  uint8: 1,
  bool: 1,
};

const STORAGE_DTYPES: Record<string, TorchDtype> = {
  FloatStorage: 'float32',
  HalfStorage: 'float16',
  BFloat16Storage: 'bfloat16',
  DoubleStorage: 'float64',
  LongStorage: 'int64',
  IntStorage: 'int32',
  ShortStorage: 'int16',
  CharStorage: 'int8',
  ByteStorage: 'uint8',
  BoolStorage: 'bool',
};

/** torch 0.1-0.3 pickled tensors as their class (`torch.FloatTensor`) plus `__setstate__`. */
const TENSOR_CLASS_DTYPES: Record<string, TorchDtype> = {
  FloatTensor: 'float32',
  HalfTensor: 'float16',
  DoubleTensor: 'float64',
};

const DTYPE_NAMES: Record<string, TorchDtype> = {
  float32: 'float32',
  float: 'float32',
  float16: 'float16',
  half: 'float16',
  bfloat16: 'bfloat16',
  float64: 'float64',
  double: 'float64',
  int64: 'int64',
  long: 'int64',
  int32: 'int32',
  int: 'int32',
  int16: 'int16',
  int8: 'int8',
  uint8: 'uint8',
  bool: 'bool',
};

/** What an allowed global stands for. */
export type AllowedGlobal =
  | { kind: 'ordered-dict' }
  | { kind: 'rebuild-tensor-v2' }
  | { kind: 'rebuild-tensor' }
  | { kind: 'rebuild-parameter' }
  | { kind: 'storage-type'; dtype: TorchDtype }
  | { kind: 'tensor-class'; dtype: TorchDtype }
  | { kind: 'dtype'; dtype: TorchDtype };

/**
 * The globals a state_dict may name, and nothing else: `collections.OrderedDict`, torch's tensor rebuild
 * functions, storage and dtype names (data, never called), and torch 0.1's tensor classes.
 */
export function allowedGlobal(module: string, name: string): AllowedGlobal | undefined {
  if (module === 'collections' && name === 'OrderedDict') return { kind: 'ordered-dict' };
  if (module === 'torch._utils') {
    if (name === '_rebuild_tensor_v2') return { kind: 'rebuild-tensor-v2' };
    if (name === '_rebuild_tensor') return { kind: 'rebuild-tensor' };
    if (name === '_rebuild_parameter') return { kind: 'rebuild-parameter' };
    return undefined;
  }
  if (module !== 'torch' && module !== 'torch.cuda') return undefined;
  const own = (table: Record<string, TorchDtype>) => (Object.prototype.hasOwnProperty.call(table, name) ? table[name] : undefined);
  // Storages saved from a GPU are written to the file the same way (their location just says cuda).
  const storage = own(STORAGE_DTYPES);
  if (storage) return { kind: 'storage-type', dtype: storage };
  const tensorClass = own(TENSOR_CLASS_DTYPES);
  if (tensorClass) return { kind: 'tensor-class', dtype: tensorClass };
  if (module !== 'torch') return undefined;
  const dtype = own(DTYPE_NAMES);
  if (dtype) return { kind: 'dtype', dtype };
  return undefined;
}

/** An allowed global as a value (a storage type inside a persistent id, a dtype, a callable before REDUCE). */
export class PyGlobal {
  constructor(
    readonly module: string,
    readonly name: string,
    readonly meaning: AllowedGlobal,
  ) {}
  get qualifiedName(): string {
    return `${this.module}.${this.name}`;
  }
}

/** A tuple (kept apart from lists only where a shape or a persistent id must be one). */
export class PyTuple {
  constructor(readonly items: PickleValue[]) {}
}

/** What the caller's `persistentLoad` returns for a storage id: opaque to the unpickler. */
export interface StorageRef {
  readonly kind: 'storage';
  readonly dtype: TorchDtype;
}

/** A tensor described by the pickle: where its values lie in a storage. Values are read by the caller. */
export class TensorRef {
  constructor(
    public storage: StorageRef | undefined,
    public offset: number,
    public shape: number[],
    public stride: number[],
    /** The dtype the pickle gave the tensor (torch 0.1's class), checked against its storage's. */
    readonly declaredDtype?: TorchDtype,
  ) {}
}

export type PickleKey = string | number | bigint | boolean | null;
export type PickleValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | PickleValue[]
  | PyTuple
  | Map<PickleKey, PickleValue>
  | PyGlobal
  | TensorRef
  | StorageRef;

export interface UnpickleOptions {
  /** Names the file in messages. */
  source: string;
  /** Turns a persistent id (torch: `('storage', type, key, location, numel[, view])`) into a storage. */
  persistentLoad?: (pid: PyTuple) => StorageRef;
}

export interface Unpickled {
  value: PickleValue;
  /** Offset just past the STOP opcode (where the next pickle of a legacy file starts). */
  end: number;
}

/** Thrown when the bytes end before the pickle does (a legacy reader then reads more and tries again). */
export class TruncatedPickleError extends ValidationError {
  override name = 'TruncatedPickleError';
}

const MARK = Symbol('mark');
type StackItem = PickleValue | typeof MARK;

const MAX_CONTAINER_ITEMS = 50_000_000;
const MAX_LONG_BYTES = 64;

/**
 * Reads one pickle from `bytes` at `start`. Never imports or calls anything: the only globals accepted are
 * those of `allowedGlobal`, and each REDUCE is one of their known meanings. Any other global, opcode or call
 * throws a `ValidationError` (`invalid_weights`) that names it.
 */
export function unpickle(bytes: Uint8Array, start: number, options: UnpickleOptions): Unpickled {
  const { source } = options;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const stack: StackItem[] = [];
  const memo = new Map<number, PickleValue>();
  let at = start;

  const fail = (problem: string): never => {
    throw new ValidationError(ErrorCode.InvalidWeights, `${source}: ${problem}`);
  };
  const need = (n: number) => {
    if (at + n > bytes.length) {
      throw new TruncatedPickleError(ErrorCode.InvalidWeights, `${source}: the pickle ends early (needs ${n} bytes at byte ${at} of ${bytes.length})`);
    }
  };
  const u8 = () => {
    need(1);
    return bytes[at++] as number;
  };
  const u16 = () => {
    need(2);
    const v = view.getUint16(at, true);
    at += 2;
    return v;
  };
  const u32 = () => {
    need(4);
    const v = view.getUint32(at, true);
    at += 4;
    return v;
  };
  const u64 = () => {
    need(8);
    const v = view.getBigUint64(at, true);
    at += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) fail(`a length of ${v} bytes at byte ${at - 8}`);
    return Number(v);
  };
  const take = (n: number) => {
    need(n);
    const out = bytes.subarray(at, at + n);
    at += n;
    return out;
  };
  const line = () => {
    const end = bytes.indexOf(0x0a, at);
    if (end < 0 || end - at > 1024) {
      throw new TruncatedPickleError(ErrorCode.InvalidWeights, `${source}: the pickle ends early (a name at byte ${at} has no end)`);
    }
    const text = Buffer.from(bytes.buffer, bytes.byteOffset + at, end - at).toString('latin1');
    at = end + 1;
    return text;
  };
  const utf8 = (raw: Uint8Array) => Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('utf8');
  const latin1 = (raw: Uint8Array) => Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('latin1');

  const pop = (): PickleValue => {
    const item = stack.pop();
    if (item === undefined) fail(`the pickle pops an empty stack at byte ${at - 1}`);
    if (item === MARK) fail(`the pickle pops a mark as a value at byte ${at - 1}`);
    return item as PickleValue;
  };
  const top = (): PickleValue => {
    const item = stack[stack.length - 1];
    if (item === undefined || item === MARK) fail(`the pickle needs a value on the stack at byte ${at - 1}`);
    return item as PickleValue;
  };
  const popMark = (): PickleValue[] => {
    const index = stack.lastIndexOf(MARK);
    if (index < 0) fail(`the pickle has no mark to pop at byte ${at - 1}`);
    const items = stack.splice(index) as StackItem[];
    items.shift();
    if (items.length > MAX_CONTAINER_ITEMS) fail(`a container of ${items.length} items`);
    return items as PickleValue[];
  };
  const global = (module: string, name: string): PyGlobal => {
    const meaning = allowedGlobal(module, name);
    if (!meaning) throw refusedGlobal(source, `${module}.${name}`);
    return new PyGlobal(module, name, meaning);
  };
  const setItems = (target: PickleValue, items: PickleValue[]) => {
    if (!(target instanceof Map)) fail(`SETITEM on a ${describe(target)}, not a dict`);
    const dict = target as Map<PickleKey, PickleValue>;
    if (items.length % 2 !== 0) fail('SETITEMS with an odd number of items');
    for (let i = 0; i < items.length; i += 2) dict.set(asKey(items[i] as PickleValue, fail), items[i + 1] as PickleValue);
  };
  const append = (target: PickleValue, items: PickleValue[]) => {
    if (!Array.isArray(target)) fail(`APPEND on a ${describe(target)}, not a list`);
    // One by one: push(...items) passes every item as an argument, and 3M APPENDS items overflow the stack.
    const list = target as PickleValue[];
    for (const item of items) list.push(item);
  };

  const first = bytes[at];
  if (first !== 0x80) fail(`not a pickle at byte ${at} (it starts with 0x${(first ?? 0).toString(16)}, expected a protocol opcode 0x80)`);

  for (;;) {
    const opAt = at;
    const op = u8();
    switch (op) {
      case 0x80: {
        // PROTO
        const protocol = u8();
        if (protocol < 2 || protocol > 5) fail(`pickle protocol ${protocol} (torch writes 2)`);
        break;
      }
      case 0x95: // FRAME (protocol 4+): a length to skip
        u64();
        break;
      case 0x2e: {
        // STOP
        const value = pop();
        if (stack.length !== 0) fail(`the pickle stops with ${stack.length} values left on the stack`);
        return { value, end: at };
      }
      case 0x28: // MARK
        stack.push(MARK);
        break;
      case 0x30: // POP
        stack.pop();
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        stack.push(top());
        break;
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      case 0x4a: // BININT
        need(4);
        stack.push(view.getInt32(at, true));
        at += 4;
        break;
      case 0x4b: // BININT1
        stack.push(u8());
        break;
      case 0x4d: // BININT2
        stack.push(u16());
        break;
      case 0x8a: {
        // LONG1: little-endian two's complement of n bytes
        const n = u8();
        stack.push(readLong(take(n)));
        break;
      }
      case 0x8b: {
        // LONG4
        const n = u32();
        if (n > MAX_LONG_BYTES) fail(`an integer of ${n} bytes at byte ${opAt}`);
        stack.push(readLong(take(n)));
        break;
      }
      case 0x47: // BINFLOAT: big-endian double
        need(8);
        stack.push(view.getFloat64(at, false));
        at += 8;
        break;
      case 0x58: // BINUNICODE
        stack.push(utf8(take(u32())));
        break;
      case 0x8c: // SHORT_BINUNICODE
        stack.push(utf8(take(u8())));
        break;
      case 0x8d: // BINUNICODE8
        stack.push(utf8(take(u64())));
        break;
      case 0x55: // SHORT_BINSTRING (Python 2 str: torch.load decodes it as text)
        stack.push(latin1(take(u8())));
        break;
      case 0x54: // BINSTRING
        stack.push(latin1(take(u32())));
        break;
      case 0x43: // SHORT_BINBYTES
        stack.push(take(u8()));
        break;
      case 0x42: // BINBYTES
        stack.push(take(u32()));
        break;
      case 0x29: // EMPTY_TUPLE
        stack.push(new PyTuple([]));
        break;
      case 0x74: // TUPLE
        stack.push(new PyTuple(popMark()));
        break;
      case 0x85: // TUPLE1
        stack.push(new PyTuple([pop()]));
        break;
      case 0x86: {
        // TUPLE2
        const b = pop();
        stack.push(new PyTuple([pop(), b]));
        break;
      }
      case 0x87: {
        // TUPLE3
        const c = pop();
        const b = pop();
        stack.push(new PyTuple([pop(), b, c]));
        break;
      }
      case 0x5d: // EMPTY_LIST
        stack.push([]);
        break;
      case 0x6c: // LIST
        stack.push(popMark());
        break;
      case 0x61: {
        // APPEND
        const item = pop();
        append(top(), [item]);
        break;
      }
      case 0x65: {
        // APPENDS
        const items = popMark();
        append(top(), items);
        break;
      }
      case 0x7d: // EMPTY_DICT
        stack.push(new Map());
        break;
      case 0x64: {
        // DICT
        const dict = new Map<PickleKey, PickleValue>();
        setItems(dict, popMark());
        stack.push(dict);
        break;
      }
      case 0x73: {
        // SETITEM
        const value = pop();
        const key = pop();
        setItems(top(), [key, value]);
        break;
      }
      case 0x75: {
        // SETITEMS
        const items = popMark();
        setItems(top(), items);
        break;
      }
      case 0x71: // BINPUT
        memo.set(u8(), top());
        break;
      case 0x72: // LONG_BINPUT
        memo.set(u32(), top());
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, top());
        break;
      case 0x68: // BINGET
      case 0x6a: {
        // LONG_BINGET
        const index = op === 0x68 ? u8() : u32();
        if (!memo.has(index)) fail(`the pickle gets memo ${index}, never put, at byte ${opAt}`);
        stack.push(memo.get(index) as PickleValue);
        break;
      }
      case 0x63: {
        // GLOBAL: "module\nname\n"
        const module = line();
        stack.push(global(module, line()));
        break;
      }
      case 0x93: {
        // STACK_GLOBAL (protocol 4+)
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') fail(`STACK_GLOBAL without two names at byte ${opAt}`);
        stack.push(global(module as string, name as string));
        break;
      }
      case 0x69: {
        // INST (protocol 0): names a class and calls it
        const module = line();
        const name = line();
        global(module, name); // refuses anything outside the list, naming it
        fail(`INST ${module}.${name}: a state_dict never instantiates a class this way`);
        break;
      }
      case 0x51: {
        // BINPERSID
        const pid = pop();
        if (!options.persistentLoad) fail(`a persistent id where none belongs (byte ${opAt})`);
        if (!(pid instanceof PyTuple)) fail(`a persistent id that is a ${describe(pid)}, not a tuple`);
        stack.push((options.persistentLoad as NonNullable<UnpickleOptions['persistentLoad']>)(pid as PyTuple));
        break;
      }
      case 0x52: {
        // REDUCE: callable(*args), for the allowed callables only
        const args = pop();
        const callable = pop();
        stack.push(reduce(callable, args, fail));
        break;
      }
      case 0x62: {
        // BUILD: obj.__setstate__(state)
        const state = pop();
        build(top(), state, fail);
        break;
      }
      case 0x81: {
        // NEWOBJ: cls.__new__(cls, *args)
        pop();
        const cls = pop();
        fail(`NEWOBJ of ${cls instanceof PyGlobal ? cls.qualifiedName : describe(cls)}: a state_dict never creates objects this way`);
        break;
      }
      default:
        fail(`pickle opcode 0x${op.toString(16).padStart(2, '0')} (${opcodeName(op)}) at byte ${opAt} is not one a state_dict uses; nothing was run`);
    }
  }
}

/** The refusal for a global outside the list: names it, says nothing ran and what to do. */
export function refusedGlobal(source: string, qualifiedName: string): ValidationError {
  return new ValidationError(
    ErrorCode.InvalidWeights,
    `${source}: refused: its pickle names the global ${qualifiedName}, which a PyTorch state_dict never uses ` +
      '(a pickle can run code through such names). layertap reads only tensors, dicts, OrderedDicts and tuples ' +
      'from .pth files and ran nothing from this one. If you trust the file, load it in Python and save its ' +
      'state_dict with safetensors',
  );
}

function readLong(raw: Uint8Array): number | bigint {
  if (raw.length === 0) return 0;
  let value = 0n;
  for (let i = raw.length - 1; i >= 0; i--) value = (value << 8n) | BigInt(raw[i] as number);
  if ((raw[raw.length - 1] as number) & 0x80) value -= 1n << BigInt(raw.length * 8);
  return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value;
}

function asKey(value: PickleValue, fail: (problem: string) => never): PickleKey {
  if (value === null || typeof value === 'string' || typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean') return value;
  return fail(`a dict key that is a ${describe(value)}`);
}

export function describe(value: PickleValue | undefined): string {
  if (value === null) return 'None';
  if (value === undefined) return 'nothing';
  if (Array.isArray(value)) return 'list';
  if (value instanceof Uint8Array) return 'bytes';
  if (value instanceof Map) return 'dict';
  if (value instanceof PyTuple) return 'tuple';
  if (value instanceof PyGlobal) return value.qualifiedName;
  if (value instanceof TensorRef) return 'tensor';
  if (typeof value === 'object') return 'storage';
  return typeof value;
}

function ints(value: PickleValue, what: string, fail: (problem: string) => never): number[] {
  const items = value instanceof PyTuple ? value.items : Array.isArray(value) ? value : undefined;
  if (!items || !items.every((v) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0)) {
    return fail(`a tensor whose ${what} is not a tuple of non-negative integers`);
  }
  return items as number[];
}

function tensorFrom(storage: PickleValue, offset: PickleValue, shape: PickleValue, stride: PickleValue, fail: (problem: string) => never, declared?: TorchDtype): TensorRef {
  if (storage === null || typeof storage !== 'object' || !('kind' in storage) || storage.kind !== 'storage') {
    return fail(`a tensor whose storage is a ${describe(storage)}`);
  }
  if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0) return fail('a tensor with a bad storage offset');
  const size = ints(shape, 'size', fail);
  const strides = ints(stride, 'stride', fail);
  if (size.length !== strides.length) fail(`a tensor with ${size.length} sizes and ${strides.length} strides`);
  if (!Number.isSafeInteger(size.reduce((a, b) => a * b, 1))) fail(`a tensor of shape [${size.join(', ')}], more elements than any file holds`);
  if (declared && declared !== storage.dtype) fail(`a ${declared} tensor on a ${storage.dtype} storage`);
  return new TensorRef(storage, offset, size, strides, declared);
}

/** REDUCE: only the calls a state_dict makes, each with its meaning; nothing is looked up or run. */
function reduce(callable: PickleValue, args: PickleValue, fail: (problem: string) => never): PickleValue {
  if (!(callable instanceof PyGlobal)) return fail(`REDUCE calls a ${describe(callable)}, which is not a callable a state_dict uses`);
  if (!(args instanceof PyTuple)) return fail(`REDUCE of ${callable.qualifiedName} with a ${describe(args)} for arguments`);
  const a = args.items;
  const meaning = callable.meaning;
  switch (meaning.kind) {
    case 'ordered-dict': {
      const dict = new Map<PickleKey, PickleValue>();
      // Python 2's OrderedDict pickled its items as one list of [key, value] pairs.
      const [items] = a;
      if (a.length > 1) fail('OrderedDict called with more than one argument');
      if (Array.isArray(items)) {
        for (const pair of items) {
          const kv = pair instanceof PyTuple ? pair.items : Array.isArray(pair) ? pair : undefined;
          if (!kv || kv.length !== 2) fail('OrderedDict items that are not pairs');
          dict.set(asKey((kv as PickleValue[])[0] as PickleValue, fail), (kv as PickleValue[])[1] as PickleValue);
        }
      } else if (items !== undefined) {
        fail(`OrderedDict called with a ${describe(items)}`);
      }
      return dict;
    }
    case 'rebuild-tensor-v2': {
      // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
      if (a.length < 6 || a.length > 7) fail(`_rebuild_tensor_v2 with ${a.length} arguments`);
      const [storage = null, offset = null, size = null, stride = null] = a;
      return tensorFrom(storage, offset, size, stride, fail);
    }
    case 'rebuild-tensor': {
      if (a.length !== 4) fail(`_rebuild_tensor with ${a.length} arguments`);
      const [storage = null, offset = null, size = null, stride = null] = a;
      return tensorFrom(storage, offset, size, stride, fail);
    }
    case 'rebuild-parameter': {
      // (data, requires_grad, backward_hooks): a Parameter is its tensor here
      const [data] = a;
      if (!(data instanceof TensorRef)) fail(`_rebuild_parameter of a ${describe(data)}`);
      return data as TensorRef;
    }
    case 'tensor-class':
      // torch 0.1: `torch.FloatTensor()` then BUILD with (storage, offset, size, stride)
      if (a.length !== 0) fail(`${callable.qualifiedName} called with arguments`);
      return new TensorRef(undefined, 0, [], [], meaning.dtype);
    default:
      return fail(`REDUCE calls ${callable.qualifiedName}, which a state_dict never calls`);
  }
}

/** BUILD: an OrderedDict's attributes (a state_dict's `_metadata`, ignored) or torch 0.1's tensor state. */
function build(target: PickleValue, state: PickleValue, fail: (problem: string) => never): void {
  if (target instanceof Map) {
    if (!(state instanceof Map) && !(state instanceof PyTuple)) fail(`BUILD of a dict with a ${describe(state)}`);
    return;
  }
  if (target instanceof TensorRef && target.storage === undefined) {
    const items = state instanceof PyTuple ? state.items : undefined;
    if (!items || items.length !== 4) return fail('BUILD of a torch 0.1 tensor without (storage, offset, size, stride)');
    const built = tensorFrom(items[0] as PickleValue, items[1] as PickleValue, items[2] as PickleValue, items[3] as PickleValue, fail, target.declaredDtype);
    target.storage = built.storage;
    target.offset = built.offset;
    target.shape = built.shape;
    target.stride = built.stride;
    return;
  }
  fail(`BUILD of a ${describe(target)}, which a state_dict never sets state on`);
}

const OPCODE_NAMES: Record<number, string> = {
  0x49: 'INT',
  0x4c: 'LONG',
  0x46: 'FLOAT',
  0x53: 'STRING',
  0x56: 'UNICODE',
  0x50: 'PERSID',
  0x67: 'GET',
  0x70: 'PUT',
  0x6f: 'OBJ',
  0x82: 'EXT1',
  0x83: 'EXT2',
  0x84: 'EXT4',
  0x8e: 'BINBYTES8',
  0x8f: 'EMPTY_SET',
  0x90: 'ADDITEMS',
  0x91: 'FROZENSET',
  0x92: 'NEWOBJ_EX',
  0x96: 'BYTEARRAY8',
  0x97: 'NEXT_BUFFER',
  0x98: 'READONLY_BUFFER',
};

function opcodeName(op: number): string {
  return OPCODE_NAMES[op] ?? 'unknown';
}
