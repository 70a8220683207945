// Element types of a graph's tensors where the file declares none (PyTorch's exporter writes no value_info
// for intermediate tensors): declared types first, then a forward pass over the nodes with rules that hold
// for every version of the default-domain ops named here. Anything else stays unknown.
import { DataType, elemTypeName, type GraphProto, type ValueInfoProto } from './onnx-types';

/** Ops whose every output has the element type of their first input. */
const SAME_AS_FIRST_INPUT = new Set([
  'Abs', 'Acos', 'Acosh', 'Add', 'Asin', 'Asinh', 'Atan', 'Atanh', 'AveragePool', 'BatchNormalization', 'Ceil',
  'Celu', 'Clip', 'Concat', 'Conv', 'ConvTranspose', 'Cos', 'Cosh', 'CumSum', 'DepthToSpace', 'Div', 'Einsum',
  'Elu', 'Erf', 'Exp', 'Expand', 'Flatten', 'Floor', 'Gather', 'GatherElements', 'GatherND', 'Gelu', 'Gemm',
  'GlobalAveragePool', 'GlobalLpPool', 'GlobalMaxPool', 'GroupNormalization', 'HardSigmoid', 'HardSwish',
  'Hardmax', 'Identity', 'InstanceNormalization', 'LRN', 'LayerNormalization', 'LeakyRelu', 'Log', 'LogSoftmax',
  'LpNormalization', 'LpPool', 'MatMul', 'Max', 'Mean', 'Min', 'Mish', 'Mod', 'Mul', 'Neg', 'PRelu', 'Pad', 'Pow',
  'Reciprocal', 'ReduceL1', 'ReduceL2', 'ReduceLogSum', 'ReduceLogSumExp', 'ReduceMax', 'ReduceMean',
  'ReduceMin', 'ReduceProd', 'ReduceSum', 'ReduceSumSquare', 'Relu', 'Reshape', 'Resize', 'Round', 'Selu',
  'Shrink', 'Sigmoid', 'Sign', 'Sin', 'Sinh', 'Slice', 'Softmax', 'Softplus', 'Softsign', 'SpaceToDepth', 'Split',
  'Sqrt', 'Squeeze', 'Sub', 'Sum', 'Tan', 'Tanh', 'ThresholdedRelu', 'Tile', 'Transpose', 'Unsqueeze', 'Upsample',
]);
/** Ops whose FIRST output has the element type of their first input (the others differ: indices, masks). */
const FIRST_SAME_AS_FIRST_INPUT = new Set(['Dropout', 'MaxPool', 'TopK']);
const BOOL_OUTPUT = new Set(['And', 'Equal', 'Greater', 'GreaterOrEqual', 'IsInf', 'IsNaN', 'Less', 'LessOrEqual', 'Not', 'Or', 'Xor']);
const INT64_OUTPUT = new Set(['ArgMax', 'ArgMin', 'NonMaxSuppression', 'NonZero', 'Shape', 'Size']);

/** Tensor name -> element type name, for every tensor whose type is declared or follows from the rules. */
export function inferElemTypes(graph: GraphProto, declared: ReadonlyMap<string, ValueInfoProto>): Map<string, string> {
  const types = new Map<string, string>();
  for (const [name, v] of declared) {
    const t = elemTypeName(v.type?.tensor_type?.elem_type);
    if (t !== 'unknown') types.set(name, t);
  }
  for (const t of graph.initializer) if (t.name && !types.has(t.name)) types.set(t.name, elemTypeName(t.data_type));

  for (const node of graph.node) {
    if (node.domain && node.domain !== 'ai.onnx') continue;
    const op = node.op_type ?? '';
    const first = node.input[0] ? types.get(node.input[0]) : undefined;
    const set = (index: number, type: string | undefined) => {
      const name = node.output[index];
      if (name && type && type !== 'unknown' && !types.has(name)) types.set(name, type);
    };
    if (SAME_AS_FIRST_INPUT.has(op)) node.output.forEach((_, i) => set(i, first));
    else if (FIRST_SAME_AS_FIRST_INPUT.has(op)) set(0, first);
    else if (BOOL_OUTPUT.has(op)) set(0, 'bool');
    else if (INT64_OUTPUT.has(op)) set(0, 'int64');
    else if (op === 'Where') set(0, node.input[1] ? types.get(node.input[1]) : undefined);
    else if (op === 'Cast') set(0, elemTypeName(node.attribute.find((a) => a.name === 'to')?.i));
    else if (op === 'Constant') set(0, constantType(node.attribute));
    else if (op === 'ConstantOfShape') {
      const value = node.attribute.find((a) => a.name === 'value')?.t;
      set(0, value ? elemTypeName(value.data_type) : 'float32');
    }
  }
  return types;
}

function constantType(attributes: GraphProto['node'][number]['attribute']): string | undefined {
  const a = attributes[0];
  if (!a) return undefined;
  switch (a.name) {
    case 'value':
      return elemTypeName(a.t?.data_type);
    case 'value_float':
    case 'value_floats':
      return elemTypeName(1);
    case 'value_int':
    case 'value_ints':
      return elemTypeName(DataType.INT64);
    case 'value_string':
    case 'value_strings':
      return 'string';
    default:
      return undefined;
  }
}
