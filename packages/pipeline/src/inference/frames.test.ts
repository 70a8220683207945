import { PassThrough } from 'node:stream';
import { FrameReader, writeFrame, type Frame, type FrameHeader } from './frames';
import { packInferResult, unpackInferResult, type InferResult } from './protocol';

type H = FrameHeader & { id: number };

/** The bytes `writeFrame` puts on a stream. */
function encode(header: H, segments: ArrayBufferView[]): Buffer {
  const stream = new PassThrough();
  writeFrame(stream, header, segments);
  stream.end();
  const chunks: Buffer[] = [];
  let chunk: Buffer | null;
  while ((chunk = stream.read() as Buffer | null)) chunks.push(chunk);
  return Buffer.concat(chunks);
}

describe('frames', () => {
  const a = Float32Array.from([1.5, -2, 3e9]);
  const b = new Uint8Array([7, 8, 9, 10, 11]);
  const bytes = Buffer.concat([encode({ id: 1, sizes: [12, 0, 5] }, [a, new Uint8Array(0), b]), encode({ id: 2, sizes: [] }, [])]);

  it.each([1, 2, 3, 7, 64, bytes.length])('reassembles frames from chunks of %i bytes into one buffer per segment', (size) => {
    const frames: Frame<H>[] = [];
    const reader = new FrameReader<H>((f) => frames.push(f), (err) => {
      throw err;
    });
    for (let at = 0; at < bytes.length; at += size) reader.push(bytes.subarray(at, at + size));
    expect(frames.map((f) => f.header)).toEqual([
      { id: 1, sizes: [12, 0, 5] },
      { id: 2, sizes: [] },
    ]);
    const [first] = frames;
    expect(first?.segments.map((s) => s.length)).toEqual([12, 0, 5]);
    const seg0 = first?.segments[0] as Buffer;
    // Its own memory at offset 0: viewable as float32 and transferable whole.
    expect(seg0.byteOffset).toBe(0);
    expect(seg0.buffer.byteLength).toBe(12);
    expect(Array.from(new Float32Array(seg0.buffer, 0, 3))).toEqual([1.5, -2, 3e9]);
    expect(Array.from(first?.segments[2] as Buffer)).toEqual([7, 8, 9, 10, 11]);
  });

  it.each<[string, Buffer]>([
    ['a zero header length', Buffer.from([0, 0, 0, 0])],
    ['a header that is not JSON', Buffer.concat([Buffer.from([3, 0, 0, 0]), Buffer.from('{x]')])],
    ['segment sizes that are not sizes', encode({ id: 1, sizes: [-1] }, [])],
  ])('reports %s once and stops', (_what, broken) => {
    const errors: string[] = [];
    const frames: unknown[] = [];
    const reader = new FrameReader<H>((f) => frames.push(f), (err) => errors.push(err.message));
    reader.push(broken);
    reader.push(encode({ id: 3, sizes: [] }, []));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/^inference channel: /);
    expect(frames).toEqual([]);
  });
});

describe('packInferResult / unpackInferResult', () => {
  it('sends a memory two outputs share once, and gives each output its values back', () => {
    const shared = new Float32Array([1, 2, 3, 4, 5, 6]);
    const half = new Uint16Array([0x3c00, 0x4000]);
    const result: InferResult = {
      outputs: [
        { spec: 'block1_pool', canonical: 'block1_pool', dtype: 'float32', data: shared, shape: [2, 3] },
        { spec: 'features.4', canonical: 'block1_pool', dtype: 'float32', data: shared.subarray(3), shape: [1, 3] },
        { spec: 'fc2', canonical: 'fc2', dtype: 'float16', data: half, shape: [2, 1] },
      ],
      inferenceMs: 3,
      readbackMs: 1,
      memory: { numTensors: 0, numBytes: 0, childRssBytes: 1 },
      times: { receivedAt: 1, startedAt: 2, finishedAt: 3 },
    };
    const { value, segments } = packInferResult(result);
    expect(segments.map((s) => s.byteLength)).toEqual([24, 4]);
    expect(value.outputs.map((o) => [o.segment, o.byteOffset, o.length])).toEqual([
      [0, 0, 6],
      [0, 12, 3],
      [1, 0, 2],
    ]);
    // As the reader delivers them: copies in buffers of their own.
    const received = segments.map((s) => Buffer.from(Uint8Array.from(s)));
    const back = unpackInferResult(JSON.parse(JSON.stringify(value)), received);
    expect(back.outputs.map((o) => [Object.prototype.toString.call(o.data), Array.from(o.data), o.shape])).toEqual([
      ['[object Float32Array]', [1, 2, 3, 4, 5, 6], [2, 3]],
      ['[object Float32Array]', [4, 5, 6], [1, 3]],
      ['[object Uint16Array]', [0x3c00, 0x4000], [2, 1]],
    ]);
    expect(back.times).toEqual(result.times);
  });

  it('refuses a reply whose segment is shorter than its output says', () => {
    const { value } = packInferResult({
      outputs: [{ spec: 'fc2', canonical: 'fc2', dtype: 'float32', data: new Float32Array(4), shape: [1, 4] }],
      inferenceMs: 0,
      readbackMs: 0,
      memory: { numTensors: 0, numBytes: 0, childRssBytes: 0 },
      times: { receivedAt: 0, startedAt: 0, finishedAt: 0 },
    });
    expect(() => unpackInferResult(value, [Buffer.alloc(8)])).toThrow("fc2: the reply's segment 0 is too short");
  });
});
