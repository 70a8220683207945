import { ValidationError } from '@layertap/contracts';
import { decodeSafetensors } from './safetensors';
import { float16BitsToFloat32 } from './float16';
import { ShardBuilder, shardTensorName } from './shard-builder';

const layers = [
  { spec: 'features.9', shape: [2, 2, 2] },
  { spec: 'fc2', shape: [3] },
];
const ramp = (n: number, from: number) => Float32Array.from({ length: n }, (_, i) => from + i);

describe('ShardBuilder', () => {
  it('keeps the samples whose layers were all stored, in chunk order, without gaps', () => {
    const builder = new ShardBuilder({ sampleIds: ['a', 'b', 'c', 'd'], layers, dtype: 'float32', metadata: { datasetId: 'ds', chunk: '3' } });
    // Batches come back out of order; 'b' failed; 'c' got only one layer (counts as not stored).
    builder.set(3, 'features.9', ramp(8, 300));
    builder.set(3, 'fc2', ramp(3, 310));
    builder.set(0, 'fc2', ramp(3, 10));
    builder.set(0, 'features.9', ramp(8, 0));
    builder.set(2, 'fc2', ramp(3, 210));
    expect(builder.tensorCount).toBe(5);
    const out = builder.finish()!;
    const decoded = decodeSafetensors(out);
    expect(decoded.metadata).toEqual({ datasetId: 'ds', chunk: '3' });
    expect(decoded.tensors.map((t) => t.name)).toEqual(['a/features.9', 'a/fc2', 'd/features.9', 'd/fc2']);
    expect(decoded.tensors.map((t) => t.shape)).toEqual([[2, 2, 2], [3], [2, 2, 2], [3]]);
    expect([...decoded.tensors[0]!.data]).toEqual([...ramp(8, 0)]);
    expect([...decoded.tensors[1]!.data]).toEqual([10, 11, 12]);
    expect([...decoded.tensors[2]!.data]).toEqual([...ramp(8, 300)]);
    expect([...decoded.tensors[3]!.data]).toEqual([310, 311, 312]);
    // Data starts 8-byte aligned and the file is exactly header + 2 samples of (8 + 3) floats.
    const headerLength = Number(out.readBigUInt64LE(0));
    expect((8 + headerLength) % 8).toBe(0);
    expect(out.length).toBe(8 + headerLength + 2 * 11 * 4);
  });

  it('rounds to float16 for float16 datasets', () => {
    const builder = new ShardBuilder({ sampleIds: ['x'], layers: [{ spec: 'fc2', shape: [3] }], dtype: 'float16', metadata: {} });
    builder.set(0, 'fc2', new Float32Array([0.1, 1, 70000]));
    const [t] = decodeSafetensors(builder.finish()!).tensors;
    expect(t?.dtype).toBe('F16');
    expect([...float16BitsToFloat32(t!.data as Uint16Array)]).toEqual([Math.fround(0.0999755859375), 1, Infinity]);
  });

  it('gives nothing when no sample was stored, and refuses wrong layers, slots and sizes', () => {
    const builder = new ShardBuilder({ sampleIds: ['a', 'b'], layers, dtype: 'float32', metadata: {} });
    expect(() => builder.set(0, 'fc1', ramp(3, 0))).toThrow(/not in this shard/);
    expect(() => builder.set(2, 'fc2', ramp(3, 0))).toThrow(/outside the chunk of 2/);
    expect(() => builder.set(0, 'fc2', ramp(4, 0))).toThrow(/do not match shape \[3\]/);
    expect(builder.finish()).toBeUndefined();
    expect(() => builder.set(0, 'fc2', ramp(3, 0))).toThrow(/already finished/);
  });

  it('refuses a chunk whose shard would not fit one buffer', () => {
    const big = [{ spec: 'block1_conv1', shape: [64, 224, 224] }];
    const make = () => new ShardBuilder({ sampleIds: Array.from({ length: 400 }, (_, i) => `s${i}`), layers: big, dtype: 'float32', metadata: {} });
    expect(make).toThrow(ValidationError);
    expect(make).toThrow(/a shard of 400 samples needs \d+ bytes, over 2147483648: use a smaller chunk size/);
  });

  it('names tensors <sampleId>/<layerSpec>', () => {
    expect(shardTensorName('cats__001', 'features.9')).toBe('cats__001/features.9');
  });
});
