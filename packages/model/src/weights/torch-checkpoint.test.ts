// PyTorch checkpoints written by torch itself (test/fixtures/pth, made by test/parity/make_pth_fixtures.py with
// Debian's python3-torch), in both serializations, read without Python.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { ErrorCode, ValidationError } from '@layertap/contracts';
import { PTH, buildZip, rejection } from '../testing/helpers';
import { TensorRef } from './pickle';
import { fileAccess, memoryAccess, type RandomAccess } from './random-access';
import { openTorchCheckpoint, tensorValues } from './torch-checkpoint';
import { readZipDirectory, readZipEntry } from './zip';

interface Expected {
  shape: number[];
  dtype: string;
  values?: number[];
}
interface PthIndex {
  views: { expected: Record<string, Expected>; files: Record<'zip' | 'legacy', string> };
  torch01: { file: string; expected: Record<string, Expected> };
  malicious: { global: string; files: Record<'zip' | 'legacy', string> };
}

let index: PthIndex;
beforeAll(async () => {
  index = JSON.parse(await readFile(path.join(PTH, 'index.json'), 'utf8')) as PthIndex;
});

/** A file access that records every range read. */
async function recording(file: string): Promise<{ access: RandomAccess; reads: [number, number][] }> {
  const inner = await fileAccess(file);
  const reads: [number, number][] = [];
  return {
    reads,
    access: {
      size: inner.size,
      read: (offset, length) => {
        reads.push([offset, length]);
        return inner.read(offset, length);
      },
      close: () => inner.close(),
    },
  };
}

async function open(file: string) {
  const access = await fileAccess(path.join(PTH, file));
  return { access, checkpoint: await openTorchCheckpoint(access, file) };
}

describe.each(['zip', 'legacy'] as const)('openTorchCheckpoint (%s format)', (format) => {
  it('reads views into one storage (offsets, strides, a transpose), 0-d, empty, float16, bfloat16 and float64 tensors exactly', async () => {
    const { access, checkpoint } = await open(index.views.files[format]);
    try {
      expect(checkpoint.serialization).toBe(format);
      const expected = index.views.expected;
      expect(checkpoint.tensors.map((t) => t.name)).toEqual(Object.keys(expected));
      for (const tensor of checkpoint.tensors) {
        const want = expected[tensor.name]!;
        expect({ name: tensor.name, shape: tensor.shape }).toEqual({ name: tensor.name, shape: want.shape });
        if (!want.values) continue;
        const values = await checkpoint.read(tensor.name);
        // Every value written is a float32 value (float16/bfloat16/float64 test values chosen so): exact.
        expect({ name: tensor.name, values: [...values] }).toEqual({ name: tensor.name, values: want.values.map(Math.fround) });
      }
      expect(checkpoint.tensors.find((t) => t.name === 'half_t')?.dtype).toBe('float16');
      const long = await rejection(checkpoint.read('long'));
      expect(long.code).toBe(ErrorCode.InvalidWeights);
      expect(long.message).toContain('tensor long is int64; layertap reads float32, float16, bfloat16 and float64 weights');
    } finally {
      await access.close();
    }
  });

  it(`refuses the malicious checkpoint (a __reduce__ calling os.system), naming ${'posix.system'}, before reading any tensor data`, async () => {
    const file = path.join(PTH, index.malicious.files[format]);
    const { access, reads } = await recording(file);
    try {
      const err = await rejection(openTorchCheckpoint(access, 'malicious.pth'));
      expect(err).toBeInstanceOf(ValidationError);
      expect(err.code).toBe(ErrorCode.InvalidWeights);
      expect(err.message).toContain(`refused: its pickle names the global ${index.malicious.global}`);
      if (format === 'zip') {
        // Only the directory at the end and data.pkl were read: no storage entry (they follow data.pkl).
        const all = await readZipDirectory(memoryAccess(await readFile(file)), 'x');
        const storages = all.filter((e) => e.name.includes('/data/'));
        expect(storages.length).toBeGreaterThan(0);
        for (const entry of storages) expect(reads.some(([offset]) => offset === entry.localHeaderOffset)).toBe(false);
      }
    } finally {
      await access.close();
    }
  });
});

describe('openTorchCheckpoint', () => {
  it('reads the oldest legacy layout (torch 0.1: torch.FloatTensor + __setstate__, storage views) as torch.load does', async () => {
    const { access, checkpoint } = await open(index.torch01.file);
    try {
      for (const [name, want] of Object.entries(index.torch01.expected)) {
        expect([...(await checkpoint.read(name))]).toEqual(want.values!.map(Math.fround));
        expect(checkpoint.tensors.find((t) => t.name === name)?.shape).toEqual(want.shape);
      }
    } finally {
      await access.close();
    }
  });

  it('reads only the storages asked for, never the whole file', async () => {
    const file = path.join(PTH, 'vgg16-blocks1-2-seed11.zip.pth');
    const { access, reads } = await recording(file);
    try {
      const checkpoint = await openTorchCheckpoint(access, 'x');
      const bias = await checkpoint.read('features.0.bias');
      expect(bias).toHaveLength(64);
      const total = reads.reduce((sum, [, length]) => sum + length, 0);
      expect(total).toBeLessThan(access.size / 10);
    } finally {
      await access.close();
    }
  });

  it('refuses files that are not checkpoints, saying what they are', async () => {
    const notPickle = await rejection(openTorchCheckpoint(memoryAccess(Buffer.from('hello world, not weights')), 'a.bin'));
    expect(notPickle.message).toContain('a.bin: not a PyTorch checkpoint');
    // A zip without data.pkl (a Keras 3 .keras file is a zip too).
    const zip = buildZip([{ name: 'config.json', data: Buffer.from('{}') }], false);
    const keras = await rejection(openTorchCheckpoint(memoryAccess(zip), 'model.keras'));
    expect(keras.message).toContain('a zip archive but not a PyTorch checkpoint: expected one <archive>/data.pkl, found none');
  });
});

describe('tensorValues', () => {
  const storage = { kind: 'storage' as const, dtype: 'float32' as const };
  const bytes = new Uint8Array(new Float32Array([0, 1, 2, 3, 4, 5, 6, 7]).buffer);

  it('returns a contiguous float32 tensor as a view of its storage (no copy)', () => {
    const values = tensorValues(new TensorRef(storage, 2, [2, 2], [2, 1]), bytes, 't');
    expect([...values]).toEqual([2, 3, 4, 5]);
    expect(values.buffer).toBe(bytes.buffer);
  });

  it('gathers strided views and refuses one that reaches past its storage', () => {
    expect([...tensorValues(new TensorRef(storage, 1, [2, 3], [1, 2]), bytes, 't')]).toEqual([1, 3, 5, 2, 4, 6]);
    expect(() => tensorValues(new TensorRef(storage, 3, [2, 3], [1, 2]), bytes, 't')).toThrow('t reaches element 8 of a storage of 8 (float32)');
  });
});

describe('readZipDirectory', () => {
  it('reads ZIP64 records and a trailing comment, as torch writes for files past 4 GiB', async () => {
    const zip = buildZip(
      [
        { name: 'archive/data.pkl', data: Buffer.from('pickle') },
        { name: 'archive/data/0', data: Buffer.from([1, 2, 3, 4]) },
      ],
      true,
      Buffer.from('comment with PK\x05\x06 inside'),
    );
    const access = memoryAccess(zip);
    const entries = await readZipDirectory(access, 'z');
    expect(entries.map((e) => [e.name, e.size])).toEqual([
      ['archive/data.pkl', 6],
      ['archive/data/0', 4],
    ]);
    expect([...(await readZipEntry(access, entries[1]!, 'z'))]).toEqual([1, 2, 3, 4]);
  });
});
