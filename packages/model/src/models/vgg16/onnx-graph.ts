// Generates VGG16 as an ONNX model from the layer table and TF-layout weights, truncated after the deepest
// requested layer, with the requested layers as graph outputs.
import { ErrorCode, LayertapError } from '@layertap/contracts';
import { adaptivePoolMatrix } from '../../adaptive-avg-pool';
import { AVGPOOL_SIZE, VGG16_LAYERS, checkImageSize, outputLayers, pooledSize, type Vgg16Layer } from './layers';
import { randomWeight } from '../../random-weights';
import { validateWeights, type WeightsMap } from '../../weight-specs';
import { VGG16_WEIGHTS, requiredWeights } from './weight-specs';
import { ONNX_BATCH_DIM, ONNX_INPUT_NAME, type GraphInputLayout, type OnnxBuild, type OnnxBuildOptions, type OnnxBuildOutput } from '../descriptor';
import { encodeOnnxModel, type OnnxGraph, type OnnxInitializer, type OnnxNode, type OnnxValueInfo } from '../../onnx/onnx-proto';

export type Vgg16OnnxOptions = OnnxBuildOptions;
export type Vgg16OnnxOutput = OnnxBuildOutput;
export type Vgg16Onnx = OnnxBuild;

/**
 * Builds the ONNX graph of VGG16 up to the deepest of `outputs`. Feature maps are NCHW; pre-activations are
 * the Conv (or Gemm) output before its Relu; pools are MaxPool 2x2/2; `avgpool` is torchvision's adaptive
 * average pool to 7x7 as two MatMuls with pooling matrices (skipped when it is the identity); fc1's rows are
 * permuted from Keras' (H,W,C) order to (C,H,W) so the graph flattens NCHW directly. `flatten`, when it is
 * an output, is still given in Keras (H,W,C) order, as the TF.js engine gives it.
 */
export function buildVgg16Onnx(options: Vgg16OnnxOptions): Vgg16Onnx {
  const { imageSize } = options;
  checkImageSize(imageSize);
  const outputs = outputLayers(options.outputs);
  const deepest = outputs.reduce((a, b) => (b.order > a.order ? b : a));
  if (options.weights) validateWeights(options.weights, requiredWeights([deepest.name]));
  const wanted = new Set(outputs.map((layer) => layer.name));
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

  let x = ONNX_INPUT_NAME;
  if ((options.inputLayout ?? 'nhwc') === 'nhwc') x = node('Transpose', [x], 'input_nchw', { perm: [0, 3, 1, 2] });
  let side = imageSize;
  let channels = 3;
  for (const row of VGG16_LAYERS.slice(0, deepest.order + 1)) {
    switch (row.kind) {
      case 'conv': {
        const owner = ownerOf(row);
        const kernel = constant(`${owner}/kernel`, [row.channels, channels, 3, 3], convKernelToOnnx(weight(`${owner}/kernel`), channels, row.channels));
        const bias = constant(`${owner}/bias`, [row.channels], weight(`${owner}/bias`));
        x = node('Conv', [x, kernel, bias], row.name, { kernel_shape: [3, 3], pads: [1, 1, 1, 1], strides: [1, 1] });
        channels = row.channels;
        break;
      }
      case 'dense': {
        const owner = ownerOf(row);
        let kernelData = weight(`${owner}/kernel`);
        if (owner === 'fc1') kernelData = denseRowsHwcToChw(kernelData, AVGPOOL_SIZE, AVGPOOL_SIZE, 512, row.channels);
        const kernel = constant(`${owner}/kernel`, [channels, row.channels], kernelData);
        const bias = constant(`${owner}/bias`, [row.channels], weight(`${owner}/bias`));
        x = node('Gemm', [owner === 'fc1' ? 'flatten_chw' : x, kernel, bias], row.name);
        channels = row.channels;
        break;
      }
      case 'relu':
        x = node('Relu', [x], row.name);
        break;
      case 'pool':
        x = node('MaxPool', [x], row.name, { kernel_shape: [2, 2], strides: [2, 2] });
        side = Math.floor(side / 2);
        break;
      case 'avgpool':
        x = adaptiveAvgPool(x, side, { node, constant, hooked: wanted.has(row.name) });
        side = AVGPOOL_SIZE;
        break;
      case 'flatten':
        // What fc1 reads: NCHW flattened (fc1's rows are permuted to match).
        if (deepest.name !== 'flatten') node('Flatten', [x], 'flatten_chw', { axis: 1 });
        // What a hook on `flatten` sees: Keras' (H,W,C) order, computed only when asked for.
        if (wanted.has('flatten')) node('Flatten', [node('Transpose', [x], 'avgpool_nhwc', { perm: [0, 2, 3, 1] })], 'flatten', { axis: 1 });
        channels = row.channels;
        break;
    }
  }

  const graphOutputs = outputs.map((layer) => ({ name: layer.name, sampleShape: sampleShape(layer, imageSize) }));
  const graph: OnnxGraph = {
    name: `vgg16_to_${deepest.name}`,
    nodes,
    initializers,
    inputs: [{ name: ONNX_INPUT_NAME, dims: inputDims(options.inputLayout ?? 'nhwc', imageSize) }],
    outputs: graphOutputs.map((output): OnnxValueInfo => ({ name: output.name, dims: [ONNX_BATCH_DIM, ...output.sampleShape] })),
  };
  const bytes = encodeOnnxModel(graph, {
    producerName: 'layertap',
    producerVersion: '0.1.0',
    docString: `VGG16 up to ${deepest.name}; outputs ${outputs.map((layer) => layer.name).join(', ')}`,
  });
  const weightBytes = initializers.reduce((sum, init) => sum + (init.type === 'float32' ? init.data.byteLength : 0), 0);
  const known = new Set(VGG16_WEIGHTS.map((spec) => spec.name));
  return {
    name: `vgg16_to_${deepest.name}`,
    bytes,
    outputs: graphOutputs,
    nodes: nodes.map((n) => n.opType),
    weightBytes,
    deepest: deepest.name,
    layers: VGG16_LAYERS.slice(0, deepest.order + 1).map((row) => row.name),
    weights: initializers.filter((init) => known.has(init.name)).map((init) => ({ name: init.name, shape: [...init.dims] })),
  };
}

function inputDims(layout: GraphInputLayout, size: number): (number | string)[] {
  return layout === 'nhwc' ? [ONNX_BATCH_DIM, size, size, 3] : [ONNX_BATCH_DIM, 3, size, size];
}

/** (C, H, W) of a feature map, (7, 7, 512) -> (512, 7, 7) for avgpool, (C) for vectors: NCHW sample shapes. */
function sampleShape(layer: Vgg16Layer, imageSize: number): number[] {
  if (layer.pools !== undefined) {
    const side = pooledSize(imageSize, layer.pools);
    return [layer.channels, side, side];
  }
  if (layer.kind === 'avgpool') return [layer.channels, AVGPOOL_SIZE, AVGPOOL_SIZE];
  return [layer.channels];
}

interface GraphOps {
  node: (opType: string, inputs: string[], output: string, attributes?: OnnxNode['attributes']) => string;
  constant: (name: string, dims: number[], data: Float32Array) => string;
  hooked: boolean;
}

/**
 * torchvision's AdaptiveAvgPool2d((7, 7)) of an NCHW map with side `side`: x @ Pw^T pools the columns,
 * Ph @ (.) the rows (MatMul broadcasts the 2-D matrix over N and C). The identity when side is 7.
 */
function adaptiveAvgPool(x: string, side: number, ops: GraphOps): string {
  if (side === AVGPOOL_SIZE) return ops.hooked ? ops.node('Identity', [x], 'avgpool') : x;
  const rows = adaptivePoolMatrix(side, AVGPOOL_SIZE);
  const cols = transpose2d(rows, AVGPOOL_SIZE, side);
  const byCols = ops.node('MatMul', [x, ops.constant('avgpool/cols', [side, AVGPOOL_SIZE], cols)], 'avgpool_cols');
  return ops.node('MatMul', [ops.constant('avgpool/rows', [AVGPOOL_SIZE, side], rows), byCols], 'avgpool');
}

function transpose2d(data: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(data.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = data[r * cols + c] as number;
  return out;
}

/** TF conv kernel [kh, kw, in, out] -> ONNX [out, in, kh, kw]. */
export function convKernelToOnnx(kernel: Float32Array, inputs: number, outputs: number): Float32Array {
  const out = new Float32Array(kernel.length);
  for (let k = 0; k < 9; k++) {
    for (let i = 0; i < inputs; i++) {
      const src = (k * inputs + i) * outputs;
      for (let o = 0; o < outputs; o++) out[(o * inputs + i) * 9 + k] = kernel[src + o] as number;
    }
  }
  return out;
}

/**
 * Dense kernel rows in Keras flatten order (H, W, C) -> torchvision's (C, H, W), so the kernel applies to an
 * NCHW map flattened as it lies. Rows are copied whole.
 */
export function denseRowsHwcToChw(kernel: Float32Array, h: number, w: number, c: number, units: number): Float32Array {
  const out = new Float32Array(kernel.length);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      for (let ch = 0; ch < c; ch++) {
        const src = ((y * w + x) * c + ch) * units;
        out.set(kernel.subarray(src, src + units), ((ch * h + y) * w + x) * units);
      }
    }
  }
  return out;
}

function ownerOf(row: Vgg16Layer): string {
  if (!row.weights) throw new LayertapError(ErrorCode.InferenceFailed, `internal: ${row.name} has no weights`);
  return row.weights;
}


/** A weight's TF-layout values: from the given map, else made from the seed when first needed. */
function weightSource(weights: WeightsMap | undefined, seed: number): (name: string) => Float32Array {
  const specs = new Map(VGG16_WEIGHTS.map((spec) => [spec.name, spec]));
  return (name) => {
    const given = weights?.get(name);
    if (given) return given.data;
    const spec = specs.get(name);
    if (!spec) throw new LayertapError(ErrorCode.InferenceFailed, `internal: no weight spec for ${name}`);
    return randomWeight(seed, spec);
  };
}
