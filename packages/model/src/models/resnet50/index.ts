// ResNet-50 behind the model seam: torchvision's architecture and state_dict names (torch layout), BatchNorm
// folded at load, ONNX Runtime only.
import type { ModelDescriptor } from '../descriptor';
import { RESNET50_LAYERS, RESNET50_TABLE, checkResNet50ImageSize, describeResNet50Specs, resNet50OutputShape } from './layers';
import { RESNET50_WEIGHTS, resNet50RequiredWeights } from './weight-specs';

const NO_TFJS = 'ResNet-50 runs on ONNX Runtime only (--engine onnx, on the cpu, webgpu or cuda provider); layertap has no TF.js build of it';

/* eslint-disable @typescript-eslint/no-require-imports */
export const RESNET50: ModelDescriptor = {
  name: 'resnet50',
  title: 'ResNet-50',
  architecture: 'torchvision.models.resnet50 (V1.5), BatchNorm folded into the convolutions at load',
  layers: RESNET50_LAYERS,
  layer: (spec) => RESNET50_TABLE.layer(spec),
  resolveLayers: (specs) => RESNET50_TABLE.resolve(specs),
  outputShape: resNet50OutputShape,
  checkImageSize: checkResNet50ImageSize,
  describeValidSpecs: describeResNet50Specs,
  weights: RESNET50_WEIGHTS,
  requiredWeights: resNet50RequiredWeights,
  engines: { onnx: true, tfjs: NO_TFJS },
  buildOnnx: (options) => (require('./onnx-graph') as typeof import('./onnx-graph')).buildResNet50Onnx(options),
};
/* eslint-enable @typescript-eslint/no-require-imports */
