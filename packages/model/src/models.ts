// The models layertap runs, each behind one descriptor (models/descriptor.ts): its layer table (names, specs,
// shapes), its weight specs, and its builders per engine. Each model lives in its own folder under models/;
// a new one is a new folder and a line here: specs are resolved, shapes computed and engines built through
// the descriptor a dataset names. No tfjs here (the CLI and the dashboard load this).
import { ErrorCode, ValidationError, type ModelName } from '@layertap/contracts';
import type { ModelDescriptor } from './models/descriptor';
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

const MODELS: Record<ModelName, ModelDescriptor> = { vgg16: VGG16, resnet50: RESNET50 };

/** Names of the built-in models, for help texts. */
export const MODEL_NAMES = Object.keys(MODELS) as ModelName[];

/** The descriptor of a model (default VGG16). */
export function getModel(name: ModelName = 'vgg16'): ModelDescriptor {
  const model = MODELS[name];
  if (!model) throw new ValidationError(ErrorCode.InvalidRequest, `unknown model ${JSON.stringify(name)}; layertap has ${MODEL_NAMES.join(', ')}`);
  return model;
}
