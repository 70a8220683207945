import { decodeNpy, encodeNpy, npyByteLength, npyHeader } from './npy';
import { NpyFormatError } from './errors';

// Written by NumPy 2.4 `np.save` (see the comment of each).
const NUMPY_FIXTURES = {
  // np.arange(6, dtype='<f4').reshape(2, 3)
  f4x2x3:
    'k05VTVBZAQB2AHsnZGVzY3InOiAnPGY0JywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKDIsIDMpLCB9ICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoAAAAAAACAPwAAAEAAAEBAAACAQAAAoEA=',
  // np.array([1, -2, 0.5, 65504], dtype='<f2')
  f2x4: 'k05VTVBZAQB2AHsnZGVzY3InOiAnPGYyJywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKDQsKSwgfSAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoAPADAADj/ew==',
  // np.array(3.5, dtype='<f4')
  f4scalar:
    'k05VTVBZAQB2AHsnZGVzY3InOiAnPGY0JywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKCksIH0gICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoAAGBA',
};
const fixture = (name: keyof typeof NUMPY_FIXTURES) => Buffer.from(NUMPY_FIXTURES[name], 'base64');

function headerText(buf: Buffer): string {
  return buf.toString('latin1', 10, 10 + buf.readUInt16LE(8));
}

describe('encodeNpy', () => {
  it('writes the v1.0 preamble and a 64-byte aligned header', () => {
    const buf = encodeNpy(new Float32Array(128 * 56 * 56), [128, 56, 56], 'float32');
    expect([...buf.subarray(0, 8)]).toEqual([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 0x01, 0x00]);
    const header = headerText(buf);
    expect(header.trimEnd()).toBe("{'descr': '<f4', 'fortran_order': False, 'shape': (128, 56, 56), }");
    expect(header.endsWith(' \n')).toBe(true);
    expect((10 + header.length) % 64).toBe(0);
    expect(buf.length).toBe(10 + header.length + 128 * 56 * 56 * 4);
    expect(buf.length).toBe(npyByteLength([128, 56, 56], 'float32'));
  });

  it('writes 1-D shapes as (n,) and 0-D as ()', () => {
    expect(headerText(encodeNpy(new Float32Array(4096), [4096], 'float32')).trimEnd()).toBe(
      "{'descr': '<f4', 'fortran_order': False, 'shape': (4096,), }",
    );
    expect(headerText(encodeNpy(new Float32Array([3.5]), [], 'float32')).trimEnd()).toBe("{'descr': '<f4', 'fortran_order': False, 'shape': (), }");
  });

  it('matches NumPy byte for byte', () => {
    expect(encodeNpy(new Float32Array([0, 1, 2, 3, 4, 5]), [2, 3], 'float32').equals(fixture('f4x2x3'))).toBe(true);
    expect(encodeNpy(new Uint16Array([0x3c00, 0xc000, 0x3800, 0x7bff]), [4], 'float16').equals(fixture('f2x4'))).toBe(true);
    expect(encodeNpy(new Float32Array([3.5]), [], 'float32').equals(fixture('f4scalar'))).toBe(true);
  });

  it('rounds float32 values to float16 when asked for float16', () => {
    const buf = encodeNpy(new Float32Array([1, -2, 0.5, 65504]), [4], 'float16');
    expect(buf.equals(fixture('f2x4'))).toBe(true);
    expect(buf.length).toBe(npyByteLength([4], 'float16'));
  });

  it('encodes subarrays (views at an offset) correctly', () => {
    const big = new Float32Array([9, 9, 0, 1, 2, 3, 4, 5, 9]);
    expect(encodeNpy(big.subarray(2, 8), [2, 3], 'float32').equals(fixture('f4x2x3'))).toBe(true);
  });

  it('refuses a shape that does not fit the data, and mismatched types', () => {
    expect(() => encodeNpy(new Float32Array(5), [2, 3], 'float32')).toThrow('shape (2, 3) holds 6 values but the array has 5');
    expect(() => encodeNpy(new Float32Array(6), [2, -3], 'float32')).toThrow(RangeError);
    expect(() => encodeNpy(new Float32Array(6), [2, 1.5], 'float32')).toThrow(RangeError);
    expect(() => encodeNpy(new Uint16Array(6), [6], 'float32')).toThrow(TypeError);
  });
});

describe('npyByteLength', () => {
  it('is the exact file size', () => {
    for (const [shape, dtype] of [
      [[512, 14, 14], 'float32'],
      [[4096], 'float16'],
      [[], 'float32'],
      [[0], 'float16'],
      [[3, 224, 224], 'float16'],
    ] as const) {
      const n = shape.reduce((a: number, b: number) => a * b, 1);
      const data = dtype === 'float32' ? new Float32Array(n) : new Uint16Array(n);
      expect(npyByteLength(shape, dtype)).toBe(encodeNpy(data, shape, dtype).length);
    }
    expect(npyByteLength([4096], 'float32')).toBe(128 + 4096 * 4);
  });
});

describe('decodeNpy', () => {
  it('reads files written by NumPy', () => {
    const a = decodeNpy(fixture('f4x2x3'));
    expect(a.dtype).toBe('float32');
    expect(a.shape).toEqual([2, 3]);
    expect(Array.from(a.data)).toEqual([0, 1, 2, 3, 4, 5]);
    const b = decodeNpy(fixture('f2x4'));
    expect(b).toMatchObject({ dtype: 'float16', shape: [4] });
    expect(Array.from(b.data)).toEqual([0x3c00, 0xc000, 0x3800, 0x7bff]);
    const c = decodeNpy(fixture('f4scalar'));
    expect(c.shape).toEqual([]);
    expect(Array.from(c.data)).toEqual([3.5]);
  });

  it('round-trips what encodeNpy writes, also from an unaligned buffer', () => {
    const values = Float32Array.from({ length: 3 * 4 * 5 }, (_, i) => Math.sin(i) * 1e3);
    const encoded = encodeNpy(values, [3, 4, 5], 'float32');
    const unaligned = Buffer.alloc(encoded.length + 1);
    encoded.copy(unaligned, 1);
    const decoded = decodeNpy(unaligned.subarray(1));
    expect(decoded.shape).toEqual([3, 4, 5]);
    expect(decoded.data).toEqual(values);
  });

  function corrupt(edit: (buf: Buffer) => Buffer): NpyFormatError {
    const buf = edit(Buffer.from(fixture('f4x2x3')));
    try {
      decodeNpy(buf);
    } catch (err) {
      if (err instanceof NpyFormatError) return err;
      throw err;
    }
    throw new Error('decodeNpy accepted a corrupt file');
  }

  function withHeader(dict: string): Buffer {
    const header = Buffer.from(dict.padEnd(117, ' ') + '\n', 'latin1');
    const pre = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, header.length, 0]);
    return Buffer.concat([pre, header, Buffer.alloc(24)]);
  }

  it('refuses anything that is not a well-formed v1.0 float file', () => {
    expect(corrupt((b) => b.subarray(0, 5)).message).toMatch(/magic/);
    expect(corrupt((b) => Buffer.concat([Buffer.from('xNUMPY'), b.subarray(6)])).message).toMatch(/magic/);
    expect(corrupt((b) => (b.writeUInt8(2, 6), b)).message).toMatch(/version 2\.0/);
    expect(corrupt((b) => b.subarray(0, b.length - 1)).message).toMatch(/needs 24 data bytes, found 23/);
    expect(corrupt((b) => Buffer.concat([b, Buffer.alloc(4)])).message).toMatch(/needs 24 data bytes, found 28/);
    expect(corrupt((b) => (b.writeUInt16LE(0x7000, 8), b)).message).toMatch(/runs past the end/);
    expect(corrupt((b) => (b.writeUInt16LE(0x75, 8), b)).message).toMatch(/64-byte boundary/);
    expect(corrupt((b) => (b.write('\r', 127, 'latin1'), b)).message).toMatch(/newline/);
    expect(corrupt(() => withHeader("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }")).message).toMatch(/unsupported descr '<f8'/);
    expect(corrupt(() => withHeader("{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3), }")).message).toMatch(/unsupported descr/);
    expect(corrupt(() => withHeader("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }")).message).toMatch(/Fortran/);
    expect(corrupt(() => withHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (6), }")).message).toMatch(/not a tuple/);
    expect(corrupt(() => withHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (2, -3), }")).message).toMatch(/not a tuple|cannot parse/);
    expect(corrupt(() => withHeader("{'descr': '<f4', 'shape': (2, 3), }")).message).toMatch(/keys are descr,shape/);
    expect(corrupt(() => withHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'x': 1}")).message).toMatch(/cannot parse/);
    expect(corrupt(() => withHeader("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }")).message).toMatch(/repeats/);
  });

  it('accepts another key order (still a valid .npy)', () => {
    const a = decodeNpy(withHeader("{'shape': (2, 3), 'fortran_order': False, 'descr': '<f4'}"));
    expect(a.shape).toEqual([2, 3]);
  });

  it('exposes the header it writes', () => {
    expect(npyHeader([2, 3], 'float32').equals(fixture('f4x2x3').subarray(0, 128))).toBe(true);
  });
});
