// The models layertap runs, each behind one descriptor (models/descriptor.ts): its layer table (names, specs,
// shapes), its weight specs, and its builders per engine. Each model lives in its own folder under models/;
// a new one is a new folder and a line here: specs are resolved, shapes computed and engines built through
// the descriptor a dataset names. No tfjs here (the CLI and the dashboard load this).
import { ErrorCode, ValidationError, type BuiltinModelName, type ModelName, type OnnxModelRef } from '@layertap/contracts';
import type { ModelDescriptor } from './models/descriptor';
import { onnxFileModel } from './models/onnx-file';
import { RESNET50 } from './models/resnet50';
import { VGG16 } from './models/vgg16';

export type {
  GraphInputLayout,
  ModelBuildOptions,
  ModelDescriptor,
  ModelLayer,
  OnnxBuild,
  OnnxBuildOptions,
  OnnxBuildOutput,
  ResolvedLayer,
} from './models/descriptor';

export { readOnnxFile, type OnnxFile, type ReadOnnxFileOptions } from './models/onnx-file/load';
export { maxModelBytes } from './weights/weights-env';

const MODELS: Record<BuiltinModelName, ModelDescriptor> = { vgg16: VGG16, resnet50: RESNET50 };

/** Names of the built-in models, for help texts. */
export const MODEL_NAMES = Object.keys(MODELS) as BuiltinModelName[];

/** The descriptor of a built-in model (default VGG16); `onnx` needs its file (see `modelFor`). */
export function getModel(name: ModelName = 'vgg16'): ModelDescriptor {
  if (name === 'onnx') throw new ValidationError(ErrorCode.InvalidRequest, 'an ONNX model is described by its file: give the dataset\'s onnx reference (modelFor)');
  const model = MODELS[name];
  if (!model) throw new ValidationError(ErrorCode.InvalidRequest, `unknown model ${JSON.stringify(name)}; layertap has ${MODEL_NAMES.join(', ')}, or an .onnx file`);
  return model;
}

/**
 * The descriptor of what a dataset (or a model spec) names: a built-in model, or its ONNX file as the plan
 * fixed it (`bytes`, when loaded, let it build the graph).
 */
export function modelFor(named: { model?: ModelName | undefined; onnx?: OnnxModelRef | undefined }, bytes?: Uint8Array): ModelDescriptor {
  if (named.model === 'onnx' || named.onnx) {
    if (!named.onnx) throw new ValidationError(ErrorCode.InvalidRequest, 'model onnx without its file (the dataset has no onnx reference)');
    return onnxFileModel(named.onnx, bytes);
  }
  return getModel(named.model);
}
