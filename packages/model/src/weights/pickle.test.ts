// The non-executing unpickler, on pickles written byte by byte (each opcode as CPython's pickle writes it).
import { ErrorCode, ValidationError } from '@layertap/contracts';
import { PyGlobal, PyTuple, TensorRef, TruncatedPickleError, unpickle, type PickleValue, type StorageRef } from './pickle';

/** A pickle from opcodes: numbers are bytes, strings are latin1 text. */
function pkl(...parts: (number | string | Uint8Array)[]): Uint8Array {
  const chunks = parts.map((p) => (typeof p === 'number' ? Buffer.from([p]) : typeof p === 'string' ? Buffer.from(p, 'latin1') : Buffer.from(p)));
  return new Uint8Array(Buffer.concat(chunks));
}
const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
};
const PROTO2 = [0x80, 2] as const;
const STOP = '.';
const unicode = (s: string) => pkl('X', u32(Buffer.byteLength(s)), Buffer.from(s, 'utf8'));
const global = (module: string, name: string) => `c${module}\n${name}\n`;

function read(bytes: Uint8Array, persistentLoad?: (pid: PyTuple) => StorageRef): PickleValue {
  return unpickle(bytes, 0, { source: 'test.pth', ...(persistentLoad ? { persistentLoad } : {}) }).value;
}

function refusal(bytes: Uint8Array): ValidationError {
  try {
    read(bytes, () => ({ kind: 'storage', dtype: 'float32' }));
  } catch (err) {
    if (err instanceof ValidationError) return err;
    throw err;
  }
  throw new Error('expected the pickle to be refused');
}

describe('unpickle', () => {
  it('reads the scalars, containers and memo opcodes a state_dict uses', () => {
    const bytes = pkl(
      ...PROTO2,
      '}', 'q', 0, // EMPTY_DICT, BINPUT 0
      '(', // MARK
      unicode('ints'), '(', 'K', 7, 'M', Buffer.from([0x34, 0x12]), 'J', Buffer.from([0xfe, 0xff, 0xff, 0xff]), 0x8a, 2, Buffer.from([0x00, 0x80]), 't', // BININT1, BININT2, BININT (-2), LONG1 (-32768), TUPLE
      unicode('big'), 0x8a, 10, Buffer.from([0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19]),
      unicode('float'), 'G', Buffer.from([0x3f, 0xf8, 0, 0, 0, 0, 0, 0]), // 1.5, big-endian
      unicode('flags'), 0x88, 0x89, 'N', 0x87, // True, False, None
      unicode('list'), ']', 'q', 1, 'K', 1, 'a', '(', 'K', 2, 'K', 3, 'e', // EMPTY_LIST, APPEND, APPENDS
      unicode('py2'), 'U', 3, 'abc', // SHORT_BINSTRING
      unicode('again'), 'h', 1, // BINGET 1: the same list
      unicode('empty'), ')', // EMPTY_TUPLE
      'u', // SETITEMS
      STOP,
    );
    const value = read(bytes) as Map<string, PickleValue>;
    expect([...value.keys()]).toEqual(['ints', 'big', 'float', 'flags', 'list', 'py2', 'again', 'empty']);
    expect((value.get('ints') as PyTuple).items).toEqual([7, 0x1234, -2, -32768]);
    expect(value.get('big')).toBe(0x1950a86a20f9469cfc6cn);
    expect(value.get('float')).toBe(1.5);
    expect((value.get('flags') as PyTuple).items).toEqual([true, false, null]);
    expect(value.get('list')).toEqual([1, 2, 3]);
    expect(value.get('again')).toBe(value.get('list'));
    expect(value.get('py2')).toBe('abc');
    expect((value.get('empty') as PyTuple).items).toEqual([]);
  });

  it("builds OrderedDicts (Python 3's REDUCE + SETITEMS + BUILD of _metadata, and Python 2's list of pairs)", () => {
    const od = global('collections', 'OrderedDict');
    const py3 = pkl(...PROTO2, od, ')', 'R', '(', unicode('a'), 'K', 1, unicode('b'), 'K', 2, 'u', '}', unicode('_metadata'), '}', 's', 'b', STOP);
    expect(read(py3)).toEqual(new Map([['a', 1], ['b', 2]]));
    const py2 = pkl(...PROTO2, od, '(', ']', ']', '(', 'U', 1, 'x', 'K', 5, 'e', 'a', 't', 'R', STOP);
    expect(read(py2)).toEqual(new Map([['x', 5]]));
  });

  it('describes tensors from _rebuild_tensor_v2 and storages from persistent ids, without reading data', () => {
    const storages: PyTuple[] = [];
    const bytes = pkl(
      ...PROTO2,
      global('torch._utils', '_rebuild_tensor_v2'),
      '(',
      '(', unicode('storage'), global('torch', 'HalfStorage'), unicode('0'), unicode('cpu'), 'K', 24, 't', 'Q', // BINPERSID
      'K', 4, // storage offset
      'K', 2, 'K', 3, 0x86, // size (2, 3)
      'K', 1, 'K', 2, 0x86, // stride (1, 2)
      0x89, global('collections', 'OrderedDict'), ')', 'R', // requires_grad, backward_hooks
      't', 'R', STOP,
    );
    const value = read(bytes, (pid) => {
      storages.push(pid);
      return { kind: 'storage', dtype: (pid.items[1] as PyGlobal).meaning.kind === 'storage-type' ? 'float16' : 'float32' };
    });
    expect(value).toBeInstanceOf(TensorRef);
    expect(value).toMatchObject({ offset: 4, shape: [2, 3], stride: [1, 2], storage: { kind: 'storage', dtype: 'float16' } });
    expect(storages).toHaveLength(1);
    expect((storages[0]!.items[1] as PyGlobal).qualifiedName).toBe('torch.HalfStorage');
    expect(storages[0]!.items.slice(2)).toEqual(['0', 'cpu', 24]);
  });

  it('reads a torch 0.1 tensor: torch.FloatTensor() then BUILD with (storage, offset, size, stride)', () => {
    const bytes = pkl(
      ...PROTO2,
      global('torch', 'FloatTensor'), ')', 'R',
      '(', '(', unicode('storage'), global('torch', 'FloatStorage'), unicode('k'), unicode('cpu'), 'K', 6, 'N', 't', 'Q', 'K', 1, 'K', 5, 0x85, 'K', 1, 0x85, 't',
      'b', STOP,
    );
    expect(read(bytes, () => ({ kind: 'storage', dtype: 'float32' }))).toMatchObject({ offset: 1, shape: [5], stride: [1], declaredDtype: 'float32' });
  });

  it('accepts storages and torch 0.1 tensor classes saved from a GPU (torch.cuda.*), and nothing else of torch.cuda', () => {
    const cuda = pkl(...PROTO2, global('torch.cuda', 'FloatTensor'), ')', 'R', STOP);
    expect(read(cuda)).toMatchObject({ declaredDtype: 'float32' });
    const storage = pkl(...PROTO2, global('torch.cuda', 'HalfStorage'), STOP);
    expect((read(storage) as PyGlobal).meaning).toEqual({ kind: 'storage-type', dtype: 'float16' });
    expect(refusal(pkl(...PROTO2, global('torch.cuda', 'set_device'), STOP)).message).toContain('names the global torch.cuda.set_device');
    expect(refusal(pkl(...PROTO2, global('torch.cuda', 'float32'), STOP)).message).toContain('names the global torch.cuda.float32');
  });

  it.each([
    ['os', 'system'],
    ['builtins', 'eval'],
    ['posix', 'system'],
    ['subprocess', 'Popen'],
    ['__builtin__', 'getattr'],
    ['torch', 'load'],
    ['torch._utils', '_rebuild_from_type'],
  ])('refuses the global %s.%s, naming it, before anything else happens', (module, name) => {
    // What `__reduce__` returning (os.system, ('touch marker',)) pickles as.
    const bytes = pkl(...PROTO2, global(module, name), unicode('touch marker'), 0x85, 'R', STOP);
    const err = refusal(bytes);
    expect(err.code).toBe(ErrorCode.InvalidWeights);
    expect(err.message).toContain(`test.pth: refused: its pickle names the global ${module}.${name}`);
    expect(err.message).toContain('ran nothing');
  });

  it('refuses a global named through STACK_GLOBAL (protocol 4) or INST (protocol 0)', () => {
    const stackGlobal = pkl(0x80, 4, 0x8c, 2, 'os', 0x8c, 6, 'system', 0x93, unicode('id'), 0x85, 'R', STOP);
    expect(refusal(stackGlobal).message).toContain('names the global os.system');
    const inst = pkl(...PROTO2, '(', unicode('id'), 'ios\nsystem\n', STOP);
    expect(refusal(inst).message).toContain('names the global os.system');
  });

  it('refuses REDUCE on callables a state_dict never calls, even allowed names', () => {
    const storageCall = pkl(...PROTO2, global('torch', 'FloatStorage'), 'K', 3, 0x85, 'R', STOP);
    expect(refusal(storageCall).message).toContain('REDUCE calls torch.FloatStorage, which a state_dict never calls');
    const dtypeCall = pkl(...PROTO2, global('torch', 'float32'), ')', 'R', STOP);
    expect(refusal(dtypeCall).message).toContain('REDUCE calls torch.float32');
    const stringCall = pkl(...PROTO2, unicode('os.system'), unicode('id'), 0x85, 'R', STOP);
    expect(refusal(stringCall).message).toContain('REDUCE calls a string');
    const newobj = pkl(...PROTO2, global('collections', 'OrderedDict'), ')', 0x81, STOP);
    expect(refusal(newobj).message).toContain('NEWOBJ of collections.OrderedDict');
    const build = pkl(...PROTO2, ']', '}', 'b', STOP);
    expect(refusal(build).message).toContain('BUILD of a list');
  });

  it('refuses opcodes a state_dict does not use, naming them', () => {
    expect(refusal(pkl(...PROTO2, 0x8f, STOP)).message).toContain('pickle opcode 0x8f (EMPTY_SET)');
    expect(refusal(pkl(...PROTO2, 'P', 'x\n', STOP)).message).toContain('pickle opcode 0x50 (PERSID)');
    expect(refusal(pkl(0x80, 9, 'N', STOP)).message).toContain('pickle protocol 9');
    expect(refusal(pkl('N', STOP)).message).toContain('not a pickle');
  });

  it('refuses malformed tensors and persistent ids where none belong', () => {
    const noStorage = pkl(...PROTO2, global('torch._utils', '_rebuild_tensor_v2'), '(', 'N', 'K', 0, ')', ')', 0x89, 'N', 't', 'R', STOP);
    expect(refusal(noStorage).message).toContain('a tensor whose storage is a None');
    const pid = pkl(...PROTO2, '(', unicode('storage'), 't', 'Q', STOP);
    expect(() => read(pid)).toThrow('a persistent id where none belongs');
  });

  it('says when the bytes end before the pickle does', () => {
    expect(() => read(pkl(...PROTO2, 'X', u32(100), 'abc'))).toThrow(TruncatedPickleError);
    expect(() => read(pkl(...PROTO2, 'N'))).toThrow(TruncatedPickleError);
  });

  it('takes a list of 3M APPENDS items without overflowing the stack (issue 18)', () => {
    const n = 3_000_000;
    const items = Buffer.alloc(n * 2);
    for (let i = 0; i < n; i++) items.writeUInt16LE(0x4b | ((i & 0xff) << 8), i * 2); // BININT1 i & 0xff
    const list = read(pkl(...PROTO2, ']', '(', items, 'e', STOP)) as number[];
    expect(list).toHaveLength(n);
    expect([list[0], list[255], list[256], list[n - 1]]).toEqual([0, 255, 0, (n - 1) & 0xff]);
  });

  it('refuses a tensor whose shape has more elements than any file holds (issue 18)', () => {
    const storage = pkl('(', unicode('storage'), global('torch', 'FloatStorage'), unicode('0'), unicode('cpu'), 'K', 1, 't', 'Q');
    const huge = 'J' + Buffer.from([0xff, 0xff, 0xff, 0x7f]).toString('latin1');
    const bomb = pkl(...PROTO2, global('torch._utils', '_rebuild_tensor_v2'), '(', storage, 'K', 0, '(', huge, huge, huge, 't', '(', 'K', 0, 'K', 0, 'K', 0, 't', 0x89, ')', 't', 'R', STOP);
    expect(refusal(bomb).message).toContain('more elements than any file holds');
  });
});
