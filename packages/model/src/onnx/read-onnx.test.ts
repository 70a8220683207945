// readOnnxModel on models PyTorch and onnx wrote (test/fixtures/onnx, test/parity/make_onnx_fixtures.py), and
// on every kind of file it must refuse.
import { ErrorCode, ValidationError } from '@layertap/contracts';
import { checkOnnxSize, DEFAULT_MAX_ONNX_BYTES, onnxModelType, readOnnxModel, resolveOnnxTensor } from './read-onnx';
import type { ModelProto, NodeProto } from './onnx-types';
import { decode, fixture, refusal } from './__tests__/helpers';

function encode(model: ModelProto): Uint8Array {
  return onnxModelType().encode(model).finish();
}

/** tiny.onnx decoded, changed by `edit`, encoded again. */
function tinyWith(edit: (m: ModelProto) => void): Uint8Array {
  const m = decode(fixture('tiny.onnx'));
  edit(m);
  return encode(m);
}

function expectInvalid(bytes: Uint8Array, ...parts: string[]): ValidationError {
  const err = refusal(() => readOnnxModel(bytes, 'model.onnx'));
  expect(err).toBeInstanceOf(ValidationError);
  expect(err.code).toBe(ErrorCode.InvalidModel);
  expect(err.message).toContain('model.onnx');
  expect(err.message.split('\n')).toHaveLength(1);
  for (const part of parts) expect(err.message).toContain(part);
  return err as ValidationError;
}

describe('readOnnxModel: squeezenet1_1 exported by PyTorch', () => {
  const info = readOnnxModel(fixture('squeezenet1_1.onnx'), 'squeezenet1_1.onnx');

  it('reads the header, the image input and the outputs', () => {
    expect(info.irVersion).toBe(7);
    expect(info.opsets).toEqual([{ domain: '', version: 13 }]);
    expect(info.producer).toBe('pytorch 1.13.0');
    expect(info.graphName).toBe('torch_jit');
    expect(info.input).toEqual({ name: 'image', elemType: 'float32', shape: ['N', 3, 224, 224] });
    expect(info.outputs.map((o) => o.name)).toEqual(['logits', 'features.3', 'features.7', 'features.12']);
    expect(info.outputs[0]).toMatchObject({ elemType: 'float32', shape: ['N', 1000], op: 'Flatten' });
    expect(info.outputs[1]).toMatchObject({ elemType: 'float32', shape: ['N', 128, 55, 55], op: 'Concat', node: '/model/features/features.3/Concat' });
    expect(info.nodes).toBe(83);
    // 1.235M float32 parameters (torchvision's squeezenet1_1), a few shared zero biases deduplicated.
    expect(info.initializerBytes).toBeGreaterThan(4_500_000);
    expect(info.initializerBytes).toBeLessThan(5_000_000);
  });

  it('lists every node output once, in graph order, with the op that makes it', () => {
    const names = info.tensors.map((t) => t.name);
    expect(new Set(names).size).toBe(names.length);
    expect(info.tensors).toHaveLength(83); // one output per node
    for (const name of ['features.3', 'features.7', 'features.12', 'logits']) expect(names).toContain(name);
    expect(names.indexOf('features.3')).toBeLessThan(names.indexOf('features.7'));
    expect(names.indexOf('features.12')).toBeLessThan(names.indexOf('logits'));
    expect(names).not.toContain('image');
    const conv = info.tensors.find((t) => t.node === '/model/features/features.0/Conv');
    // Undeclared (no value_info) but inferred: a Conv of a float32 image is float32.
    expect(conv).toEqual({ name: '/model/features/features.0/Conv_output_0', elemType: 'float32', op: 'Conv', node: '/model/features/features.0/Conv', fromInput: true });
    // torch's Identity copies of shared zero biases come first: weights, not activations.
    expect(info.tensors[0]).toMatchObject({ op: 'Identity', fromInput: false });
    expect(info.tensors.filter((t) => t.fromInput).map((t) => t.name)).toContain('features.7');
    expect(info.tensors.every((t) => t.elemType === 'float32')).toBe(true);
  });
});

describe('resolveOnnxTensor', () => {
  const info = readOnnxModel(fixture('squeezenet1_1.onnx'), 'squeezenet1_1.onnx');

  it('takes a tensor name, or a node name meaning its first output', () => {
    expect(resolveOnnxTensor(info, 'features.7').name).toBe('features.7');
    expect(resolveOnnxTensor(info, '/model/features/features.7/Concat').name).toBe('features.7');
    expect(resolveOnnxTensor(info, '/model/features/features.0/Conv').name).toBe('/model/features/features.0/Conv_output_0');
  });

  it('refuses an unknown name with close names, and the input', () => {
    const typo = refusal(() => resolveOnnxTensor(info, 'feature.7'));
    expect(typo.code).toBe(ErrorCode.UnknownLayer);
    expect(typo.message).toContain('"feature.7" is neither a tensor nor a node name of the ONNX model');
    expect(typo.message).toContain('did you mean "features.7"');
    const far = refusal(() => resolveOnnxTensor(info, 'block5_pool'));
    expect(far.code).toBe(ErrorCode.UnknownLayer);
    expect(far.message).not.toContain('did you mean');
    expect(refusal(() => resolveOnnxTensor(info, '')).code).toBe(ErrorCode.UnknownLayer);
    // A long generated name is found from a part of it; a short part suggests nothing.
    expect(refusal(() => resolveOnnxTensor(info, 'features.4/squeeze/Conv')).message).toContain('did you mean "/model/features/features.4/squeeze/Conv"');
    expect(refusal(() => resolveOnnxTensor(info, 'Co')).message).not.toContain('did you mean');
    expect(refusal(() => resolveOnnxTensor(info, 'image')).message).toContain("is the ONNX model's input");
  });
});

describe('readOnnxModel refuses', () => {
  it('files that are not ONNX models: random bytes, a JPEG header, text, a truncated model', () => {
    let seed = 1;
    const random = Uint8Array.from({ length: 4096 }, () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 16) & 0xff);
    expectInvalid(random, 'is not an ONNX model');
    const jpeg = Uint8Array.from([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46, 0x00, 0x01, 0x01, 0x00, 0x00, 0x01]);
    expectInvalid(jpeg, 'is not an ONNX model');
    expectInvalid(new TextEncoder().encode('{"this": "is json"}\n'), 'is not an ONNX model');
    expectInvalid(new Uint8Array(0), 'is empty');
    const full = fixture('squeezenet1_1.onnx');
    expectInvalid(full.subarray(0, Math.floor(full.length / 2)), 'is not an ONNX model (truncated or damaged');
  });

  it('a model without a graph, or a graph without nodes', () => {
    expectInvalid(tinyWith((m) => delete m.graph), 'is not an ONNX model (it has no graph)');
    expectInvalid(tinyWith((m) => (m.graph!.node = [])), 'the ONNX graph has no nodes');
  });

  it('weights stored outside the file (external data), in initializers and Constant nodes', () => {
    expectInvalid(
      fixture('tiny-external.onnx'),
      'tensor "conv.weight" stores its weights outside the file (external data)',
      'save_as_external_data=False',
    );
    const constant = tinyWith((m) => {
      const external = decode(fixture('tiny-external.onnx')).graph!.initializer[1]!;
      const node: NodeProto = { input: [], output: ['c'], name: 'c', op_type: 'Constant', attribute: [{ name: 'value', type: 4, t: { ...external, name: 'const.value' } } as NodeProto['attribute'][number]] };
      m.graph!.node.push(node);
    });
    expectInvalid(constant, 'tensor "const.value" stores its weights outside the file');
  });

  it('no input, two inputs (named), an input that is not a 4-D float32 image with 1 or 3 channels', () => {
    expectInvalid(tinyWith((m) => (m.graph!.input = [])), 'has no input');
    expectInvalid(fixture('tiny-two-inputs.onnx'), 'has 2 inputs (image, other)');
    const dims = (edit: (dim: { dim_value?: number; dim_param?: string }[]) => void) =>
      tinyWith((m) => edit(m.graph!.input[0]!.type!.tensor_type!.shape!.dim));
    expectInvalid(dims((d) => d.splice(3, 1)), 'input "image" is float32 [N, 3, 8]', '4-D float32 image tensor');
    expectInvalid(tinyWith((m) => (m.graph!.input[0]!.type!.tensor_type!.elem_type = 7)), 'input "image" is int64 [N, 3, 8, 8]');
    expectInvalid(dims((d) => (d[1] = { dim_value: 4 })), 'is [N, 4, 8, 8] with 4 channels', '1 or 3 channels');
    expectInvalid(dims((d) => (d[1] = { dim_param: 'C' })), 'with C channels');
    expectInvalid(dims((d) => (d[1] = {})), 'with an unknown number of channels');
    // NHWC exports (Keras via tf2onnx) are not fed as they are.
    expectInvalid(dims((d) => d.splice(1, 3, { dim_value: 8 }, { dim_value: 8 }, { dim_value: 3 })), 'is [N, 8, 8, 3] with 8 channels');
  });

  it('accepts a one-channel input and a model whose initializers are also listed as inputs (IR 3)', () => {
    const gray = tinyWith((m) => (m.graph!.input[0]!.type!.tensor_type!.shape!.dim[1] = { dim_value: 1 }));
    expect(readOnnxModel(gray, 'gray.onnx').input.shape).toEqual(['N', 1, 8, 8]);
    const ir3 = tinyWith((m) => {
      for (const t of m.graph!.initializer) m.graph!.input.push({ name: t.name, type: { tensor_type: { elem_type: 1 } } });
    });
    expect(readOnnxModel(ir3, 'ir3.onnx').input.name).toBe('image');
  });
});

describe('checkOnnxSize', () => {
  it('refuses a file over the limit, naming its size and LAYERTAP_MAX_MODEL_MB', () => {
    expect(DEFAULT_MAX_ONNX_BYTES).toBe(1024 ** 3);
    expect(() => checkOnnxSize(5_000_000, 'm.onnx')).not.toThrow();
    const err = refusal(() => checkOnnxSize(1536 * 1024 * 1024, 'big.onnx'));
    expect(err.code).toBe(ErrorCode.InvalidModel);
    expect(err.message).toBe('big.onnx is 1536.0 MB, over the 1024 MB limit for ONNX models (set LAYERTAP_MAX_MODEL_MB to raise it)');
    expect(refusal(() => checkOnnxSize(11 * 1024 * 1024, 'm.onnx', 10 * 1024 * 1024)).message).toContain('over the 10 MB limit');
    expect(refusal(() => checkOnnxSize(0, 'm.onnx')).message).toContain('m.onnx is empty');
  });
});
