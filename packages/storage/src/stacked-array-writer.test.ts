import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { float32ToFloat16Bits } from './float16';
import { decodeNpy } from './npy';
import { decodeSafetensors } from './safetensors';
import { StackedArrayWriter } from './stacked-array-writer';

describe('StackedArrayWriter', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'lt-stacked-'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  const row = (i: number) => Float32Array.from({ length: 2 * 3 }, (_, j) => i * 10 + j / 4);

  it('writes an (N, ...) .npy from rows given in any order', async () => {
    const file = path.join(dir, 'out.npy');
    const writer = new StackedArrayWriter({ path: file, format: 'npy', rows: 3, rowShape: [2, 3], dtype: 'float32' });
    await writer.open();
    for (const i of [2, 0, 1]) await writer.write(i, row(i));
    expect(writer.rowsWritten).toBe(3);
    // Nothing at `path` until every row is in.
    expect(await readdir(dir)).not.toContain('out.npy');
    await writer.close();
    const npy = decodeNpy(await readFile(file));
    expect(npy.shape).toEqual([3, 2, 3]);
    expect(npy.data).toEqual(Float32Array.from([...row(0), ...row(1), ...row(2)]));
    expect(await readdir(dir)).toEqual(['out.npy']);
    expect((await readFile(file)).length).toBe(writer.byteLength);
  });

  it('writes a float16 safetensors file with its tensor name and metadata', async () => {
    const file = path.join(dir, 'out.safetensors');
    const writer = new StackedArrayWriter({ path: file, format: 'safetensors', rows: 2, rowShape: [6], dtype: 'float16', tensorName: 'fc2', metadata: { rows: '2' } });
    await writer.open();
    await writer.write(0, float32ToFloat16Bits(row(0)));
    await writer.write(1, float32ToFloat16Bits(row(1)));
    await writer.close();
    const decoded = decodeSafetensors(await readFile(file));
    expect(decoded.metadata).toEqual({ rows: '2' });
    expect(decoded.tensors.map((t) => [t.name, t.dtype, t.shape])).toEqual([['fc2', 'F16', [2, 6]]]);
    expect(decoded.tensors[0]!.data).toEqual(float32ToFloat16Bits(Float32Array.from([...row(0), ...row(1)])));
  });

  it('writes an empty (0, ...) array', async () => {
    const file = path.join(dir, 'empty.npy');
    const writer = new StackedArrayWriter({ path: file, format: 'npy', rows: 0, rowShape: [4], dtype: 'float32' });
    await writer.open();
    await writer.close();
    expect(decodeNpy(await readFile(file))).toEqual({ dtype: 'float32', shape: [0, 4], data: new Float32Array(0) });
  });

  it('refuses rows of the wrong size, type or index, and a close with rows missing', async () => {
    const file = path.join(dir, 'out.npy');
    await writeFile(file, 'an earlier export');
    const writer = new StackedArrayWriter({ path: file, format: 'npy', rows: 3, rowShape: [2, 3], dtype: 'float32' });
    await writer.open();
    await expect(writer.write(0, new Float32Array(5))).rejects.toThrow('row 0 has 20 bytes, expected 24 (shape [2,3])');
    await expect(writer.write(0, new Uint16Array(6))).rejects.toThrow('a float32 row must be a Float32Array');
    await expect(writer.write(3, row(3))).rejects.toThrow('row 3 is outside 0..2');
    await writer.write(0, row(0));
    await writer.write(2, row(2));
    await expect(writer.close()).rejects.toThrow('1 of 3 rows were never written (first: row 1)');
    await writer.abort();
    // The earlier file is untouched and no partial file is left behind.
    expect(await readdir(dir)).toEqual(['out.npy']);
    expect(await readFile(file, 'utf8')).toBe('an earlier export');
  });
});
