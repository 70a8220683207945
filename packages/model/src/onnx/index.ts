// @layertap/model/onnx: reads a user's ONNX model and cuts its graph to the tensors layertap hooks.
export {
  checkOnnxSize,
  DEFAULT_MAX_ONNX_BYTES,
  readOnnxModel,
  resolveOnnxTensor,
  type OnnxModelInfo,
  type OnnxTensorInfo,
} from './read-onnx';
export { BATCH_DIM, cutOnnxModel, NHWC_INPUT_NAME, NHWC_TRANSPOSE_NODE, type CutOnnx, type CutOnnxOptions } from './cut-onnx';
