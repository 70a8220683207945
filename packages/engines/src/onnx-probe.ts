// The probe run of a user's ONNX model: ONNX Runtime on the CPU runs the graph, cut at the tensors asked
// for, on a batch of zeros at the image size, and says each tensor's per-sample shape. What `submit` and
// `layertap layers --model m.onnx` know of a graph they cannot infer shapes for themselves.
import { ErrorCode, ValidationError, describeError } from '@layertap/contracts';
import { cutOnnxModel } from '@layertap/model/onnx';
import type { InferenceSession, Tensor } from 'onnxruntime-node';
import { loadOrt } from './onnx-runtime';

export interface OnnxProbeOptions {
  /** Side of the square input. */
  imageSize: number;
  /** Images in the probe's batch (default 1). A batch of 2 shows a graph that only runs one image at a time. */
  batchSize?: number;
  /** The file, for messages. */
  source: string;
  /** Compute threads (default 1: the probe is small, and the CLI runs beside other work). */
  threads?: number;
}

/** Per-sample shape (after the batch dimension) of each of `tensors`, measured by running the graph on zeros. */
export async function probeOnnxShapes(bytes: Uint8Array, tensors: readonly string[], options: OnnxProbeOptions): Promise<Map<string, number[]>> {
  const batch = options.batchSize ?? 1;
  const cut = cutOnnxModel(bytes, tensors, { inputLayout: 'nhwc', imageSize: options.imageSize });
  const ort = loadOrt();
  let session: InferenceSession;
  try {
    session = await ort.InferenceSession.create(cut.bytes, {
      executionProviders: ['cpu'],
      intraOpNumThreads: options.threads ?? 1,
      interOpNumThreads: 1,
      graphOptimizationLevel: 'basic',
      logSeverityLevel: 3,
    });
  } catch (err) {
    throw new ValidationError(ErrorCode.InvalidModel, `ONNX Runtime cannot load ${options.source}: ${firstLine(err)}`, { cause: err });
  }
  const size = options.imageSize;
  const input = new ort.Tensor('float32', new Float32Array(batch * size * size * 3), [batch, size, size, 3]);
  let result: InferenceSession.ReturnType | undefined;
  try {
    result = await session.run({ [cut.inputName]: input }, [...cut.outputs]);
  } catch (err) {
    const hint =
      batch > 1
        ? '; a graph exported for one image at a time cannot run batches: export it with a dynamic batch axis (torch.onnx.export(..., dynamic_axes={"input": {0: "N"}, ...}))'
        : '';
    throw new ValidationError(ErrorCode.InvalidModel, `${options.source} does not run on a ${batch}x3x${size}x${size} input: ${firstLine(err)}${hint}`, { cause: err });
  } finally {
    input.dispose();
  }
  try {
    const shapes = new Map<string, number[]>();
    for (const name of tensors) {
      const value = result[name] as Tensor | undefined;
      if (!value) throw new ValidationError(ErrorCode.InvalidModel, `${options.source}: ONNX Runtime returned no ${name}`);
      if (value.type !== 'float32') throw new ValidationError(ErrorCode.InvalidModel, `${options.source}: tensor ${name} is ${value.type}, not float32: only float32 tensors can be hooked`);
      const dims = value.dims.map(Number);
      if (dims[0] !== batch) {
        throw new ValidationError(
          ErrorCode.InvalidModel,
          `${options.source}: tensor ${name} has shape [${dims.join(', ')}] for a batch of ${batch}: its first dimension is not the batch, so samples cannot be told apart`,
        );
      }
      shapes.set(name, dims.slice(1));
    }
    return shapes;
  } finally {
    for (const value of Object.values(result)) (value as Tensor).dispose();
    await session.release().catch(() => undefined);
  }
}

function firstLine(err: unknown): string {
  return describeError(err).split('\n')[0]?.slice(0, 400) ?? 'unknown error';
}
