// Cuts a user's ONNX graph down to the tensors layertap hooks: those become the graph outputs, and only the
// nodes, initializers and value_info they need remain. Optionally puts an NHWC float32 input in front.
import { ErrorCode, ValidationError } from '@layertap/contracts';
import { decodeOnnx, didYouMean, onnxModelType, weightBytes } from './read-onnx';
import { AttributeType, DataType, type GraphProto, type ModelProto, type NodeProto, type TensorShapeDim, type ValueInfoProto } from './onnx-types';

export interface CutOnnxOptions {
  /**
   * 'nhwc': the new graph input is named `input`, float32 [N, H, W, C] (C, H, W taken from the original NCHW
   * input; H/W may be given by imageSize when the original has them symbolic), followed by a
   * Transpose(perm [0,3,1,2]) node that produces the original input name. 'nchw': the original input kept,
   * only its batch dim made symbolic.
   */
  inputLayout: 'nhwc' | 'nchw';
  /** Side of the square image, fills symbolic/unknown H and W of the input. */
  imageSize?: number;
  /** Names the model in error messages (a path or URL); 'the ONNX model' when absent. */
  source?: string;
}

export interface CutOnnx {
  bytes: Uint8Array;
  inputName: string;
  outputs: string[];
  nodes: number;
  /** Op types of the kept nodes, in graph order (for logs). */
  ops: string[];
  /** Bytes of the weights the cut graph holds. */
  weightBytes: number;
  /** The requested output computed last in graph order. */
  deepest: string;
}

/** Name of the NHWC input of a cut graph. */
export const NHWC_INPUT_NAME = 'input';
/** Batch dim of a cut graph's input. */
export const BATCH_DIM = 'N';
/** Name of the Transpose node a cut graph's NHWC input goes through. */
export const NHWC_TRANSPOSE_NODE = 'layertap_nhwc_to_nchw';

/**
 * A new model whose outputs are exactly `outputs` (tensor names, in this order; each once), with only the
 * nodes they need (backward reachability), only the initializers those nodes use, value_info pruned to kept
 * tensors, the input's batch dim made symbolic 'N', and the graph outputs declared float32 with unknown shape.
 * Refuses (ValidationError) a name that is not a tensor of the graph, a tensor that is not float32 and the
 * same name twice. `deepest` is the requested output computed last in graph order.
 */
export function cutOnnxModel(bytes: Uint8Array, outputs: readonly string[], options: CutOnnxOptions): CutOnnx {
  const source = options.source ?? 'the ONNX model';
  const { model, graph, info, producer, elemTypes } = decodeOnnx(bytes, source);
  checkOutputs(outputs, info.tensors.map((t) => t.name), producer, elemTypes, info.input.name, source);
  if (options.imageSize !== undefined && !(Number.isInteger(options.imageSize) && options.imageSize > 0)) {
    throw new ValidationError(ErrorCode.InvalidRequest, `image size ${options.imageSize} is not a positive whole number`);
  }

  // Backward reachability from the requested outputs.
  const keep = new Set<number>();
  const needed = new Set<string>();
  const stack = [...outputs];
  while (stack.length > 0) {
    const name = stack.pop() as string;
    if (needed.has(name)) continue;
    needed.add(name);
    const index = producer.get(name);
    if (index === undefined || keep.has(index)) continue;
    keep.add(index);
    const node = graph.node[index] as NodeProto;
    for (const input of nodeInputs(node)) if (!needed.has(input)) stack.push(input);
  }
  const nodes = graph.node.filter((_, i) => keep.has(i));
  const keptTensors = new Set<string>();
  for (const node of nodes) for (const o of node.output) if (o) keptTensors.add(o);

  // The input: batch dim 'N', H and W from imageSize where unknown, in NCHW or behind an NHWC Transpose.
  const inputValue = graph.input.find((v) => v.name === info.input.name) as ValueInfoProto;
  const dims = (inputValue.type?.tensor_type?.shape?.dim ?? []).map((d) => ({ ...d }));
  dims[0] = { dim_param: BATCH_DIM };
  for (const axis of [2, 3]) {
    const d = dims[axis] as TensorShapeDim;
    if (d.dim_value !== undefined) {
      if (options.imageSize !== undefined && d.dim_value !== options.imageSize) {
        throw new ValidationError(
          ErrorCode.InvalidRequest,
          `${source} takes ${axis === 2 ? 'height' : 'width'} ${d.dim_value} images; image size ${options.imageSize} does not fit it`,
        );
      }
    } else if (options.imageSize !== undefined) dims[axis] = { dim_value: options.imageSize };
  }
  let inputName = info.input.name;
  let newInput: ValueInfoProto;
  const head: NodeProto[] = [];
  if (options.inputLayout === 'nhwc') {
    if (inputName === NHWC_INPUT_NAME) {
      // The model's own input is called `input`: it becomes the Transpose's output under another name.
      const renamed = freshName(`${NHWC_INPUT_NAME}_nchw`, graph);
      renameInput(nodes, NHWC_INPUT_NAME, renamed);
      inputName = renamed;
    } else if (producer.has(NHWC_INPUT_NAME) || graph.initializer.some((t) => t.name === NHWC_INPUT_NAME)) {
      throw new ValidationError(
        ErrorCode.InvalidModel,
        `${source}: a tensor of the graph is already named ${JSON.stringify(NHWC_INPUT_NAME)}, the name of the NHWC input layertap adds`,
      );
    }
    newInput = tensorValue(NHWC_INPUT_NAME, [dims[0], dims[2], dims[3], dims[1]] as TensorShapeDim[]);
    head.push({
      input: [NHWC_INPUT_NAME],
      output: [inputName],
      name: NHWC_TRANSPOSE_NODE,
      op_type: 'Transpose',
      attribute: [{ name: 'perm', type: AttributeType.INTS, ints: [0, 3, 1, 2] } as NodeProto['attribute'][number]],
    });
  } else {
    newInput = { ...inputValue, type: tensorValue(inputName, dims).type };
  }

  const usedNames = new Set<string>(needed);
  for (const node of nodes) for (const input of nodeInputs(node)) usedNames.add(input);
  const initializer = graph.initializer.filter((t) => t.name && usedNames.has(t.name));
  const sparse = graph.sparse_initializer.filter((s) => s.values?.name && usedNames.has(s.values.name));
  const keptInitializers = new Set([...initializer.map((t) => t.name), ...sparse.map((s) => s.values?.name)]);
  // Inputs that are initializers (IR < 4 lists them), kept when their initializer is.
  const initializerInputs = graph.input.filter((v) => v.name !== info.input.name && keptInitializers.has(v.name));
  const requested = new Set(outputs);
  const batch = (inputValue.type?.tensor_type?.shape?.dim ?? [])[0];
  const valueInfo = graph.value_info
    .filter((v) => v.name && keptTensors.has(v.name) && !requested.has(v.name) && v.name !== inputName)
    .map((v) => withSymbolicBatch(v, batch));
  const keptNames = new Set([...keptTensors, ...keptInitializers]);
  const quantization = graph.quantization_annotation.filter((q) => keptNames.has((q as { tensor_name?: string }).tensor_name));

  const newGraph: GraphProto = {
    ...graph,
    node: [...head, ...nodes],
    initializer,
    sparse_initializer: sparse,
    input: [newInput, ...initializerInputs],
    output: outputs.map((name) => ({ name, type: { tensor_type: { elem_type: DataType.FLOAT } } })),
    value_info: valueInfo,
    quantization_annotation: quantization,
  };
  const newModel: ModelProto = { ...model, graph: newGraph, training_info: [] };
  const encoded = onnxModelType().encode(newModel).finish();

  let deepest = outputs[0] as string;
  for (const name of outputs) if ((producer.get(name) ?? -1) > (producer.get(deepest) ?? -1)) deepest = name;
  return {
    bytes: encoded,
    inputName: options.inputLayout === 'nhwc' ? NHWC_INPUT_NAME : info.input.name,
    outputs: [...outputs],
    nodes: newGraph.node.length,
    ops: newGraph.node.map((node) => node.op_type ?? ''),
    weightBytes: weightBytes(newGraph),
    deepest,
  };
}

function checkOutputs(
  outputs: readonly string[],
  tensors: readonly string[],
  producer: ReadonlyMap<string, number>,
  elemTypes: ReadonlyMap<string, string>,
  inputName: string,
  source: string,
): void {
  if (outputs.length === 0) throw new ValidationError(ErrorCode.InvalidRequest, `no tensor to cut ${source} at`);
  const seen = new Set<string>();
  for (const name of outputs) {
    if (seen.has(name)) {
      throw new ValidationError(ErrorCode.InvalidRequest, `tensor ${JSON.stringify(name)} is asked for twice`);
    }
    seen.add(name);
    if (!producer.has(name)) {
      const what = name === inputName ? `is the input of ${source}, not a layer's output` : `is not a tensor of ${source}${didYouMean(name, tensors)}`;
      throw new ValidationError(ErrorCode.UnknownLayer, `${JSON.stringify(name)} ${what}`);
    }
    const type = elemTypes.get(name);
    if (type !== undefined && type !== 'float32') {
      throw new ValidationError(
        ErrorCode.InvalidRequest,
        `tensor ${JSON.stringify(name)} of ${source} is ${type}; layertap extracts float32 tensors`,
      );
    }
  }
}

/**
 * The batch dim of a value_info shape made 'N' like the input's: where the model's input had a fixed batch (1 in
 * many exports), a leading dim of that size; where it had a symbolic one, that symbol. A fixed size left there
 * would make ONNX Runtime warn on every batch of another size (a named dim only says less: never wrong).
 */
function withSymbolicBatch(v: ValueInfoProto, batch: TensorShapeDim | undefined): ValueInfoProto {
  const shape = v.type?.tensor_type?.shape;
  const first = shape?.dim[0];
  if (!shape || !first || !batch) return v;
  const same =
    (batch.dim_value !== undefined && first.dim_value === batch.dim_value) ||
    (batch.dim_param !== undefined && batch.dim_param !== '' && first.dim_param === batch.dim_param);
  if (!same) return v;
  const tensorType = { ...v.type?.tensor_type, shape: { ...shape, dim: [{ dim_param: BATCH_DIM }, ...shape.dim.slice(1)] } };
  return { ...v, type: { ...v.type, tensor_type: tensorType } };
}

function tensorValue(name: string, dims: TensorShapeDim[]): ValueInfoProto {
  return { name, type: { tensor_type: { elem_type: DataType.FLOAT, shape: { dim: dims } } } };
}

/** A node's inputs, and the outer-scope names its subgraphs (If/Loop/Scan bodies) read. */
function nodeInputs(node: NodeProto): string[] {
  const names = node.input.filter((n) => n !== '');
  for (const a of node.attribute) {
    for (const g of [...(a.g ? [a.g] : []), ...a.graphs]) names.push(...outerNames(g));
  }
  return names;
}

/** Names a subgraph reads that it does not define itself (inputs, initializers, its nodes' outputs). */
function outerNames(graph: GraphProto): string[] {
  const defined = new Set<string>();
  for (const v of graph.input) if (v.name) defined.add(v.name);
  for (const t of graph.initializer) if (t.name) defined.add(t.name);
  for (const s of graph.sparse_initializer) if (s.values?.name) defined.add(s.values.name);
  for (const node of graph.node) for (const o of node.output) if (o) defined.add(o);
  const outer: string[] = [];
  for (const node of graph.node) for (const n of nodeInputs(node)) if (!defined.has(n)) outer.push(n);
  for (const v of graph.output) if (v.name && !defined.has(v.name)) outer.push(v.name);
  return outer;
}

/** Renames a tensor where kept nodes (and the subgraphs in them) read it. */
function renameInput(nodes: NodeProto[], from: string, to: string): void {
  const visit = (list: NodeProto[]) => {
    for (const node of list) {
      node.input = node.input.map((n) => (n === from ? to : n));
      for (const a of node.attribute) {
        for (const g of [...(a.g ? [a.g] : []), ...a.graphs]) {
          visit(g.node);
          g.output = g.output.map((v) => (v.name === from ? { ...v, name: to } : v));
        }
      }
    }
  };
  visit(nodes);
}

function freshName(base: string, graph: GraphProto): string {
  const taken = new Set<string>();
  const collect = (g: GraphProto) => {
    for (const v of [...g.input, ...g.output, ...g.value_info]) if (v.name) taken.add(v.name);
    for (const t of g.initializer) if (t.name) taken.add(t.name);
    for (const node of g.node) {
      for (const n of [...node.input, ...node.output]) taken.add(n);
      for (const a of node.attribute) for (const sub of [...(a.g ? [a.g] : []), ...a.graphs]) collect(sub);
    }
  };
  collect(graph);
  let name = base;
  for (let i = 1; taken.has(name); i++) name = `${base}_${i}`;
  return name;
}
