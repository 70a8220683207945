// VGG16 behind the model seam: its table (Keras names, torchvision indices as aliases), TF-layout weight specs,
// and its ONNX builder (the TF.js one is in @layertap/engines).
import type { ModelDescriptor } from '../descriptor';
import { VGG16_LAYERS, checkImageSize, describeValidSpecs, layerInfo, layerOutputShape, resolveLayerSpecs } from './layers';
import { VGG16_WEIGHTS, requiredWeights } from './weight-specs';

// The ONNX builder is required on first use, so that resolving specs and computing shapes (the CLI, the
// dashboard) never loads the graph writer.
/* eslint-disable @typescript-eslint/no-require-imports */
export const VGG16: ModelDescriptor = {
  name: 'vgg16',
  title: 'VGG16',
  architecture: 'keras.applications.VGG16 (include_top=True); torchvision vgg16 indices accepted',
  layers: VGG16_LAYERS,
  layer: layerInfo,
  resolveLayers: resolveLayerSpecs,
  outputShape: layerOutputShape,
  checkImageSize,
  describeValidSpecs,
  weights: VGG16_WEIGHTS,
  requiredWeights,
  engines: { onnx: true, tfjs: true },
  buildOnnx: (options) => (require('./onnx-graph') as typeof import('./onnx-graph')).buildVgg16Onnx(options),
};
/* eslint-enable @typescript-eslint/no-require-imports */
