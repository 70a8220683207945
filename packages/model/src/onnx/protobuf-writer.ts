// A minimal protobuf encoder: just what ONNX's ModelProto needs (varints, strings, bytes, nested messages).
// Messages are kept as lists of chunks and concatenated once at the end, so large weight buffers are copied
// into the model bytes exactly once.

const WIRE_VARINT = 0;
const WIRE_FIXED32 = 5;
const WIRE_LENGTH_DELIMITED = 2;

/** Encodes an unsigned or negative integer as a protobuf varint (negative int64s take ten bytes). */
export function encodeVarint(value: number | bigint): Uint8Array {
  let v = BigInt.asUintN(64, BigInt(value));
  const bytes: number[] = [];
  while (v >= 0x80n) {
    bytes.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  bytes.push(Number(v));
  return Uint8Array.from(bytes);
}

/** One protobuf message being written. Fields are emitted in the order they are added. */
export class ProtoWriter {
  private readonly chunks: Uint8Array[] = [];
  private size = 0;

  /** Bytes written so far. */
  get length(): number {
    return this.size;
  }

  /** A varint field (int32, int64, enum, bool). */
  varint(field: number, value: number | bigint): this {
    this.key(field, WIRE_VARINT);
    return this.push(encodeVarint(value));
  }

  /** One varint field per value: repeated scalars, unpacked (what proto2 parsers expect by default). */
  varints(field: number, values: readonly number[]): this {
    for (const value of values) this.varint(field, value);
    return this;
  }

  /** A 32-bit float field. */
  float(field: number, value: number): this {
    this.key(field, WIRE_FIXED32);
    const bytes = new Uint8Array(4);
    new DataView(bytes.buffer).setFloat32(0, value, true);
    return this.push(bytes);
  }

  string(field: number, value: string): this {
    return this.bytes(field, new TextEncoder().encode(value));
  }

  /** A bytes field; `value` is referenced, not copied, until `finish()`. */
  bytes(field: number, value: Uint8Array): this {
    this.key(field, WIRE_LENGTH_DELIMITED);
    this.push(encodeVarint(value.length));
    return this.push(value);
  }

  /** An embedded message; its chunks are taken over, not copied. */
  message(field: number, value: ProtoWriter): this {
    this.key(field, WIRE_LENGTH_DELIMITED);
    this.push(encodeVarint(value.size));
    for (const chunk of value.chunks) this.push(chunk);
    return this;
  }

  /** The encoded message in one buffer. */
  finish(): Uint8Array {
    const out = new Uint8Array(this.size);
    let offset = 0;
    for (const chunk of this.chunks) {
      out.set(chunk, offset);
      offset += chunk.length;
    }
    return out;
  }

  private key(field: number, wire: number): void {
    this.push(encodeVarint(field * 8 + wire));
  }

  private push(chunk: Uint8Array): this {
    this.chunks.push(chunk);
    this.size += chunk.length;
    return this;
  }
}
