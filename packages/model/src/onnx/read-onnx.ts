// Reads a user's ONNX model (ModelProto) with protobufjs and the ONNX schema, checks that layertap can feed it
// (one 4-D float32 NCHW image input with 1 or 3 channels, weights inside the file) and lists its tensors.
import { ErrorCode, isLayertapError, ValidationError } from '@layertap/contracts';
import protobuf from 'protobufjs';
import { editDistance } from '../did-you-mean';
import { ONNX_PROTO } from './onnx-schema';
import {
  DATA_LOCATION_EXTERNAL,
  ELEM_BYTES,
  elemTypeName,
  type AttributeProto,
  type GraphProto,
  type ModelProto,
  type NodeProto,
  type SparseTensorProto,
  type TensorProto,
  type ValueInfoProto,
} from './onnx-types';
import { inferElemTypes } from './infer-types';

export interface OnnxTensorInfo {
  /** Tensor (value) name in the graph. */
  name: string;
  /** 'float32', 'float16', 'int64', ... ('unknown' when neither declared nor inferable from the producing op). */
  elemType: string;
  /** From graph input/output/value_info when declared; string = symbolic dim, null = unknown. */
  shape?: (number | string | null)[];
  /** Op type of the node that produces it (absent for the graph input). */
  op?: string;
  /** That node's name (may be ''). */
  node?: string;
  /** Computed from the image input (an activation), not from weights and constants alone. */
  fromInput?: boolean;
}

export interface OnnxModelInfo {
  irVersion: number;
  opsets: { domain: string; version: number }[];
  /** producer_name + ' ' + producer_version */
  producer: string;
  graphName: string;
  /** The one graph input that is not an initializer. */
  input: OnnxTensorInfo;
  /** The graph's outputs. */
  outputs: OnnxTensorInfo[];
  /** Every node output in graph order (the hookable tensors), graph outputs included; no duplicates. */
  tensors: OnnxTensorInfo[];
  /** Bytes of weights held in the file (initializers and Constant nodes' tensors). */
  initializerBytes: number;
  nodes: number;
}

export { checkOnnxSize, DEFAULT_MAX_ONNX_BYTES } from './size';

function invalid(message: string, cause?: unknown): ValidationError {
  return new ValidationError(ErrorCode.InvalidModel, message, cause === undefined ? undefined : { cause });
}

let modelType: protobuf.Type | undefined;

/** onnx.ModelProto, compiled once from the embedded schema. */
export function onnxModelType(): protobuf.Type {
  if (!modelType) {
    const { root } = protobuf.parse(ONNX_PROTO, { keepCase: true });
    modelType = root.lookupType('onnx.ModelProto');
  }
  return modelType;
}

const TO_OBJECT: protobuf.IConversionOptions = { longs: Number, enums: Number, arrays: true };

/** A decoded model with the facts read-onnx and cut-onnx both need. */
export interface DecodedOnnx {
  model: ModelProto;
  graph: GraphProto;
  info: OnnxModelInfo;
  /** Tensor name -> index of the node that produces it (top-level graph). */
  producer: Map<string, number>;
  /** Element type of every tensor known (declared, or inferred from the producing op). */
  elemTypes: Map<string, string>;
}

/** Decodes and checks a model. Every failure is a ValidationError (invalid_model) naming `source`. */
export function decodeOnnx(bytes: Uint8Array, source: string): DecodedOnnx {
  if (bytes.length === 0) throw invalid(`${source} is empty, not an ONNX model`);
  let model: ModelProto;
  try {
    const type = onnxModelType();
    model = type.toObject(type.decode(bytes), TO_OBJECT) as ModelProto;
  } catch (err) {
    const detail = oneLine(err);
    // protobufjs says "index out of range" when a length runs past the end of the bytes.
    const what = /index out of range/.test(detail) ? 'truncated or damaged' : 'not a readable ONNX ModelProto';
    throw invalid(`${source} is not an ONNX model (${what}: ${detail})`, err);
  }
  try {
    return analyse(model, source);
  } catch (err) {
    if (isLayertapError(err)) throw err;
    // A field of a type the checks did not expect: the file is damaged in a way protobuf did not notice.
    throw invalid(`${source} is not a valid ONNX model (${oneLine(err)})`, err);
  }
}

function oneLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0] ?? '';
}

function analyse(model: ModelProto, source: string): DecodedOnnx {
  const graph = model.graph;
  if (!graph) {
    const what = model.ir_version ? 'it has no graph' : 'no ONNX graph in it';
    throw invalid(`${source} is not an ONNX model (${what})`);
  }
  if (!Array.isArray(graph.node) || graph.node.length === 0) throw invalid(`${source}: the ONNX graph has no nodes`);
  checkNoExternalData(model, source);

  const initializers = new Set<string>();
  for (const t of graph.initializer) if (t.name) initializers.add(t.name);
  for (const s of graph.sparse_initializer) if (s.values?.name) initializers.add(s.values.name);

  const inputs = graph.input.filter((v) => v.name && !initializers.has(v.name));
  if (inputs.length === 0) throw invalid(`${source}: the ONNX graph has no input (every graph input is an initializer)`);
  if (inputs.length > 1) {
    throw invalid(
      `${source}: the ONNX graph has ${inputs.length} inputs (${inputs.map((v) => v.name).join(', ')}); ` +
        `layertap feeds models with one image input`,
    );
  }
  const inputValue = inputs[0] as ValueInfoProto;
  const input = valueInfo(inputValue);
  checkImageInput(input, inputValue, source);

  const declared = new Map<string, ValueInfoProto>();
  for (const v of [...graph.value_info, ...graph.output, ...graph.input]) if (v.name) declared.set(v.name, v);

  const elemTypes = inferElemTypes(graph, declared);
  const producer = new Map<string, number>();
  const tensors: OnnxTensorInfo[] = [];
  // Activations: outputs of nodes that read the input or an activation (nodes are in topological order).
  const activations = new Set<string>([input.name]);
  graph.node.forEach((node, index) => {
    const active = node.input.some((name) => activations.has(name));
    if (active) for (const name of node.output) if (name) activations.add(name);
    for (const name of node.output) {
      if (!name || producer.has(name) || name === input.name) continue;
      producer.set(name, index);
      const v = declared.get(name);
      const info: OnnxTensorInfo = v ? valueInfo(v) : { name, elemType: 'unknown' };
      if (info.elemType === 'unknown') info.elemType = elemTypes.get(name) ?? 'unknown';
      info.op = node.op_type ?? '';
      info.node = node.name ?? '';
      info.fromInput = active;
      tensors.push(info);
    }
  });
  const byName = new Map(tensors.map((t) => [t.name, t]));
  const outputs = graph.output.map((v) => {
    const t = byName.get(v.name ?? '');
    return t ? { ...t } : valueInfo(v);
  });

  const info: OnnxModelInfo = {
    irVersion: model.ir_version ?? 0,
    opsets: model.opset_import.map((o) => ({ domain: o.domain ?? '', version: o.version ?? 0 })),
    producer: [model.producer_name ?? '', model.producer_version ?? ''].join(' ').trim(),
    graphName: graph.name ?? '',
    input,
    outputs,
    tensors,
    initializerBytes: weightBytes(graph),
    nodes: graph.node.length,
  };
  return { model, graph, info, producer, elemTypes };
}

function valueInfo(v: ValueInfoProto): OnnxTensorInfo {
  const tensorType = v.type?.tensor_type;
  const info: OnnxTensorInfo = { name: v.name ?? '', elemType: elemTypeName(tensorType?.elem_type) };
  if (tensorType?.shape) {
    info.shape = tensorType.shape.dim.map((d) =>
      d.dim_value !== undefined ? d.dim_value : d.dim_param !== undefined && d.dim_param !== '' ? d.dim_param : null,
    );
  }
  return info;
}

function describeShape(shape: OnnxTensorInfo['shape']): string {
  return shape ? `[${shape.map((d) => (d === null ? '?' : String(d))).join(', ')}]` : 'of unknown shape';
}

function checkImageInput(input: OnnxTensorInfo, value: ValueInfoProto, source: string): void {
  const what = `${source}: the model's input ${JSON.stringify(input.name)}`;
  if (!value.type?.tensor_type) throw invalid(`${what} is not a tensor; layertap feeds a 4-D float32 image tensor`);
  if (input.elemType !== 'float32' || !input.shape || input.shape.length !== 4) {
    throw invalid(
      `${what} is ${input.elemType} ${describeShape(input.shape)}; layertap feeds a 4-D float32 image tensor [N, C, H, W]`,
    );
  }
  const channels = input.shape[1];
  if (channels !== 1 && channels !== 3) {
    throw invalid(
      `${what} is ${describeShape(input.shape)} with ${channels === null ? 'an unknown number of' : String(channels)} ` +
        `channels at axis 1; layertap feeds NCHW images with 1 or 3 channels`,
    );
  }
}

/** Refuses any tensor whose data lives in another file (initializers, Constant values, subgraphs, functions). */
function checkNoExternalData(model: ModelProto, source: string): void {
  const refuse = (t: TensorProto | undefined) => {
    if (!t) return;
    if (t.data_location === DATA_LOCATION_EXTERNAL || (t.external_data && t.external_data.length > 0)) {
      throw invalid(
        `${source}: tensor ${JSON.stringify(t.name ?? '')} stores its weights outside the file (external data); ` +
          `save the model as one file (onnx.save_model(..., save_as_external_data=False))`,
      );
    }
  };
  const sparse = (s: SparseTensorProto | undefined) => {
    refuse(s?.values);
    refuse(s?.indices);
  };
  const nodes = (list: NodeProto[]) => {
    for (const node of list) for (const a of node.attribute) attribute(a);
  };
  const attribute = (a: AttributeProto) => {
    refuse(a.t);
    a.tensors.forEach(refuse);
    sparse(a.sparse_tensor);
    a.sparse_tensors.forEach(sparse);
    if (a.g) graph(a.g);
    a.graphs.forEach(graph);
  };
  const graph = (g: GraphProto) => {
    g.initializer.forEach(refuse);
    g.sparse_initializer.forEach(sparse);
    nodes(g.node);
  };
  if (model.graph) graph(model.graph);
  for (const f of model.functions) nodes(f.node);
}

function tensorBytes(t: TensorProto | undefined): number {
  if (!t) return 0;
  if (t.raw_data && t.raw_data.length > 0) return t.raw_data.length;
  if (t.string_data.length > 0) return t.string_data.reduce((sum, s) => sum + s.length, 0);
  const elements = t.dims.reduce((n, d) => n * d, 1);
  return elements * (ELEM_BYTES[t.data_type ?? 0] ?? 0);
}

/** Bytes of the weights a graph holds (initializers and Constant nodes). */
export function weightBytes(graph: GraphProto): number {
  let bytes = 0;
  for (const t of graph.initializer) bytes += tensorBytes(t);
  for (const s of graph.sparse_initializer) bytes += tensorBytes(s.values) + tensorBytes(s.indices);
  for (const node of graph.node) {
    if (node.op_type !== 'Constant') continue;
    for (const a of node.attribute) bytes += tensorBytes(a.t);
  }
  return bytes;
}

/** Parses and checks a model; throws ValidationError (invalid_model) naming what is wrong. */
export function readOnnxModel(bytes: Uint8Array, source: string): OnnxModelInfo {
  return decodeOnnx(bytes, source).info;
}

/** Up to `max` known names closest to `input` (edit distance, case-insensitive), closest first. */
export function closeNames(input: string, known: Iterable<string>, max = 3): string[] {
  const typed = input.trim().toLowerCase();
  const limit = Math.max(2, Math.min(6, Math.floor(typed.length / 3)));
  const scored: { name: string; d: number }[] = [];
  for (const name of known) {
    const lower = name.toLowerCase();
    // Long generated names: a name that contains what was typed (or the reverse) is close too.
    const contains = typed.length >= 4 && lower.length >= 4 && (lower.includes(typed) || typed.includes(lower));
    const d = contains ? 1 : editDistance(typed, lower);
    if (d <= limit) scored.push({ name, d });
  }
  scored.sort((a, b) => a.d - b.d || a.name.length - b.name.length);
  return scored.slice(0, max).map((s) => s.name);
}

export function didYouMean(input: string, known: Iterable<string>): string {
  const names = closeNames(input, known);
  return names.length === 0 ? '' : `; did you mean ${names.map((n) => JSON.stringify(n)).join(' or ')}?`;
}

/** Resolves what a user wrote for --layer: a tensor name exactly, or a node name (meaning its first output). */
export function resolveOnnxTensor(info: OnnxModelInfo, spec: string): OnnxTensorInfo {
  const exact = info.tensors.find((t) => t.name === spec);
  if (exact) return exact;
  if (spec !== '') {
    const byNode = info.tensors.find((t) => t.node === spec);
    if (byNode) return byNode;
  }
  const graph = info.graphName ? ` (graph ${JSON.stringify(info.graphName)})` : '';
  if (spec === info.input.name) {
    throw new ValidationError(ErrorCode.UnknownLayer, `${JSON.stringify(spec)} is the ONNX model's input${graph}, not a layer's output`);
  }
  const names = new Set<string>();
  for (const t of info.tensors) {
    names.add(t.name);
    if (t.node) names.add(t.node);
  }
  throw new ValidationError(
    ErrorCode.UnknownLayer,
    `${JSON.stringify(spec)} is neither a tensor nor a node name of the ONNX model${graph}${didYouMean(spec, names)}`,
  );
}
