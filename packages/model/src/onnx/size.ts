// The size check of an ONNX model file, before it is read: apart from the reader, so that what loads the model
// table (the CLI, the dashboard) does not load protobufjs.
import { ErrorCode, ValidationError } from '@layertap/contracts';
import { DEFAULT_MAX_MODEL_BYTES } from '../weights/weights-env';

/** The largest model file layertap reads unless told otherwise (LAYERTAP_MAX_MODEL_MB): 1 GiB. */
export const DEFAULT_MAX_ONNX_BYTES = DEFAULT_MAX_MODEL_BYTES;

const MB = 1024 * 1024;

/** Refuses a model file larger than `max` bytes (or an empty one) before it is read. */
export function checkOnnxSize(size: number, source: string, max: number = DEFAULT_MAX_ONNX_BYTES): void {
  if (size === 0) throw new ValidationError(ErrorCode.InvalidModel, `${source} is empty, not an ONNX model`);
  if (size > max) {
    throw new ValidationError(
      ErrorCode.InvalidModel,
      `${source} is ${(size / MB).toFixed(1)} MB, over the ${(max / MB).toFixed(0)} MB limit for ONNX models ` +
        `(set LAYERTAP_MAX_MODEL_MB to raise it)`,
    );
  }
}
