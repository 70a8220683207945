export * from './models/vgg16/layers';
export * from './models';
export * from './weight-specs';
export * from './random-weights';
export * from './adaptive-avg-pool';
export * from './models/vgg16/weight-specs';
export { silentLog, type LogFn } from './log';
export * from './weights';
export {
  HOOKED_COPIES,
  MAX_AUTO_BATCH,
  autoBatchSize,
  budgetedBatchSize,
  imagesWithin,
  largestActivationBytes,
  largestIm2colBytes,
  sampleMemoryBytes,
} from './batch-size';
export type { BudgetedBatch } from './batch-size';
export { buildVgg16Onnx, convKernelToOnnx, denseRowsHwcToChw } from './models/vgg16/onnx-graph';
export { ONNX_BATCH_DIM, ONNX_INPUT_NAME } from './models/descriptor';
export type { Vgg16Onnx, Vgg16OnnxOptions, Vgg16OnnxOutput } from './models/vgg16/onnx-graph';
export { encodeOnnxModel, ONNX_IR_VERSION, ONNX_OPSET } from './onnx/onnx-proto';
export type { OnnxGraph, OnnxInitializer, OnnxModelInfo, OnnxNode, OnnxValueInfo } from './onnx/onnx-proto';
