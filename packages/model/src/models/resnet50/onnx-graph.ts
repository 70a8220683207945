// Generates ResNet-50 as an ONNX model from its table and torchvision weights, BatchNorm folded into each conv,
// truncated after the deepest requested layer, with the requested layers as graph outputs.
import { ErrorCode, LayertapError } from '@layertap/contracts';
import { encodeOnnxModel, type OnnxGraph, type OnnxInitializer, type OnnxNode, type OnnxValueInfo } from '../../onnx/onnx-proto';
import { randomWeight } from '../../random-weights';
import { validateWeights, type WeightsMap } from '../../weight-specs';
import { ONNX_BATCH_DIM, ONNX_INPUT_NAME, type OnnxBuild, type OnnxBuildOptions } from '../descriptor';
import { RESNET50_LAYERS, RESNET50_TABLE, checkResNet50ImageSize, resNet50OutputShape, type FoldedConv, type ResNetLayer } from './layers';
import { RESNET50_WEIGHTS, resNet50RequiredWeights } from './weight-specs';

/** torchvision's BatchNorm2d eps. */
export const BATCH_NORM_EPS = 1e-5;

/**
 * A conv weight [out, in, kh, kw] and the BatchNorm after it, folded into one conv: w' = w * g / sqrt(v + eps),
 * b' = beta - m * g / sqrt(v + eps), computed in float64 and rounded once.
 */
export function foldBatchNorm(
  weight: Float32Array,
  bn: { gamma: Float32Array; beta: Float32Array; mean: Float32Array; variance: Float32Array },
  eps = BATCH_NORM_EPS,
): { weight: Float32Array; bias: Float32Array } {
  const channels = bn.gamma.length;
  const per = weight.length / channels;
  const folded = new Float32Array(weight.length);
  const bias = new Float32Array(channels);
  for (let c = 0; c < channels; c++) {
    const scale = (bn.gamma[c] as number) / Math.sqrt((bn.variance[c] as number) + eps);
    for (let i = c * per; i < (c + 1) * per; i++) folded[i] = (weight[i] as number) * scale;
    bias[c] = (bn.beta[c] as number) - (bn.mean[c] as number) * scale;
  }
  return { weight: folded, bias };
}

/**
 * Builds ResNet-50 for NHWC (or NCHW) float32 input up to the deepest of `outputs`. Every table row that is
 * computed is a tensor named by its canonical name; `avgpool` is GlobalAveragePool ([N, 2048, 1, 1]), `fc`
 * a Gemm on the flattened pool (torch's [out, in] weight, transB).
 */
export function buildResNet50Onnx(options: OnnxBuildOptions): OnnxBuild {
  const { imageSize } = options;
  checkResNet50ImageSize(imageSize);
  const outputs = RESNET50_TABLE.outputs(options.outputs);
  const deepest = outputs.reduce((a, b) => (b.order > a.order ? b : a));
  if (options.weights) validateWeights(options.weights, resNet50RequiredWeights([deepest.name]), 'ResNet-50');
  const weight = weightSource(options.weights, options.seed ?? 0);

  const nodes: OnnxNode[] = [];
  const initializers: OnnxInitializer[] = [];
  const node = (opType: string, inputs: string[], output: string, attributes?: OnnxNode['attributes']): string => {
    nodes.push({ opType, name: `${output}/${opType}`, inputs, outputs: [output], ...(attributes ? { attributes } : {}) });
    return output;
  };
  const constant = (name: string, dims: number[], data: Float32Array): string => {
    initializers.push({ name, dims, type: 'float32', data });
    return name;
  };

  const input = (options.inputLayout ?? 'nhwc') === 'nhwc' ? node('Transpose', [ONNX_INPUT_NAME], 'input_nchw', { perm: [0, 3, 1, 2] }) : ONNX_INPUT_NAME;
  const tensor = (name: string) => (name === 'input' ? input : name);
  // Only the rows some output depends on: a block's downsample is skipped when only its bn3 is wanted.
  const needed = neededRows(deepest, outputs);
  for (const row of RESNET50_LAYERS.slice(0, deepest.order + 1)) {
    if (!needed.has(row.name)) continue;
    const [first = 'input', second = 'input'] = row.inputs.map(tensor);
    switch (row.kind) {
      case 'conv': {
        const fold = row.fold as FoldedConv;
        const folded = foldBatchNorm(weight(`${fold.conv}.weight`), {
          gamma: weight(`${fold.bn}.weight`),
          beta: weight(`${fold.bn}.bias`),
          mean: weight(`${fold.bn}.running_mean`),
          variance: weight(`${fold.bn}.running_var`),
        });
        const w = constant(`${fold.conv}.weight`, [row.channels, fold.inChannels, fold.kernel, fold.kernel], folded.weight);
        const b = constant(`${fold.bn}.folded_bias`, [row.channels], folded.bias);
        const pads = [fold.pad, fold.pad, fold.pad, fold.pad];
        node('Conv', [first, w, b], row.name, { kernel_shape: [fold.kernel, fold.kernel], pads, strides: [fold.stride, fold.stride] });
        break;
      }
      case 'relu':
        node('Relu', [first], row.name);
        break;
      case 'maxpool':
        node('MaxPool', [first], row.name, { kernel_shape: [3, 3], pads: [1, 1, 1, 1], strides: [2, 2] });
        break;
      case 'add':
        node('Add', [first, second], row.name);
        break;
      case 'avgpool':
        node('GlobalAveragePool', [first], row.name);
        break;
      case 'flatten':
        node('Flatten', [first], row.name, { axis: 1 });
        break;
      case 'linear': {
        const w = constant('fc.weight', [row.channels, 2048], weight('fc.weight'));
        const b = constant('fc.bias', [row.channels], weight('fc.bias'));
        nodes.push({ opType: 'Gemm', name: 'fc/Gemm', inputs: [first, w, b], outputs: [row.name], attributes: { transB: 1 } });
        break;
      }
    }
  }

  const graphOutputs = outputs.map((layer) => ({ name: layer.name, sampleShape: resNet50OutputShape(layer.name, imageSize) }));
  const layout = options.inputLayout ?? 'nhwc';
  const graph: OnnxGraph = {
    name: `resnet50_to_${deepest.name}`,
    nodes,
    initializers,
    inputs: [{ name: ONNX_INPUT_NAME, dims: layout === 'nhwc' ? [ONNX_BATCH_DIM, imageSize, imageSize, 3] : [ONNX_BATCH_DIM, 3, imageSize, imageSize] }],
    outputs: graphOutputs.map((output): OnnxValueInfo => ({ name: output.name, dims: [ONNX_BATCH_DIM, ...output.sampleShape] })),
  };
  const bytes = encodeOnnxModel(graph, {
    producerName: 'layertap',
    producerVersion: '0.1.0',
    docString: `torchvision ResNet-50 (BatchNorm folded) up to ${deepest.name}; outputs ${outputs.map((layer) => layer.name).join(', ')}`,
  });
  return {
    name: graph.name,
    bytes,
    outputs: graphOutputs,
    nodes: nodes.map((n) => n.opType),
    weightBytes: initializers.reduce((sum, init) => sum + (init.type === 'float32' ? init.data.byteLength : 0), 0),
    deepest: deepest.name,
    layers: RESNET50_LAYERS.filter((row) => needed.has(row.name)).map((row) => row.name),
    weights: initializers.map((init) => ({ name: init.name, shape: [...init.dims] })),
  };
}

/** Rows that the outputs depend on (walking the inputs back from each output). */
function neededRows(deepest: ResNetLayer, outputs: readonly ResNetLayer[]): Set<string> {
  const byName = new Map(RESNET50_LAYERS.slice(0, deepest.order + 1).map((row) => [row.name, row]));
  const needed = new Set<string>();
  const stack = outputs.map((layer) => layer.name);
  while (stack.length > 0) {
    const name = stack.pop() as string;
    if (needed.has(name) || name === 'input') continue;
    needed.add(name);
    stack.push(...(byName.get(name)?.inputs ?? []));
  }
  return needed;
}

/** A weight's values: from the given map, else made from the seed when first needed. */
function weightSource(weights: WeightsMap | undefined, seed: number): (name: string) => Float32Array {
  const specs = new Map(RESNET50_WEIGHTS.map((spec) => [spec.name, spec]));
  return (name) => {
    const given = weights?.get(name);
    if (given) return given.data;
    const spec = specs.get(name);
    if (!spec) throw new LayertapError(ErrorCode.InferenceFailed, `internal: no ResNet-50 weight spec for ${name}`);
    return randomWeight(seed, spec);
  };
}
