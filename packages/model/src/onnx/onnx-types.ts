// Plain-object shapes of the ONNX messages as protobufjs' `toObject` gives them here (field names as in
// onnx.proto, int64 as number, enums as number, bytes as Uint8Array, every repeated field present). Only
// what read-onnx.ts and cut-onnx.ts use is typed; the rest rides along untouched when a model is re-encoded.

export interface TensorShapeDim {
  dim_value?: number;
  dim_param?: string;
  denotation?: string;
}

export interface TypeProto {
  tensor_type?: { elem_type?: number; shape?: { dim: TensorShapeDim[] } };
  sequence_type?: unknown;
  map_type?: unknown;
  optional_type?: unknown;
  sparse_tensor_type?: { elem_type?: number; shape?: { dim: TensorShapeDim[] } };
  denotation?: string;
}

export interface ValueInfoProto {
  name?: string;
  type?: TypeProto;
  doc_string?: string;
}

export interface StringStringEntry {
  key?: string;
  value?: string;
}

export interface TensorProto {
  dims: number[];
  data_type?: number;
  name?: string;
  raw_data?: Uint8Array;
  float_data: number[];
  int32_data: number[];
  string_data: Uint8Array[];
  int64_data: number[];
  double_data: number[];
  uint64_data: number[];
  external_data: StringStringEntry[];
  data_location?: number;
}

export interface SparseTensorProto {
  values?: TensorProto;
  indices?: TensorProto;
  dims: number[];
}

export interface AttributeProto {
  name?: string;
  type?: number;
  t?: TensorProto;
  g?: GraphProto;
  sparse_tensor?: SparseTensorProto;
  tensors: TensorProto[];
  graphs: GraphProto[];
  sparse_tensors: SparseTensorProto[];
  ints: number[];
  i?: number;
  f?: number;
  floats: number[];
  s?: Uint8Array;
  strings: Uint8Array[];
  [field: string]: unknown;
}

export interface NodeProto {
  input: string[];
  output: string[];
  name?: string;
  op_type?: string;
  domain?: string;
  attribute: AttributeProto[];
  doc_string?: string;
}

export interface GraphProto {
  node: NodeProto[];
  name?: string;
  initializer: TensorProto[];
  sparse_initializer: SparseTensorProto[];
  doc_string?: string;
  input: ValueInfoProto[];
  output: ValueInfoProto[];
  value_info: ValueInfoProto[];
  quantization_annotation: unknown[];
}

export interface FunctionProto {
  name?: string;
  node: NodeProto[];
  [field: string]: unknown;
}

export interface OperatorSetIdProto {
  domain?: string;
  version?: number;
}

export interface ModelProto {
  ir_version?: number;
  opset_import: OperatorSetIdProto[];
  producer_name?: string;
  producer_version?: string;
  domain?: string;
  model_version?: number;
  doc_string?: string;
  graph?: GraphProto;
  metadata_props: StringStringEntry[];
  training_info: unknown[];
  functions: FunctionProto[];
}

/** TensorProto.DataType -> layertap's name (TF.js / ONNX Runtime style). */
export const ELEM_TYPES: Readonly<Record<number, string>> = {
  1: 'float32',
  2: 'uint8',
  3: 'int8',
  4: 'uint16',
  5: 'int16',
  6: 'int32',
  7: 'int64',
  8: 'string',
  9: 'bool',
  10: 'float16',
  11: 'float64',
  12: 'uint32',
  13: 'uint64',
  14: 'complex64',
  15: 'complex128',
  16: 'bfloat16',
};

/** Bytes per element of each TensorProto.DataType (0: variable, strings). */
export const ELEM_BYTES: Readonly<Record<number, number>> = {
  1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 8: 0, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8, 14: 8, 15: 16, 16: 2,
};

export const DataType = { FLOAT: 1, INT64: 7, BOOL: 9 } as const;
export const AttributeType = { INTS: 7 } as const;
/** TensorProto.DataLocation.EXTERNAL */
export const DATA_LOCATION_EXTERNAL = 1;

export function elemTypeName(dataType: number | undefined): string {
  return (dataType !== undefined && ELEM_TYPES[dataType]) || 'unknown';
}
