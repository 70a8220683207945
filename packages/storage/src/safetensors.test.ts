import { decodeSafetensors, encodeSafetensors, safetensorsHeader } from './safetensors';
import { SafetensorsFormatError } from './errors';
import { float32ToFloat16Bits } from './float16';

/** A file from its header JSON text and data bytes, for decoder tests. */
function file(json: string, data: number[] = []): Buffer {
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  return Buffer.concat([len, Buffer.from(json), Buffer.from(data)]);
}

describe('encodeSafetensors', () => {
  // The reference implementation's own test vectors (huggingface/safetensors, tensor.rs `test_serialization`
  // and `test_serialization_forced_alignement`): a header of exactly 64 bytes needs no padding; one of 57
  // is padded with 7 spaces.
  const values = new Float32Array([0, 1, 2, 3, 4, 5]);

  it('matches the reference serialisation byte for byte', () => {
    const out = encodeSafetensors([{ name: 'attn.0', dtype: 'F32', shape: [1, 2, 3], data: values }]);
    expect(out.readBigUInt64LE(0)).toBe(64n);
    expect(out.toString('utf8', 8, 72)).toBe('{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}');
    expect([...out.subarray(72)]).toEqual([0, 0, 0, 0, 0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64, 0, 0, 160, 64]);
  });

  it('pads the header with spaces so the data starts 8-byte aligned', () => {
    const out = encodeSafetensors([{ name: 'attn0', dtype: 'F32', shape: [1, 1, 2, 3], data: values }]);
    expect(out.readBigUInt64LE(0)).toBe(72n);
    expect(out.toString('utf8', 8, 80)).toBe(`{"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}${' '.repeat(7)}`);
    expect(out.length).toBe(80 + 24);
  });

  it('writes an empty file as {} padded to 8, and metadata first', () => {
    expect([...encodeSafetensors([])]).toEqual([8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32]);
    const withMeta = encodeSafetensors([], { framework: 'pt' });
    expect(withMeta.readBigUInt64LE(0)).toBe(40n);
    expect(withMeta.toString('utf8', 8).trimEnd()).toBe('{"__metadata__":{"framework":"pt"}}');
  });

  it('stores tensors back to back and round-trips F32 and F16 with metadata', () => {
    const a = new Float32Array([1.5, -2, 3.25, 0]);
    const b = float32ToFloat16Bits(new Float32Array([0.5, 65504, -1]));
    const out = encodeSafetensors(
      [
        { name: 's1/features.9', dtype: 'F32', shape: [2, 2], data: a },
        { name: 's1/fc2', dtype: 'F16', shape: [3], data: b },
      ],
      { datasetId: 'ds', run: '0' },
    );
    const header = JSON.parse(out.toString('utf8', 8, 8 + Number(out.readBigUInt64LE(0))));
    expect(header['s1/features.9'].data_offsets).toEqual([0, 16]);
    expect(header['s1/fc2'].data_offsets).toEqual([16, 22]);
    const decoded = decodeSafetensors(out);
    expect(decoded.metadata).toEqual({ datasetId: 'ds', run: '0' });
    expect(decoded.tensors.map((t) => [t.name, t.dtype, t.shape])).toEqual([
      ['s1/features.9', 'F32', [2, 2]],
      ['s1/fc2', 'F16', [3]],
    ]);
    expect([...decoded.tensors[0]!.data]).toEqual([1.5, -2, 3.25, 0]);
    expect([...decoded.tensors[1]!.data]).toEqual([0x3800, 0x7bff, 0xbc00]);
    // Only the tensors asked for are copied out; the file is still checked whole.
    const fc2 = decodeSafetensors(out, new Set(['s1/fc2']));
    expect(fc2.tensors.map((t) => [t.name, [...t.data]])).toEqual([['s1/fc2', [0x3800, 0x7bff, 0xbc00]]]);
    expect(() => decodeSafetensors(out.subarray(0, out.length - 1), new Set(['s1/features.9']))).toThrow(SafetensorsFormatError);
  });

  it('refuses data that does not fit the shape, and non-string metadata', () => {
    expect(() => encodeSafetensors([{ name: 'x', dtype: 'F32', shape: [3], data: new Float32Array(2) }])).toThrow(/holds 3 values but the array has 2/);
    expect(() => encodeSafetensors([{ name: 'x', dtype: 'F16', shape: [2], data: new Float32Array(2) }])).toThrow(/Uint16Array/);
    expect(() => safetensorsHeader([], { n: 1 as unknown as string })).toThrow(/must be strings/);
    expect(() => safetensorsHeader([{ name: 'a', dtype: 'F32', shape: [1] }, { name: 'a', dtype: 'F32', shape: [1] }])).toThrow(/appears twice/);
  });
});

describe('decodeSafetensors', () => {
  it.each([
    ['a short file', Buffer.alloc(4), /shorter than the 8-byte/],
    ['a header past the end', file('{}').subarray(0, 9), /runs past the end/],
    ['a header that is not an object', file('[1]'), /does not start with \{|not a JSON object/],
    ['a gap between tensors', file('{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', [0, 0, 0, 0, 0, 0, 0, 0]), /gap or overlap/],
    ['a size that does not match the shape', file('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}', [0, 0, 0, 0]), /do not hold F32/],
    ['trailing bytes', file('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', [0, 0, 0, 0, 9]), /cover 4 of 5/],
    ['an unsupported dtype', file('{"a":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}', [0, 0, 0, 0, 0, 0, 0, 0]), /unsupported dtype "I64"/],
    ['non-string metadata', file('{"__metadata__":{"n":1}}'), /__metadata__.n is not a string/],
  ])('refuses %s', (_what, buf, message) => {
    const err = (() => {
      try {
        decodeSafetensors(buf);
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(SafetensorsFormatError);
    expect((err as Error).message).toMatch(message);
  });

  it('reads tensors listed out of offset order, as the reference reader does', () => {
    const buf = file('{"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', [0, 0, 128, 63, 0, 0, 0, 64]);
    expect(decodeSafetensors(buf).tensors.map((t) => [t.name, t.data[0]])).toEqual([
      ['a', 1],
      ['b', 2],
    ]);
  });
});
