// A protobuf reader for tests: decodes what ProtoWriter wrote back into fields, and the ONNX messages into
// plain objects, written from onnx.proto's field numbers independently of the writer.

export type Field = { field: number; wire: number; value: bigint | Uint8Array };

export function readVarint(bytes: Uint8Array, offset: number): [bigint, number] {
  let result = 0n;
  let shift = 0n;
  let pos = offset;
  for (;;) {
    const byte = bytes[pos++];
    if (byte === undefined) throw new Error('truncated varint');
    result |= BigInt(byte & 0x7f) << shift;
    if ((byte & 0x80) === 0) return [result, pos];
    shift += 7n;
  }
}

/** Top-level fields of one message, in order. */
export function decodeFields(bytes: Uint8Array): Field[] {
  const fields: Field[] = [];
  let pos = 0;
  while (pos < bytes.length) {
    const [key, afterKey] = readVarint(bytes, pos);
    const field = Number(key >> 3n);
    const wire = Number(key & 7n);
    pos = afterKey;
    if (wire === 0) {
      const [value, next] = readVarint(bytes, pos);
      fields.push({ field, wire, value });
      pos = next;
    } else if (wire === 2) {
      const [length, next] = readVarint(bytes, pos);
      const end = next + Number(length);
      if (end > bytes.length) throw new Error(`field ${field} runs past the end`);
      fields.push({ field, wire, value: bytes.subarray(next, end) });
      pos = end;
    } else if (wire === 5) {
      fields.push({ field, wire, value: bytes.subarray(pos, pos + 4) });
      pos += 4;
    } else {
      throw new Error(`unexpected wire type ${wire}`);
    }
  }
  return fields;
}

const text = (value: Field['value']): string => new TextDecoder().decode(value as Uint8Array);
const int = (value: Field['value']): number => Number(BigInt.asIntN(64, value as bigint));
const all = (fields: Field[], n: number): Field[] => fields.filter((f) => f.field === n);
const one = (fields: Field[], n: number): Field | undefined => fields.find((f) => f.field === n);

export interface DecodedNode {
  opType: string;
  name: string;
  inputs: string[];
  outputs: string[];
  attributes: Record<string, number | number[]>;
}

export interface DecodedTensor {
  name: string;
  dims: number[];
  dataType: number;
  raw?: Uint8Array;
  int64?: number[];
}

export interface DecodedValueInfo {
  name: string;
  elemType: number;
  dims: (number | string)[];
}

export interface DecodedModel {
  irVersion: number;
  opsets: { domain: string; version: number }[];
  producerName: string;
  graph: {
    name: string;
    nodes: DecodedNode[];
    initializers: DecodedTensor[];
    inputs: DecodedValueInfo[];
    outputs: DecodedValueInfo[];
  };
}

export function decodeModel(bytes: Uint8Array): DecodedModel {
  const fields = decodeFields(bytes);
  const graph = decodeFields(one(fields, 7)?.value as Uint8Array);
  return {
    irVersion: int(one(fields, 1)?.value ?? 0n),
    producerName: text(one(fields, 2)?.value ?? new Uint8Array()),
    opsets: all(fields, 8).map((f) => {
      const opset = decodeFields(f.value as Uint8Array);
      return { domain: text(one(opset, 1)?.value ?? new Uint8Array()), version: int(one(opset, 2)?.value ?? 0n) };
    }),
    graph: {
      name: text(one(graph, 2)?.value ?? new Uint8Array()),
      nodes: all(graph, 1).map((f) => decodeNode(f.value as Uint8Array)),
      initializers: all(graph, 5).map((f) => decodeTensor(f.value as Uint8Array)),
      inputs: all(graph, 11).map((f) => decodeValueInfo(f.value as Uint8Array)),
      outputs: all(graph, 12).map((f) => decodeValueInfo(f.value as Uint8Array)),
    },
  };
}

function decodeNode(bytes: Uint8Array): DecodedNode {
  const fields = decodeFields(bytes);
  const attributes: Record<string, number | number[]> = {};
  for (const f of all(fields, 5)) {
    const attr = decodeFields(f.value as Uint8Array);
    const name = text(one(attr, 1)?.value ?? new Uint8Array());
    const type = int(one(attr, 20)?.value ?? 0n);
    if (type === 2) attributes[name] = int(one(attr, 3)?.value ?? 0n);
    else if (type === 7) attributes[name] = all(attr, 8).map((a) => int(a.value));
    else if (type === 1) attributes[name] = new DataView((one(attr, 2)?.value as Uint8Array).slice().buffer).getFloat32(0, true);
  }
  return {
    inputs: all(fields, 1).map((f) => text(f.value)),
    outputs: all(fields, 2).map((f) => text(f.value)),
    name: text(one(fields, 3)?.value ?? new Uint8Array()),
    opType: text(one(fields, 4)?.value ?? new Uint8Array()),
    attributes,
  };
}

function decodeTensor(bytes: Uint8Array): DecodedTensor {
  const fields = decodeFields(bytes);
  const raw = one(fields, 9)?.value as Uint8Array | undefined;
  const int64 = all(fields, 7).map((f) => int(f.value));
  return {
    dims: all(fields, 1).map((f) => int(f.value)),
    dataType: int(one(fields, 2)?.value ?? 0n),
    name: text(one(fields, 8)?.value ?? new Uint8Array()),
    ...(raw ? { raw } : {}),
    ...(int64.length ? { int64 } : {}),
  };
}

function decodeValueInfo(bytes: Uint8Array): DecodedValueInfo {
  const fields = decodeFields(bytes);
  const type = decodeFields(one(fields, 2)?.value as Uint8Array);
  const tensor = decodeFields(one(type, 1)?.value as Uint8Array);
  const shape = decodeFields(one(tensor, 2)?.value as Uint8Array);
  return {
    name: text(one(fields, 1)?.value ?? new Uint8Array()),
    elemType: int(one(tensor, 1)?.value ?? 0n),
    dims: all(shape, 1).map((f) => {
      const dim = decodeFields(f.value as Uint8Array);
      const value = one(dim, 1);
      return value ? int(value.value) : text(one(dim, 2)?.value ?? new Uint8Array());
    }),
  };
}

/** float32 values of a raw_data initializer (little-endian). */
export function rawFloats(tensor: DecodedTensor): Float32Array {
  const raw = tensor.raw ?? new Uint8Array();
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  return Float32Array.from({ length: raw.byteLength / 4 }, (_, i) => view.getFloat32(i * 4, true));
}
