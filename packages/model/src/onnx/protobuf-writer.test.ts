import { decodeFields, readVarint } from '../testing/onnx-decode';
import { ProtoWriter, encodeVarint } from './protobuf-writer';

describe('ProtoWriter', () => {
  it('encodes varints as protobuf does, negative int64s in ten bytes', () => {
    expect(Array.from(encodeVarint(0))).toEqual([0]);
    expect(Array.from(encodeVarint(1))).toEqual([1]);
    expect(Array.from(encodeVarint(300))).toEqual([0xac, 0x02]);
    expect(Array.from(encodeVarint(2 ** 35))).toEqual([0x80, 0x80, 0x80, 0x80, 0x80, 0x01]);
    const minusOne = encodeVarint(-1);
    expect(minusOne).toHaveLength(10);
    expect(BigInt.asIntN(64, readVarint(minusOne, 0)[0])).toBe(-1n);
  });

  it('writes keys, strings, floats and nested messages with their lengths', () => {
    const inner = new ProtoWriter().varint(1, 150).string(2, 'hé');
    const outer = new ProtoWriter().message(3, inner).float(4, 1.5).varints(5, [1, 2]);
    const bytes = outer.finish();
    expect(outer.length).toBe(bytes.length);
    // Field 3, wire type 2 (0x1a), length 6: field 1 varint 150 (08 96 01), field 2 "hé" (12 03 68 c3 a9).
    expect(Array.from(bytes.subarray(0, 10))).toEqual([0x1a, 8, 0x08, 0x96, 0x01, 0x12, 0x03, 0x68, 0xc3, 0xa9]);
    const fields = decodeFields(bytes);
    expect(fields.map((f) => [f.field, f.wire])).toEqual([[3, 2], [4, 5], [5, 0], [5, 0]]);
    expect(new DataView((fields[1]?.value as Uint8Array).slice().buffer).getFloat32(0, true)).toBe(1.5);
    expect(decodeFields(fields[0]?.value as Uint8Array).map((f) => f.value)).toEqual([150n, new TextEncoder().encode('hé')]);
  });

  it('copies a bytes field once, at finish()', () => {
    const data = new Uint8Array(100_000).fill(7);
    const writer = new ProtoWriter().bytes(9, data);
    data[0] = 8;
    const bytes = writer.finish();
    expect(bytes).toHaveLength(1 + 3 + 100_000);
    expect(bytes[4]).toBe(8);
    data[1] = 9;
    expect(bytes[5]).toBe(7);
  });
});
