import '../../__tests__/main-realm-typed-arrays';
import * as ort from 'onnxruntime-node';
import { ErrorCode, ValidationError } from '@layertap/contracts';
import { randomWeight, type WeightSpec, type WeightsMap, VGG16_WEIGHTS, buildVgg16Onnx, convKernelToOnnx, denseRowsHwcToChw, ONNX_IR_VERSION, ONNX_OPSET } from '@layertap/model';
import { decodeModel, rawFloats } from '@layertap/model/testing';

function spec(name: string): WeightSpec {
  const found = VGG16_WEIGHTS.find((s) => s.name === name);
  if (!found) throw new Error(`no spec ${name}`);
  return found;
}

describe('buildVgg16Onnx', () => {
  it('writes an opset-17, IR-8 model whose graph stops at the deepest output', () => {
    const built = buildVgg16Onnx({ imageSize: 32, outputs: ['features.9', 'block1_pool'] });
    const model = decodeModel(built.bytes);
    expect(model.irVersion).toBe(ONNX_IR_VERSION);
    expect(model.opsets).toEqual([{ domain: '', version: ONNX_OPSET }]);
    expect(model.producerName).toBe('layertap');
    const { graph } = model;
    expect(graph.name).toBe('vgg16_to_block2_pool');
    expect(graph.nodes.map((n) => n.opType)).toEqual([
      'Transpose', 'Conv', 'Relu', 'Conv', 'Relu', 'MaxPool', 'Conv', 'Relu', 'Conv', 'Relu', 'MaxPool',
    ]);
    expect(graph.nodes.at(-1)?.outputs).toEqual(['block2_pool']);
    expect(graph.initializers.map((t) => t.name)).toEqual([
      'block1_conv1/kernel', 'block1_conv1/bias', 'block1_conv2/kernel', 'block1_conv2/bias',
      'block2_conv1/kernel', 'block2_conv1/bias', 'block2_conv2/kernel', 'block2_conv2/bias',
    ]);
    expect(built.weightBytes).toBe(4 * 260_160);
    expect(graph.inputs).toEqual([{ name: 'input', elemType: 1, dims: ['N', 32, 32, 3] }]);
    // Outputs in the order asked for, NCHW.
    expect(graph.outputs).toEqual([
      { name: 'block2_pool', elemType: 1, dims: ['N', 128, 8, 8] },
      { name: 'block1_pool', elemType: 1, dims: ['N', 64, 16, 16] },
    ]);
    expect(built.outputs).toEqual([
      { name: 'block2_pool', sampleShape: [128, 8, 8] },
      { name: 'block1_pool', sampleShape: [64, 16, 16] },
    ]);
    const conv = graph.nodes[1];
    expect(conv?.attributes).toEqual({ kernel_shape: [3, 3], pads: [1, 1, 1, 1], strides: [1, 1] });
    expect(graph.nodes[0]?.attributes).toEqual({ perm: [0, 3, 1, 2] });
    expect(graph.nodes[5]?.attributes).toEqual({ kernel_shape: [2, 2], strides: [2, 2] });
  });

  it('exposes a pre-activation as the Conv output, before its Relu', () => {
    const model = decodeModel(buildVgg16Onnx({ imageSize: 32, outputs: ['block1_conv2_preact'] }).bytes);
    expect(model.graph.nodes.map((n) => `${n.opType}:${n.outputs.join()}`)).toEqual([
      'Transpose:input_nchw', 'Conv:block1_conv1_preact', 'Relu:block1_conv1', 'Conv:block1_conv2_preact',
    ]);
    expect(model.graph.outputs.map((o) => o.name)).toEqual(['block1_conv2_preact']);
  });

  it('stores conv kernels as [out, in, kh, kw] and skips the input transpose for NCHW input', () => {
    const given: WeightsMap = new Map(
      ['block1_conv1/kernel', 'block1_conv1/bias'].map((name) => [name, { shape: [...spec(name).shape], data: randomWeight(3, spec(name)) }]),
    );
    const built = buildVgg16Onnx({ imageSize: 32, outputs: ['block1_conv1'], weights: given, inputLayout: 'nchw' });
    const { graph } = decodeModel(built.bytes);
    expect(graph.inputs[0]?.dims).toEqual(['N', 3, 32, 32]);
    expect(graph.nodes.map((n) => n.opType)).toEqual(['Conv', 'Relu']);
    const kernel = graph.initializers[0];
    expect(kernel?.dims).toEqual([64, 3, 3, 3]);
    const tf = given.get('block1_conv1/kernel')?.data ?? new Float32Array();
    const onnx = rawFloats(kernel ?? { name: '', dims: [], dataType: 1 });
    // ONNX [o, i, y, x] = TF [y, x, i, o]
    for (const [o, i, y, x] of [[0, 0, 0, 0], [5, 2, 1, 0], [63, 1, 2, 2]] as const) {
      expect(onnx[((o * 3 + i) * 3 + y) * 3 + x]).toBe(tf[((y * 3 + x) * 3 + i) * 64 + o]);
    }
    expect(rawFloats(graph.initializers[1] ?? { name: '', dims: [], dataType: 1 })).toEqual(given.get('block1_conv1/bias')?.data);
  });

  it('pools to 7x7 with two MatMuls off 224, an Identity at 224, and flattens in (H,W,C) order for a hook', () => {
    const small = decodeModel(buildVgg16Onnx({ imageSize: 64, outputs: ['avgpool', 'flatten'] }).bytes).graph;
    // No flatten_chw: nothing reads it when flatten is the deepest layer.
    expect(small.nodes.slice(-4).map((n) => `${n.opType}:${n.outputs.join()}`)).toEqual([
      'MatMul:avgpool_cols', 'MatMul:avgpool', 'Transpose:avgpool_nhwc', 'Flatten:flatten',
    ]);
    expect(small.nodes.at(-2)?.attributes).toEqual({ perm: [0, 2, 3, 1] });
    const pooling = small.initializers.filter((t) => t.name.startsWith('avgpool/')).map((t) => [t.name, t.dims]);
    expect(pooling).toEqual([['avgpool/cols', [2, 7]], ['avgpool/rows', [7, 2]]]);
    expect(small.outputs).toEqual([
      { name: 'avgpool', elemType: 1, dims: ['N', 512, 7, 7] },
      { name: 'flatten', elemType: 1, dims: ['N', 25088] },
    ]);
    const at224 = decodeModel(buildVgg16Onnx({ imageSize: 224, outputs: ['avgpool'] }).bytes).graph;
    expect(at224.nodes.at(-1)).toMatchObject({ opType: 'Identity', inputs: ['block5_pool'], outputs: ['avgpool'] });
    expect(at224.initializers.some((t) => t.name.startsWith('avgpool/'))).toBe(false);
  });

  it('builds nothing past the deepest layer: no head weights for block5_pool', () => {
    const built = buildVgg16Onnx({ imageSize: 32, outputs: ['block5_pool'] });
    const { graph } = decodeModel(built.bytes);
    expect(graph.nodes.filter((n) => n.opType === 'Conv')).toHaveLength(13);
    expect(graph.nodes.filter((n) => n.opType === 'MaxPool')).toHaveLength(5);
    expect(graph.nodes).toHaveLength(1 + 13 * 2 + 5);
    expect(graph.initializers.map((t) => t.name)).not.toContain('fc1/kernel');
    expect(built.weightBytes).toBe(4 * 14_714_688);
  });

  it('refuses repeated outputs and weights that lack a tensor', () => {
    expect(() => buildVgg16Onnx({ imageSize: 32, outputs: ['features.9', 'block2_pool'] })).toThrow('output layer block2_pool is given twice');
    const weights: WeightsMap = new Map();
    let err: unknown;
    try {
      buildVgg16Onnx({ imageSize: 32, outputs: ['block1_conv1'], weights });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as ValidationError).code).toBe(ErrorCode.InvalidWeights);
    expect((err as ValidationError).message).toContain('block1_conv1/kernel is missing');
  });

  it('is accepted and run by ONNX Runtime, with the declared output shapes', async () => {
    const built = buildVgg16Onnx({ imageSize: 32, outputs: ['block1_conv1_preact', 'block2_pool'] });
    const session = await ort.InferenceSession.create(built.bytes, { executionProviders: ['cpu'], intraOpNumThreads: 1 });
    try {
      expect(session.inputNames).toEqual(['input']);
      expect(session.outputNames).toEqual(['block1_conv1_preact', 'block2_pool']);
      const input = new ort.Tensor('float32', new Float32Array(2 * 32 * 32 * 3).fill(0.5), [2, 32, 32, 3]);
      const result = await session.run({ input });
      expect(result.block1_conv1_preact?.dims).toEqual([2, 64, 32, 32]);
      expect(result.block2_pool?.dims).toEqual([2, 128, 8, 8]);
      // A constant image: every pixel of a pre-activation's interior equals its neighbour's.
      const pre = result.block1_conv1_preact?.data as Float32Array;
      expect(pre[5 * 32 + 5]).toBeCloseTo(pre[5 * 32 + 6] as number, 6);
      expect(pre.some((v) => v < 0)).toBe(true);
    } finally {
      await session.release();
    }
  });
});

describe('weight layout helpers', () => {
  it('convKernelToOnnx maps TF [kh, kw, in, out] to ONNX [out, in, kh, kw]', () => {
    const [cin, cout] = [2, 3];
    const tf = Float32Array.from({ length: 9 * cin * cout }, (_, i) => i);
    const onnx = convKernelToOnnx(tf, cin, cout);
    for (let y = 0; y < 3; y++)
      for (let x = 0; x < 3; x++)
        for (let i = 0; i < cin; i++)
          for (let o = 0; o < cout; o++) expect(onnx[((o * cin + i) * 3 + y) * 3 + x]).toBe(tf[((y * 3 + x) * cin + i) * cout + o]);
  });

  it('denseRowsHwcToChw moves the row of (h, w, c) to (c, h, w)', () => {
    const [h, w, c, units] = [2, 3, 4, 5];
    const kernel = Float32Array.from({ length: h * w * c * units }, (_, i) => i);
    const out = denseRowsHwcToChw(kernel, h, w, c, units);
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++)
        for (let k = 0; k < c; k++) {
          const from = ((y * w + x) * c + k) * units;
          const to = ((k * h + y) * w + x) * units;
          expect(Array.from(out.subarray(to, to + units))).toEqual(Array.from(kernel.subarray(from, from + units)));
        }
  });
});
