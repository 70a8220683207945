// The handful of ONNX messages layertap writes (field numbers from onnx/onnx.proto), on ProtoWriter.
import { endianness } from 'node:os';
import { ProtoWriter } from './protobuf-writer';

/** The ONNX IR version and default-domain opset of every model written here. */
export const ONNX_IR_VERSION = 8;
export const ONNX_OPSET = 17;

/** TensorProto.DataType values used here. */
export const OnnxDataType = { FLOAT: 1, INT64: 7 } as const;

/** AttributeProto.AttributeType values used here. */
const AttributeType = { FLOAT: 1, INT: 2, INTS: 7 } as const;

export type AttributeValue = number | readonly number[];

export interface OnnxNode {
  opType: string;
  name: string;
  inputs: readonly string[];
  outputs: readonly string[];
  /** Integers (or integer lists), except where `floats` names the attribute. */
  attributes?: Readonly<Record<string, AttributeValue>>;
  /** Attributes in `attributes` that are floats (Gemm's alpha, ...). */
  floats?: readonly string[];
}

/** An initializer: float32 data is written as raw little-endian bytes, int64 as int64_data. */
export type OnnxInitializer =
  | { name: string; dims: readonly number[]; type: 'float32'; data: Float32Array }
  | { name: string; dims: readonly number[]; type: 'int64'; data: readonly number[] };

/** A graph input or output: float32 with fixed sizes or named (symbolic) dimensions such as `N`. */
export interface OnnxValueInfo {
  name: string;
  dims: readonly (number | string)[];
}

export interface OnnxGraph {
  name: string;
  nodes: readonly OnnxNode[];
  initializers: readonly OnnxInitializer[];
  inputs: readonly OnnxValueInfo[];
  outputs: readonly OnnxValueInfo[];
}

export interface OnnxModelInfo {
  producerName: string;
  producerVersion: string;
  docString?: string;
}

/** Encodes a ModelProto (ir_version 8, opset 17) holding `graph`. */
export function encodeOnnxModel(graph: OnnxGraph, info: OnnxModelInfo): Uint8Array {
  const model = new ProtoWriter()
    .varint(1, ONNX_IR_VERSION)
    .string(2, info.producerName)
    .string(3, info.producerVersion);
  if (info.docString) model.string(6, info.docString);
  model.message(7, encodeGraph(graph));
  model.message(8, new ProtoWriter().string(1, '').varint(2, ONNX_OPSET));
  return model.finish();
}

function encodeGraph(graph: OnnxGraph): ProtoWriter {
  const out = new ProtoWriter();
  for (const node of graph.nodes) out.message(1, encodeNode(node));
  out.string(2, graph.name);
  for (const init of graph.initializers) out.message(5, encodeTensor(init));
  for (const input of graph.inputs) out.message(11, encodeValueInfo(input));
  for (const output of graph.outputs) out.message(12, encodeValueInfo(output));
  return out;
}

function encodeNode(node: OnnxNode): ProtoWriter {
  const out = new ProtoWriter();
  for (const input of node.inputs) out.string(1, input);
  for (const output of node.outputs) out.string(2, output);
  out.string(3, node.name).string(4, node.opType);
  const floats = new Set(node.floats ?? []);
  for (const [name, value] of Object.entries(node.attributes ?? {})) {
    out.message(5, encodeAttribute(name, value, floats.has(name)));
  }
  return out;
}

function encodeAttribute(name: string, value: AttributeValue, isFloat: boolean): ProtoWriter {
  const out = new ProtoWriter().string(1, name);
  if (typeof value !== 'number') return out.varints(8, value).varint(20, AttributeType.INTS);
  if (isFloat) return out.float(2, value).varint(20, AttributeType.FLOAT);
  return out.varint(3, value).varint(20, AttributeType.INT);
}

function encodeTensor(init: OnnxInitializer): ProtoWriter {
  const out = new ProtoWriter().varints(1, init.dims);
  if (init.type === 'int64') {
    out.varint(2, OnnxDataType.INT64).varints(7, init.data);
    return out.string(8, init.name);
  }
  out.varint(2, OnnxDataType.FLOAT).string(8, init.name);
  return out.bytes(9, littleEndianBytes(init.data));
}

/** The float32 values as little-endian bytes: a view on little-endian machines, a swapped copy otherwise. */
function littleEndianBytes(data: Float32Array): Uint8Array {
  const view = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (endianness() === 'LE') return view;
  const swapped = new Uint8Array(view.length);
  for (let i = 0; i < view.length; i += 4) {
    swapped[i] = view[i + 3] as number;
    swapped[i + 1] = view[i + 2] as number;
    swapped[i + 2] = view[i + 1] as number;
    swapped[i + 3] = view[i] as number;
  }
  return swapped;
}

function encodeValueInfo(info: OnnxValueInfo): ProtoWriter {
  const shape = new ProtoWriter();
  for (const dim of info.dims) {
    const d = new ProtoWriter();
    if (typeof dim === 'number') d.varint(1, dim);
    else d.string(2, dim);
    shape.message(1, d);
  }
  const tensorType = new ProtoWriter().varint(1, OnnxDataType.FLOAT).message(2, shape);
  return new ProtoWriter().string(1, info.name).message(2, new ProtoWriter().message(1, tensorType));
}
