// cutOnnxModel on squeezenet1_1 (test/fixtures/onnx): the cut graph holds exactly what the outputs need.
import { ErrorCode } from '@layertap/contracts';
import { BATCH_DIM, cutOnnxModel, NHWC_INPUT_NAME, NHWC_TRANSPOSE_NODE } from './cut-onnx';
import { onnxModelType, readOnnxModel } from './read-onnx';
import type { GraphProto, ModelProto } from './onnx-types';
import { decode, fixture, refusal } from './__tests__/helpers';

const squeezenet = fixture('squeezenet1_1.onnx');
const full = decode(squeezenet).graph as GraphProto;

function dims(graph: GraphProto, index = 0): (number | string | null)[] {
  return (graph.input[index]?.type?.tensor_type?.shape?.dim ?? []).map((d) => d.dim_value ?? d.dim_param ?? null);
}

/** Every tensor a graph's nodes read is the graph input, an initializer or an earlier node's output. */
function expectSelfContained(graph: GraphProto): void {
  const known = new Set<string>([...graph.input.map((v) => v.name as string), ...graph.initializer.map((t) => t.name as string)]);
  for (const node of graph.node) {
    for (const input of node.input) if (input) expect(known).toContain(input);
    for (const output of node.output) known.add(output);
  }
  for (const output of graph.output) expect(known).toContain(output.name);
}

describe('cutOnnxModel', () => {
  it('cuts to features.7: its nodes only, nothing computed after it, weights of those nodes only', () => {
    const cut = cutOnnxModel(squeezenet, ['features.7'], { inputLayout: 'nchw' });
    expect(cut).toMatchObject({ inputName: 'image', outputs: ['features.7'], deepest: 'features.7' });
    const graph = decode(cut.bytes).graph as GraphProto;
    expect(cut.nodes).toBe(graph.node.length);
    expect(graph.node.length).toBeLessThan(full.node.length);
    expect(graph.output.map((o) => o.name)).toEqual(['features.7']);
    // features.7 is the last node's output, and nothing reads it.
    expect(graph.node.at(-1)?.output).toEqual(['features.7']);
    expect(graph.node.some((n) => n.input.includes('features.7'))).toBe(false);
    expect(graph.node.some((n) => n.name?.includes('features.8') || n.name?.includes('classifier'))).toBe(false);
    expect(graph.node.map((n) => n.name)).toEqual(expect.arrayContaining(['/model/features/features.0/Conv', '/model/features/features.3/Concat']));
    // Only the weights of kept nodes.
    const used = new Set(graph.node.flatMap((n) => n.input));
    expect(graph.initializer.length).toBeGreaterThan(0);
    for (const t of graph.initializer) expect(used).toContain(t.name);
    expect(graph.initializer.some((t) => t.name?.startsWith('model.classifier'))).toBe(false);
    expect(graph.initializer.some((t) => t.name === 'model.features.7.expand3x3.weight')).toBe(true);
    // The input keeps its layout, batch dim 'N'; the output is float32 of unknown shape.
    expect(graph.input.map((v) => v.name)).toEqual(['image']);
    expect(dims(graph)).toEqual([BATCH_DIM, 3, 224, 224]);
    expect(graph.output[0]?.type).toEqual({ tensor_type: { elem_type: 1 } });
    expectSelfContained(graph);
    // The rest of the model comes along.
    const model = decode(cut.bytes) as ModelProto;
    expect(model.opset_import).toEqual(decode(squeezenet).opset_import);
    expect(model.opset_import[0]?.version).toBe(13);
    expect(model.producer_name).toBe('pytorch');
    // And the result is a model readOnnxModel takes.
    const info = readOnnxModel(cut.bytes, 'cut');
    expect(info.outputs.map((o) => o.name)).toEqual(['features.7']);
    expect(info.tensors.at(-1)?.name).toBe('features.7');
  });

  it('cuts to two outputs in the order asked, deepest the one computed last', () => {
    const cut = cutOnnxModel(squeezenet, ['features.12', '/model/features/features.0/Conv_output_0'], { inputLayout: 'nchw' });
    const graph = decode(cut.bytes).graph as GraphProto;
    expect(graph.output.map((o) => o.name)).toEqual(['features.12', '/model/features/features.0/Conv_output_0']);
    expect(cut.deepest).toBe('features.12');
    expect(graph.node.at(-1)?.output).toEqual(['features.12']);
    expect(graph.node.some((n) => n.name?.includes('classifier'))).toBe(false);
    expectSelfContained(graph);
    const all = cutOnnxModel(squeezenet, ['features.3', 'logits', 'features.7'], { inputLayout: 'nchw' });
    expect(all.deepest).toBe('logits');
    expect(all.nodes).toBe(full.node.length);
  });

  it('cuts to a tensor that needs only initializers (an Identity of a shared bias)', () => {
    const cut = cutOnnxModel(squeezenet, ['model.features.12.expand3x3.bias'], { inputLayout: 'nchw' });
    const graph = decode(cut.bytes).graph as GraphProto;
    expect(graph.node.map((n) => n.op_type)).toEqual(['Identity']);
    expect(graph.initializer.map((t) => t.name)).toEqual(['model.features.11.expand1x1.bias']);
  });

  it("nhwc: a new float32 [N, H, W, C] input named 'input', then a Transpose to the original input", () => {
    const cut = cutOnnxModel(squeezenet, ['features.7'], { inputLayout: 'nhwc' });
    expect(cut.inputName).toBe(NHWC_INPUT_NAME);
    const graph = decode(cut.bytes).graph as GraphProto;
    expect(graph.input.map((v) => v.name)).toEqual(['input']);
    expect(graph.input[0]?.type?.tensor_type?.elem_type).toBe(1);
    expect(dims(graph)).toEqual(['N', 224, 224, 3]);
    const first = graph.node[0];
    expect(first).toMatchObject({ op_type: 'Transpose', name: NHWC_TRANSPOSE_NODE, input: ['input'], output: ['image'] });
    expect(first?.attribute).toEqual([expect.objectContaining({ name: 'perm', type: 7, ints: [0, 3, 1, 2] })]);
    expect(cut.nodes).toBe(cutOnnxModel(squeezenet, ['features.7'], { inputLayout: 'nchw' }).nodes + 1);
    expectSelfContained(graph);
  });

  it('fills symbolic H and W from imageSize, and refuses an imageSize the model does not take', () => {
    const tiny = decode(fixture('tiny.onnx'));
    tiny.graph!.input[0]!.type!.tensor_type!.shape!.dim.splice(2, 2, { dim_param: 'H' }, {});
    const bytes = onnxModelType().encode(tiny).finish();
    const nhwc = decode(cutOnnxModel(bytes, ['relu'], { inputLayout: 'nhwc', imageSize: 32 }).bytes).graph as GraphProto;
    expect(dims(nhwc)).toEqual(['N', 32, 32, 3]);
    const nchw = decode(cutOnnxModel(bytes, ['relu'], { inputLayout: 'nchw', imageSize: 32 }).bytes).graph as GraphProto;
    expect(dims(nchw)).toEqual(['N', 3, 32, 32]);
    const kept = decode(cutOnnxModel(bytes, ['relu'], { inputLayout: 'nhwc' }).bytes).graph as GraphProto;
    expect(dims(kept)).toEqual(['N', 'H', null, 3]);
    const wrong = refusal(() => cutOnnxModel(squeezenet, ['features.7'], { inputLayout: 'nhwc', imageSize: 256 }));
    expect(wrong.code).toBe(ErrorCode.InvalidRequest);
    expect(wrong.message).toContain('takes height 224 images; image size 256 does not fit it');
  });

  it('keeps value_info of kept tensors only, their batch dim made N like the input', () => {
    const tiny = decode(fixture('tiny.onnx'));
    const g = tiny.graph as GraphProto;
    g.input[0]!.type!.tensor_type!.shape!.dim[0] = { dim_value: 1 };
    const info = (name: string, dim: { dim_value?: number; dim_param?: string }[]) => ({ name, type: { tensor_type: { elem_type: 1, shape: { dim } } } });
    g.value_info.push(info('conv', [{ dim_value: 1 }, { dim_value: 4 }, { dim_value: 8 }, { dim_value: 8 }]), info('relu', [{ dim_value: 1 }, { dim_value: 4 }]));
    g.node.push({ input: ['relu'], output: ['after'], op_type: 'Relu', name: 'after', attribute: [] });
    g.value_info.push(info('after', [{ dim_value: 1 }]));
    const graph = decode(cutOnnxModel(onnxModelType().encode(tiny).finish(), ['relu'], { inputLayout: 'nchw' }).bytes).graph as GraphProto;
    expect(dims(graph)).toEqual(['N', 3, 8, 8]);
    expect(graph.value_info).toEqual([info('conv', [{ dim_param: 'N' }, { dim_value: 4 }, { dim_value: 8 }, { dim_value: 8 }])]);
  });

  it("renames a model input already called 'input' behind the NHWC Transpose", () => {
    const tiny = decode(fixture('tiny.onnx'));
    tiny.graph!.input[0]!.name = 'input';
    tiny.graph!.node[0]!.input[0] = 'input';
    const cut = cutOnnxModel(onnxModelType().encode(tiny).finish(), ['relu'], { inputLayout: 'nhwc' });
    const graph = decode(cut.bytes).graph as GraphProto;
    expect(graph.input.map((v) => v.name)).toEqual(['input']);
    expect(graph.node[0]).toMatchObject({ op_type: 'Transpose', input: ['input'], output: ['input_nchw'] });
    expect(graph.node[1]?.input[0]).toBe('input_nchw');
    expectSelfContained(graph);
  });

  it('keeps the outer-scope tensors a subgraph (If) reads', () => {
    const tiny = decode(fixture('tiny.onnx'));
    const g = tiny.graph as GraphProto;
    // cond = constant true; if cond then (relu + conv) else relu: the branch reads conv from the outer scope.
    const branch = (name: string, body: { input: string[]; op: string }): GraphProto => ({
      name, node: [{ input: body.input, output: [`${name}_out`], op_type: body.op, name: `${name}_node`, attribute: [] }],
      input: [], output: [{ name: `${name}_out`, type: { tensor_type: { elem_type: 1 } } }],
      initializer: [], sparse_initializer: [], value_info: [], quantization_annotation: [],
    });
    g.node.push(
      { input: ['image'], output: ['shape'], op_type: 'Shape', name: 'shape', attribute: [] },
      { input: ['shape', 'shape'], output: ['cond_all'], op_type: 'Equal', name: 'eq', attribute: [] },
      { input: ['cond_all'], output: ['cond'], op_type: 'ReduceMin', name: 'cond', attribute: [{ name: 'keepdims', type: 2, i: 0 } as GraphProto['node'][number]['attribute'][number]] },
      {
        input: ['cond'], output: ['chosen'], op_type: 'If', name: 'if',
        attribute: [
          { name: 'then_branch', type: 5, g: branch('then', { input: ['relu', 'conv'], op: 'Add' }) },
          { name: 'else_branch', type: 5, g: branch('else', { input: ['relu'], op: 'Identity' }) },
        ] as GraphProto['node'][number]['attribute'],
      },
    );
    const cut = cutOnnxModel(onnxModelType().encode(tiny).finish(), ['chosen'], { inputLayout: 'nchw' });
    const graph = decode(cut.bytes).graph as GraphProto;
    expect(graph.node.map((n) => n.name)).toEqual(['conv', 'relu', 'shape', 'eq', 'cond', 'if']);
    expect(graph.initializer.map((t) => t.name).sort()).toEqual(['conv.bias', 'conv.weight']);
  });

  it('keeps model-local functions, opsets and metadata as they are', () => {
    const tiny = decode(fixture('tiny.onnx'));
    tiny.opset_import.push({ domain: 'local', version: 1 });
    tiny.functions.push({
      name: 'Double', domain: 'local', input: ['x'], output: ['y'], attribute: [],
      node: [{ input: ['x', 'x'], output: ['y'], op_type: 'Add', name: 'add', attribute: [] }],
      opset_import: [{ domain: '', version: 13 }],
    });
    tiny.metadata_props.push({ key: 'author', value: 'fixture' });
    tiny.graph!.node.push({ input: ['relu'], output: ['doubled'], op_type: 'Double', domain: 'local', name: 'double', attribute: [] });
    const model = decode(cutOnnxModel(onnxModelType().encode(tiny).finish(), ['doubled'], { inputLayout: 'nchw' }).bytes);
    expect(model.functions).toEqual(tiny.functions);
    expect(model.opset_import).toEqual(tiny.opset_import);
    expect(model.metadata_props).toEqual([{ key: 'author', value: 'fixture' }]);
    expect(model.graph?.node.map((n) => n.name)).toEqual(['conv', 'relu', 'double']);
  });

  it('refuses an unknown tensor with close names, the input, a non-float32 tensor, a name twice, no name', () => {
    const typo = refusal(() => cutOnnxModel(squeezenet, ['features.77'], { inputLayout: 'nchw', source: 'sq.onnx' }));
    expect(typo.code).toBe(ErrorCode.UnknownLayer);
    expect(typo.message).toMatch(/^"features.77" is not a tensor of sq.onnx; did you mean "features.7"/);
    expect(refusal(() => cutOnnxModel(squeezenet, ['nothing_like_it'], { inputLayout: 'nchw' })).message).toBe(
      '"nothing_like_it" is not a tensor of the ONNX model',
    );
    expect(refusal(() => cutOnnxModel(squeezenet, ['image'], { inputLayout: 'nchw' })).message).toContain('is the input of the ONNX model');
    const twice = refusal(() => cutOnnxModel(squeezenet, ['features.3', 'features.7', 'features.3'], { inputLayout: 'nchw' }));
    expect(twice.code).toBe(ErrorCode.InvalidRequest);
    expect(twice.message).toContain('"features.3" is asked for twice');
    expect(refusal(() => cutOnnxModel(squeezenet, [], { inputLayout: 'nchw' })).code).toBe(ErrorCode.InvalidRequest);

    const tiny = decode(fixture('tiny.onnx'));
    tiny.graph!.node.push({ input: ['relu'], output: ['relu_shape'], op_type: 'Shape', name: 'shape', attribute: [] });
    const int64 = refusal(() => cutOnnxModel(onnxModelType().encode(tiny).finish(), ['relu_shape'], { inputLayout: 'nchw' }));
    expect(int64.code).toBe(ErrorCode.InvalidRequest);
    expect(int64.message).toBe('tensor "relu_shape" of the ONNX model is int64; layertap extracts float32 tensors');
  });

  it('refuses what readOnnxModel refuses', () => {
    const err = refusal(() => cutOnnxModel(fixture('tiny-external.onnx'), ['relu'], { inputLayout: 'nchw', source: 'ext.onnx' }));
    expect(err.code).toBe(ErrorCode.InvalidModel);
    expect(err.message).toContain('ext.onnx: tensor "conv.weight" stores its weights outside the file');
  });
});
